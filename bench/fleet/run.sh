#!/bin/sh
# bench/fleet: the fleet drill at full size, by hand, after `npm run build`.
#   sh bench/fleet/run.sh                          # 100 Workers, 10,000 transactions, pgbench beside it
#   ARGS='--kill 3 --no-skip-locked --pooler' sh bench/fleet/run.sh
#   WORKERS=50 TRANSACTIONS=5000 sh bench/fleet/run.sh
# On a fresh embedded cluster (or --db in ARGS): `sor-drills fleet --baseline` with the figures it
# prints, the pgbench baseline measured in the same run, and the machine's load before and after.
set -eu
cd "$(dirname "$0")/../.."
[ -f dist/cli.js ] || { echo "run npm run build first" >&2; exit 2; }
root=$(pwd)
dir=$(mktemp -d -t sor-bench-fleet.XXXXXX)
out="${OUT:-$dir/fleet.json}"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# shellcheck disable=SC2086
(cd "$dir" && node "$root/dist/cli.js" fleet --workers "${WORKERS:-100}" --transactions "${TRANSACTIONS:-10000}" --baseline ${ARGS:-} --out "$out") || status=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
node -e '
const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const pick = ({ workers, transactions, processed, duplicates, lost, lock_errors, throughput_tps, p50_ms, p99_ms, backends_peak }) =>
  ({ workers, transactions, processed, duplicates, lost, lock_errors, throughput_tps, p50_ms, p99_ms, backends_peak });
console.log(JSON.stringify({ ...pick(j), baseline_tps: j.baseline_tps, ratio: j.baseline_tps ? +(j.throughput_tps / j.baseline_tps).toFixed(2) : null }, null, 2));
for (const side of ["no_skip_locked", "pooler"]) if (j[side] && j[side].workers) console.log(side, JSON.stringify(pick(j[side])));
' "$out"
echo "report: ${out%.json}.md" >&2
exit "${status:-0}"
