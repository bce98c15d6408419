#!/usr/bin/env node
// npm run mutants: applies each mutation of the catalogue (mutants/catalogue.mjs) to a
// copy of the working tree, one at a time, rebuilds, runs only the test files the
// mutation names, and prints whether a test caught it, and how:
//
//   caught    a test failed on a verdict, a row, a count or an exit code
//   wording   tests failed only on a message's wording (a regex or a substring)
//   SURVIVED  every test passed: the suite does not notice this change
//
// Run by hand, never in CI. The working tree is never touched: the copy lives in a
// temporary directory (node_modules linked, not copied) and is removed at the end.
//
//   npm run mutants                      the whole catalogue
//   npm run mutants -- --only ID[,ID]    some mutations
//   npm run mutants -- --list            the catalogue, without running it
//   npm run mutants -- --check           that each mutation's text occurs once, without running it
//   npm run mutants -- --keep            keep the copy (its path is printed)
//
// Why not StrykerJS: Stryker makes its own mutants of the source that vitest imports,
// in memory. Most of what these drills must notice runs in child processes started
// from compiled dist/ (the tool server, the Worker, the relay) and in SQL text, which
// Stryker does not mutate meaningfully, and a Stryker run over this code base would
// not tell a verdict catch from a wording catch. A catalogue of named, meaningful
// mutations, each rebuilt into dist/, answers the question the suite is asked.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { catalogue } from './catalogue.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function usage(message) {
  if (message) process.stderr.write(`mutants: ${message}\n`);
  process.stderr.write('usage: npm run mutants -- [--only ID[,ID]...] [--list] [--check] [--keep]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const options = { only: undefined, list: false, keep: false, check: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--list') options.list = true;
    else if (arg === '--check') options.check = true;
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--only') {
      const value = argv[++i];
      if (!value) usage('--only needs mutation ids');
      options.only = new Set(value.split(',').filter(Boolean));
    } else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  return options;
}

/** The files of the working tree as git sees them (tracked and new, not ignored). */
function workingFiles() {
  const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root });
  return out
    .toString('utf8')
    .split('\0')
    .filter((file) => file && existsSync(path.join(root, file)));
}

function makeCopy() {
  const copy = mkdtempSync(path.join(tmpdir(), 'sor-drills-mutants-'));
  for (const file of workingFiles()) {
    mkdirSync(path.dirname(path.join(copy, file)), { recursive: true });
    cpSync(path.join(root, file), path.join(copy, file));
  }
  symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  return copy;
}

