#!/usr/bin/env bash
# The whole healthy run, headless, cold on the embedded default (`sor-drills run`
# with no flag but --out and --junit: a fresh cluster, all nine drills, PERMITTED),
# against its floor measured in the same rounds: a fresh cluster's initdb, start and
# stop (floor.mjs, the embedded binaries with the console's settings) plus ten bare
# `node -e 0` starts (the Node processes a run cannot do without). Goal (issue 15):
# the run at most 4x the floor.
#
#   npm run build && ROUNDS=5 bash bench/healthy-run/run.sh
#
# ROUNDS (default 3) rounds, interleaved: floor, run (and BASE's run) in each round.
# BASE=<a checkout with dist/ built> also runs that checkout's CLI in every round,
# e.g. the commit before a change, so before and after share the machine's load.
# Prints each round, the per-drill times of the last round (from the JUnit XML), the
# medians, the ratios, and /proc/loadavg before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
base=${BASE:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cli="$PWD/dist/cli.js"
[ -f "$cli" ] || { echo "no $cli: run npm run build first" >&2; exit 2; }
if [ -n "$base" ]; then
  base=$(cd "$base" && pwd)
  [ -f "$base/dist/cli.js" ] || { echo "no $base/dist/cli.js: build that checkout first" >&2; exit 2; }
fi
now() { date +%s%N; }
ms_since() { echo $(( ($(now) - $1) / 1000000 )); }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# One headless run in a fresh working directory; prints its wall time in ms.
headless() {
  local dist=$1 tag=$2 dir
  dir=$(mktemp -d "$work/$tag-XXXX")
  local start
  start=$(now)
  if ! (cd "$dir" && node "$dist/cli.js" run --out "$dir/bundle.md" --junit "$dir/junit.xml" >/dev/null 2>"$dir/stderr.log"); then
    echo "  $tag: not PERMITTED (see below)" >&2
    tail -3 "$dir/stderr.log" >&2
  fi
  ms_since "$start"
  cp "$dir/junit.xml" "$work/$tag-last.xml" 2>/dev/null || true
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
: >"$work/floor" ; : >"$work/run" ; : >"$work/base"
for round in $(seq 1 "$rounds"); do
  cluster=$(node bench/healthy-run/floor.mjs | sed 's/.*"cluster_ms":\([0-9]*\).*/\1/')
  start=$(now)
  for _ in 1 2 3 4 5 6 7 8 9 10; do node -e 0; done
  nodes=$(ms_since "$start")
  floor=$((cluster + nodes))
  echo "$floor" >>"$work/floor"
  run=$(headless "$PWD/dist" run)
  echo "$run" >>"$work/run"
  line="round $round: floor ${floor} ms (cluster ${cluster} + ten node starts ${nodes}), run ${run} ms ($(ratio "$run" "$floor")x)"
  if [ -n "$base" ]; then
    before=$(headless "$base/dist" base)
    echo "$before" >>"$work/base"
    line="$line, BASE run ${before} ms ($(ratio "$before" "$floor")x)"
  fi
  echo "$line (load $(cut -d' ' -f1 /proc/loadavg))"
done
echo "per drill, last round (JUnit XML):"
grep -o 'name="[^"]*" time="[^"]*"' "$work/run-last.xml" | sed 's/name="\(.*\)" time="\(.*\)"/    \1: \2 s/'
floor=$(median <"$work/floor")
run=$(median <"$work/run")
echo "median: floor ${floor} ms, run ${run} ms: $(ratio "$run" "$floor")x the floor"
if [ -n "$base" ]; then
  before=$(median <"$work/base")
  echo "median: BASE run ${before} ms: $(ratio "$before" "$floor")x the floor"
  echo "per drill, last round of BASE:"
  grep -o 'name="[^"]*" time="[^"]*"' "$work/base-last.xml" | sed 's/name="\(.*\)" time="\(.*\)"/    \1: \2 s/'
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
