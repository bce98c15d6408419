#!/bin/sh
# bench/resume-latency: run by hand after `npm run build`.
#   sh bench/resume-latency/run.sh                  # 5 rounds at --pace 0 and 50
#   ROUNDS=10 PACES=0,50,800 OUT=/tmp/r.json sh bench/resume-latency/run.sh
# Each round runs the crash drill alone, headless, on a fresh embedded cluster per pace, and
# reads the latency the drill prints; and times node -e 0 and the Worker's own start beside it.
set -eu
cd "$(dirname "$0")/../.."
[ -f dist/cli.js ] || { echo "run npm run build first" >&2; exit 2; }
ROUNDS="${ROUNDS:-5}" PACES="${PACES:-0,50}" OUT="${OUT:-$(mktemp -t resume-latency.XXXXXX.json)}" node bench/resume-latency/measure.mjs
