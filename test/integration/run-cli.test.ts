// `sor-drills run` as CI would use it: the healthy reference passes all nine
// and is PERMITTED; each drill's deliberate break blocks the release naming
// that drill; the bundle file has the seed's shape with the paragraph below.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { scratchDir } from '../helpers/scratch.js';
import { runCli } from '../helpers/cli.js';
import { parseBundle } from '../../src/drills/bundle.js';
import { bundleKeys } from '../../src/drills/types.js';

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = scratchDir('run-');
});
afterAll(async () => {
  await db?.dispose();
});

const run = (args: string[]) => runCli(['run', '--db', db.url, '--yes', '--pace', '0', ...args], { cwd: dir });

describe('sor-drills run', () => {
  it('a healthy reference: `sor-drills` in a pipe runs headless on its own embedded cluster: nine passes, PERMITTED, exit 0', async () => {
    const out = path.join(dir, 'healthy.md');
    // No command and no terminal: the same as `run` on the embedded target, as `npm start` in a pipe.
    const result = await runCli(
      ['--pace', '0', '--out', out, '--json', '--junit', path.join(dir, 'junit.xml'), '--gate', 'idempotency_retry_test'],
      { cwd: dir },
    );
    expect(result.exitCode, result.stderr).toBe(0);
    const { bundle, paragraph } = parseBundle(await readFile(out, 'utf8'));
    expect(Object.keys(bundle)).toEqual([...bundleKeys, 'release_decision']);
    for (const key of bundleKeys) expect(bundle[key], `${key}: ${bundle[key]}`).toBe('pass');
    expect(paragraph).toMatch(/^Release PERMITTED\./);
    expect(JSON.parse(result.stdout)).toEqual(bundle);
    const junit = await readFile(path.join(dir, 'junit.xml'), 'utf8');
    expect(junit).toMatch(/tests="9" failures="0"/);

    // The mastery gate: the same drill again with its deliberate break, written honestly as a second bundle.
    const gate = parseBundle(await readFile(out.replace(/\.md$/, '.mastery.md'), 'utf8'));
    expect(gate.bundle.idempotency_retry_test).toMatch(/^fail: two invocations with the same idempotency key produced 2 expenses rows/);
    expect(gate.bundle.release_decision).toMatch(/^BLOCKED: idempotency_retry_test \(Lesson 3, idempotency keys\)/);
    expect(gate.paragraph).toMatch(/^Release BLOCKED\. 8 of nine drills passed/);
    expect(result.stderr).toMatch(/mastery gate: idempotency_retry_test failed honestly/);
  });

  it('refuses a URL target without --yes (exit 2) and writes nothing', async () => {
    const result = await runCli(['run', '--db', db.url], { cwd: dir });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/append-only.*--yes/);
  });

  it('an unknown drill key is bad usage: one line naming it and the help to read', async () => {
    const result = await run(['--break', 'no_such_drill']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^sor-drills: --break no_such_drill: not a drill; the keys are migration_review, .*; see sor-drills run --help$/);
  });

  // Each break also runs with --json, --junit and --gate: a BLOCKED run still prints its bundle,
  // the gate is not offered, and the eight drills --only left out are skipped in the JUnit file.
  it.each(bundleKeys)('--break %s fails that drill and blocks the release naming it', async (key) => {
    const out = path.join(dir, `break-${key}.md`);
    const junitFile = path.join(dir, `break-${key}.xml`);
    const result = await run(['--only', key, '--break', key, '--out', out, '--json', '--junit', junitFile, '--gate', key]);
    expect(result.exitCode).toBe(1);
    const { bundle, paragraph } = parseBundle(await readFile(out, 'utf8'));
    expect(bundle[key]).toMatch(/^fail: /);
    expect(bundle[key]).not.toBe('fail: not run');
    expect(bundle.release_decision).toMatch(new RegExp(`^BLOCKED: .*${key} \\(Lesson \\d`));
    expect(paragraph).toMatch(new RegExp(`${key} failed \\(`));
    expect(JSON.parse(result.stdout)).toEqual(bundle);
    expect(result.stderr).toContain('mastery gate: not offered, the release is BLOCKED already');
    const junit = await readFile(junitFile, 'utf8');
    expect(junit).toMatch(/<testsuites name="sor-drills" tests="9" failures="1" errors="0" skipped="8"/);
    const testCase = junit.split('<testcase ').find((entry) => entry.includes(`. ${key}"`));
    expect(testCase).toMatch(/<failure type="fail" message="/);
  });
});
