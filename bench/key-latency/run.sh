#!/bin/sh
# bench/key-latency: run by hand after `npm run build`.
#   sh bench/key-latency/run.sh                 # 3 rounds; prints and writes the figures
#   ROUNDS=5 OUT=/tmp/k.json sh bench/key-latency/run.sh
#   SIGNAL=pane sh bench/key-latency/run.sh     # cross-check ?/esc against tmux capture-pane
# measure.mjs starts each console in a detached 120x40 tmux session of its own and removes it.
set -eu
cd "$(dirname "$0")/../.."
command -v tmux >/dev/null || { echo "bench/key-latency needs tmux" >&2; exit 2; }
[ -f dist/cli.js ] || { echo "run npm run build first" >&2; exit 2; }
ROUNDS="${ROUNDS:-3}" SIGNAL="${SIGNAL:-frame}" OUT="${OUT:-$(mktemp -t key-latency.XXXXXX.json)}" node bench/key-latency/measure.mjs
