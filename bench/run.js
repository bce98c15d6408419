#!/usr/bin/env node
// npm run bench [-- NAME...]: builds, then runs the named benchmarks (all of them by
// default), one after another, each printing its figures against the baseline it
// measures in the same run. bench/RESULTS.md has the figures and what they mean.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const benchmarks = {
  oracle: ['node', [path.join(here, 'oracle', 'bench.mjs')]],
  'first-frame': ['bash', [path.join(here, 'first-frame', 'run.sh')]],
  'healthy-run': ['bash', [path.join(here, 'healthy-run', 'run.sh')]],
  fleet: ['sh', [path.join(here, 'fleet', 'run.sh')]],
};

const names = process.argv.slice(2);
for (const name of names) {
  if (!(name in benchmarks)) {
    process.stderr.write(`bench: no benchmark ${name} (one of: ${Object.keys(benchmarks).join(', ')})\n`);
    process.exit(2);
  }
}
const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
let failed = 0;
for (const name of names.length > 0 ? names : Object.keys(benchmarks)) {
  const [command, args] = benchmarks[name];
  process.stderr.write(`\nbench: ${name}\n`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
