// Time from process start to the first frame: the console vs a bare Ink
// hello-world, interleaved, in the same run. It must run in a terminal (the
// console only mounts Ink on a TTY): run.sh starts it in a sized tmux pane.
// Each console is told to quit (q, typed into its pane by tmux) right after its
// first frame, so it stops the PostgreSQL it was starting.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const rounds = Number(process.env.ROUNDS ?? 15);
const out = process.env.OUT ?? path.join(tmpdir(), 'first-frame.json');
const pane = process.env.TMUX_PANE;

const subjects = {
  hello: { args: [path.join(here, 'hello.mjs')], quits: true },
  console: { args: [path.join(root, 'dist/cli.js')], quits: false },
  'console-only': { args: [path.join(here, 'console-only.mjs')], quits: false },
};

const env = { ...process.env };
delete env.CI;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function once(name) {
  const dir = mkdtempSync(path.join(tmpdir(), 'first-frame-'));
  const file = path.join(dir, 'at');
  const started = performance.timeOrigin + performance.now();
  const child = spawn(process.execPath, subjects[name].args, {
    cwd: root,
    stdio: 'inherit',
    env: { ...env, SOR_DRILLS_FIRST_FRAME_FILE: file },
  });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  while (!existsSync(file) || readFileSync(file, 'utf8') === '') {
    if (Date.now() > deadline) throw new Error(`${name}: no first frame within 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const at = Number(readFileSync(file, 'utf8'));
  if (!subjects[name].quits) execFileSync('tmux', ['send-keys', '-t', pane, 'q']);
  const code = await exited;
  rmSync(dir, { recursive: true, force: true });
  return { ms: at - started, code };
}

const names = (process.env.SUBJECTS ?? 'hello,console,console-only').split(',');
const samples = Object.fromEntries(names.map((name) => [name, []]));
// One warm-up each (disk cache), not counted.
for (const name of names) await once(name);
for (let round = 0; round < rounds; round += 1) {
  for (const name of names) samples[name].push((await once(name)).ms);
}
const summary = Object.fromEntries(
  names.map((name) => [name, { median: Number(median(samples[name]).toFixed(1)), min: Number(Math.min(...samples[name]).toFixed(1)), samples: samples[name].map((v) => Number(v.toFixed(1))) }]),
);
for (const name of names.filter((n) => n !== 'hello')) summary[name].ratio = Number((summary[name].median / summary.hello.median).toFixed(2));
writeFileSync(out, JSON.stringify({ node: process.version, rounds, summary }, null, 2));
process.stdout.write('\u001b[2J\u001b[H');
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
