#!/bin/sh
# bench/first-frame: run by hand after `npm run build`.
#   sh bench/first-frame/run.sh            # 15 rounds; prints and writes the figures
# Runs measure.mjs in a detached 120x40 tmux session (a real terminal, CI unset),
# waits for it, prints its JSON and removes the session.
set -eu
cd "$(dirname "$0")/../.."
out="${OUT:-$(mktemp -t first-frame.XXXXXX.json)}"
session="first-frame-$$"
env -u CI tmux new-session -d -s "$session" -x 120 -y 40 \
  "ROUNDS=${ROUNDS:-15} SUBJECTS=${SUBJECTS:-hello,console,console-only} OUT=$out node bench/first-frame/measure.mjs; tmux wait-for -S $session-done"
tmux wait-for "$session-done"
tmux kill-session -t "$session" 2>/dev/null || true
cat "$out"