function build(copy) {
  const result = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: copy, encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

/** A failure that only compares a message with a regex or a substring. */
function wordingOnly(message) {
  const first = message.split('\n')[0] ?? '';
  return /\bto (?:match|contain|include)\b/.test(first);
}

function runTests(copy, tests, env = {}) {
  const report = path.join(copy, '.mutants-report.json');
  rmSync(report, { force: true });
  const result = spawnSync('npx', ['vitest', 'run', ...tests, '--reporter=json', `--outputFile=${report}`], {
    cwd: copy,
    encoding: 'utf8',
    env: { ...process.env, ...env, CI: '', FORCE_COLOR: '0' },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (!existsSync(report)) return { ran: 0, failures: [], error: `${result.stdout}${result.stderr}`.trim().split('\n').slice(-5).join(' | ') };
  const json = JSON.parse(readFileSync(report, 'utf8'));
  const failures = [];
  let ran = 0;
  for (const file of json.testResults ?? []) {
    for (const test of file.assertionResults ?? []) {
      if (test.status === 'passed' || test.status === 'failed') ran++;
      if (test.status !== 'failed') continue;
      const message = (test.failureMessages ?? []).join('\n');
      failures.push({ file: path.relative(copy, file.name), name: test.fullName, wording: wordingOnly(message), message: message.split('\n')[0] });
    }
    // A file that failed to load (a syntax error the mutation made) counts as a failure of the file.
    if ((file.assertionResults ?? []).length === 0 && file.status === 'failed') {
      failures.push({ file: path.relative(copy, file.name), name: '(the file failed to load)', wording: false, message: (file.message ?? '').split('\n')[0] });
    }
  }
  return { ran, failures };
}

function applyMutation(copy, mutation) {
  const file = path.join(copy, mutation.file);
  if (!existsSync(file)) return { error: `no file ${mutation.file}` };
  const original = readFileSync(file, 'utf8');
  const count = original.split(mutation.find).length - 1;
  if (count !== 1) return { error: `the text to mutate occurs ${count} times in ${mutation.file} (the catalogue is stale)` };
  writeFileSync(file, original.replace(mutation.find, mutation.replace));
  return { restore: () => writeFileSync(file, original) };
}

function line(text) {
  process.stdout.write(`${text}\n`);
}

const options = parseArgs(process.argv.slice(2));
const chosen = catalogue.filter((mutation) => !options.only || options.only.has(mutation.id));
if (options.only) {
  for (const id of options.only) if (!catalogue.some((mutation) => mutation.id === id)) usage(`no mutation ${id} (see --list)`);
}
if (options.list) {
  for (const mutation of chosen) line(`${mutation.id.padEnd(34)} ${mutation.file}\n${' '.repeat(35)}${mutation.why}`);
  process.exit(0);
}

if (options.check) {
  let stale = 0;
  for (const mutation of chosen) {
    const file = path.join(root, mutation.file);
    const count = existsSync(file) ? readFileSync(file, 'utf8').split(mutation.find).length - 1 : -1;
    if (count !== 1) {
      stale++;
      line(`STALE  ${mutation.id}: ${count < 0 ? `no file ${mutation.file}` : `the text occurs ${count} times in ${mutation.file}`}`);
    }
    for (const test of mutation.tests) {
      if (!existsSync(path.join(root, test))) {
        stale++;
        line(`STALE  ${mutation.id}: no test file ${test}`);
      }
    }
  }
  line(`${chosen.length - stale} of ${chosen.length} mutations apply`);
  process.exit(stale > 0 ? 1 : 0);
}

const started = Date.now();
const copy = makeCopy();
line(`mutants: ${chosen.length} mutations, in a copy of the working tree at ${copy}`);
let exitCode = 0;
try {
  const baseBuild = build(copy);
  if (!baseBuild.ok) throw new Error(`the unmutated tree does not build:\n${baseBuild.output}`);
  const allTests = [...new Set(chosen.flatMap((mutation) => mutation.tests))];
  line(`baseline: the ${allTests.length} covering test files on the unmutated tree ...`);
  const baseline = runTests(copy, allTests);
  if (baseline.error || baseline.failures.length > 0) {
    const why = baseline.error ?? baseline.failures.map((failure) => `${failure.file} > ${failure.name}: ${failure.message}`).join('\n  ');
    throw new Error(`the unmutated tree fails its own tests, so no mutation can be judged:\n  ${why}`);
  }
  line(`baseline: ${baseline.ran} tests pass\n`);
  const tally = { caught: 0, wording: 0, survived: 0, stale: 0 };
  for (const mutation of chosen) {
    const t0 = Date.now();
    const applied = applyMutation(copy, mutation);
    if (applied.error) {
      tally.stale++;
      line(`STALE     ${mutation.id}: ${applied.error}`);
      continue;
    }
    try {
      const built = build(copy);
      const result = built.ok ? runTests(copy, mutation.tests) : undefined;
      const seconds = ((Date.now() - t0) / 1000).toFixed(0);
      if (!built.ok) {
        // A mutation the compiler refuses is no test of the suite: the catalogue must be fixed.
        tally.stale++;
        line(`STALE     ${mutation.id} (${seconds} s): the mutated tree does not compile: ${built.output.split('\n')[0]}`);
      } else if (result.error) {
        tally.stale++;
        line(`STALE     ${mutation.id} (${seconds} s): the tests did not run: ${result.error}`);
      } else {
        const verdict = result.failures.filter((failure) => !failure.wording);
        if (verdict.length > 0) {
          tally.caught++;
          line(`caught    ${mutation.id} (${seconds} s) by ${verdict[0].file} > ${verdict[0].name}${verdict.length > 1 ? ` (+${verdict.length - 1} more)` : ''}`);
        } else if (result.failures.length > 0) {
          tally.wording++;
          line(`wording   ${mutation.id} (${seconds} s): only on wording, by ${result.failures[0].file} > ${result.failures[0].name}`);
        } else {
          tally.survived++;
          line(`SURVIVED  ${mutation.id} (${seconds} s): ${result.ran} tests passed. ${mutation.why}`);
        }
      }
    } finally {
      applied.restore();
    }
  }
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  line(`\n${tally.caught} caught on a verdict, ${tally.wording} only on wording, ${tally.survived} survived, ${tally.stale} stale; ${minutes} min`);
  if (tally.wording + tally.survived + tally.stale > 0) exitCode = 1;
} catch (error) {
  process.stderr.write(`mutants: ${error instanceof Error ? error.message : String(error)}\n`);
  exitCode = 1;
} finally {
  if (options.keep) line(`the copy is kept at ${copy}`);
  else rmSync(copy, { recursive: true, force: true });
}
process.exit(exitCode);
