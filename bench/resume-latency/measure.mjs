// How long after the restart the crash drill's Worker resumes the crashed run, as the drill
// itself prints it ("resumed N ms after the restart": the database's clock read just before
// the spawn, to the started_at of the first call journaled after it), against the floor a
// restarted Worker cannot go under, measured in the same round: a bare `node -e 0`, and the
// Worker's own start (dist/bundle/worker.js, the script the drill runs, with no settings: Node, its imports (the MCP
// SDK), then exit 2 before it connects). Run by hand after `npm run build` (run.sh).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const rounds = Number(process.env.ROUNDS ?? 5);
const paces = (process.env.PACES ?? '0,50').split(',').map(Number);
const out = process.env.OUT ?? path.join(tmpdir(), 'resume-latency.json');

function timed(args, env = { PATH: process.env.PATH ?? '' }) {
  const started = performance.now();
  spawnSync(process.execPath, args, { env, stdio: 'ignore' });
  return performance.now() - started;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const samples = Object.fromEntries(paces.map((pace) => [pace, []]));
const floor = { node: [], worker: [] };
const load = [];
for (let round = 0; round < rounds; round += 1) {
  load.push(loadavg()[0]);
  floor.node.push(timed(['-e', '0']));
  floor.worker.push(timed([path.join(root, 'dist/bundle/worker.js')]));
  for (const pace of paces) {
    const dir = mkdtempSync(path.join(tmpdir(), 'resume-latency-'));
    const env = { ...process.env };
    delete env.DATABASE_URL;
    const run = spawnSync(
      process.execPath,
      [path.join(root, 'dist/cli.js'), 'run', '--only', 'run_journal_resume_drill', '--pace', String(pace), '--out', path.join(dir, 'bundle.md')],
      { cwd: dir, env, encoding: 'utf8' },
    );
    rmSync(dir, { recursive: true, force: true });
    const found = /resumed (\d+) ms after the restart/.exec(run.stderr);
    if (!found) throw new Error(`round ${round}, pace ${pace}: no resume latency in the drill's line (exit ${run.status}):\n${run.stderr.slice(-2000)}`);
    samples[pace].push(Number(found[1]));
  }
}
load.push(loadavg()[0]);
const r = (value) => Number(value.toFixed(1));
const summary = {
  node: process.version,
  rounds,
  resumedAfterRestartMs: Object.fromEntries(paces.map((pace) => [`pace ${pace} ms`, { median: median(samples[pace]), min: Math.min(...samples[pace]), max: Math.max(...samples[pace]), samples: samples[pace] }])),
  floor: { 'node -e 0': r(median(floor.node)), 'worker start (imports, exit 2)': r(median(floor.worker)) },
  load1: load.map((value) => r(value)),
};
writeFileSync(out, JSON.stringify(summary, null, 2));
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
