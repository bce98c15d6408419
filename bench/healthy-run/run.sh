#!/usr/bin/env bash
# The whole healthy run, headless, on a fresh embedded cluster, against the floor
# of the same run: `sor-drills setup` alone (start the cluster, install the schema,
# stop). Run by hand after a build: `npm run build && bash bench/healthy-run/run.sh`.
# ROUNDS (default 3) rounds, interleaved; per-drill times from the JUnit XML.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cli="$PWD/dist/cli.js"
now() { date +%s%N; }
for round in $(seq 1 "$rounds"); do
  start=$(now); (cd "$work" && node "$cli" setup >/dev/null 2>&1); floor=$(( ($(now) - start) / 1000000 ))
  start=$(now); (cd "$work" && node "$cli" run --pace 0 --out "$work/b$round.md" --junit "$work/j$round.xml" >/dev/null 2>&1) || echo "round $round: not PERMITTED"
  run=$(( ($(now) - start) / 1000000 ))
  echo "round $round: setup alone ${floor} ms, healthy run ${run} ms, drills $((run - floor)) ms"
  grep -o 'name="[^"]*" time="[^"]*"' "$work/j$round.xml" | sed 's/name="\(.*\)" time="\(.*\)"/    \1: \2 s/'
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
