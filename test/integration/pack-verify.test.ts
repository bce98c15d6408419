// `sor-drills pack` and `sor-drills verify` as an instructor uses them: a healthy run's
// bundle and a blocked one, packed and verified on "another machine" (the run's folder
// gone); then each way of tampering with a handed-in archive, each found and named; and
// archives that would write outside the folder refused before anything is extracted.
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { scratchDir } from '../helpers/scratch.js';
import { runCli } from '../helpers/cli.js';

let db: TestDatabase;
let dir: string;
/** Archives made once, from a real healthy run and a real blocked one. */
let healthy: string;
let blocked: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = scratchDir('pack-');
  for (const [name, extra] of [
    ['healthy', ['--gate', 'idempotency_retry_test']],
    ['blocked', ['--only', 'migration_review', '--only', 'idempotency_retry_test', '--only', 'append_only_event_test', '--break', 'idempotency_retry_test', '--pack']],
  ] as const) {
    const cwd = path.join(dir, name);
    await mkdir(cwd, { recursive: true });
    // The healthy run on its own embedded cluster (drill 8 reads its statement log); the blocked one on a test database.
    const target = name === 'healthy' ? [] : ['--db', db.url, '--yes'];
    const ran = await runCli(['run', ...target, '--pace', '0', '--out', 'evidence/bundle.md', ...extra], { cwd, timeout: 240_000 });
    expect(ran.exitCode, ran.stderr).toBe(name === 'healthy' ? 0 : 1);
    const bundle = path.join(cwd, 'evidence', 'bundle.md');
    const verified = await runCli(['verify', bundle], { cwd });
    expect(verified.exitCode, verified.stdout).toBe(0);
    if (name === 'healthy') {
      const packed = await runCli(['pack', bundle], { cwd });
      expect(packed.exitCode, packed.stderr).toBe(0);
      expect(packed.stderr).toMatch(/^packed \d+ files into .*bundle\.tar\.gz$/m);
      // A second pack over it is refused without --force.
      const again = await runCli(['pack', bundle], { cwd });
      expect(again.exitCode).toBe(2);
      expect(again.stderr).toMatch(/already exists; add --force/);
    } else {
      // run --pack packed it as the run ended.
      expect(ran.stderr).toMatch(/^packed \d+ files into evidence\/bundle\.tar\.gz for handing in/m);
    }
    // Handed in: the archive alone reaches the instructor; the run's folder stays with the learner.
    const handedIn = path.join(dir, `${name}.tar.gz`);
    await cp(path.join(cwd, 'evidence', 'bundle.tar.gz'), handedIn);
    await rm(cwd, { recursive: true, force: true });
    if (name === 'healthy') healthy = handedIn;
    else blocked = handedIn;
  }
}, 600_000);

afterAll(async () => {
  await db?.dispose();
});

const verify = (file: string) => runCli(['verify', file], { cwd: dir });

/** The archive, unpacked, changed by `change`, packed again as another file. */
async function tampered(archive: string, name: string, change: (root: string) => Promise<void>): Promise<string> {
  const root = path.join(dir, `unpacked-${name}`);
  await mkdir(root, { recursive: true });
  await tar.x({ file: archive, cwd: root });
  await change(root);
  const out = path.join(dir, `${name}.tar.gz`);
  await tar.c({ gzip: true, file: out, cwd: root, portable: true }, await readdir(root));
  return out;
}

/** One regular file in a ustar archive, named as given (the way a hostile archive is made by hand). */
function rawTar(name: string, content: string): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => header.write(value.slice(0, length), offset, length, 'ascii');
  const body = Buffer.from(content);
  field(0, 100, name);
  field(100, 8, '0000644\0');
  field(108, 8, '0000000\0');
  field(116, 8, '0000000\0');
  field(124, 12, `${body.length.toString(8).padStart(11, '0')}\0`);
  field(136, 12, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`);
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  const sum = header.reduce((total, byte) => total + byte, 0);
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
  body.copy(padded);
  return Buffer.concat([header, padded, Buffer.alloc(1024)]);
}

async function replaceIn(file: string, from: string | RegExp, to: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const next = text.replace(from, to);
  expect(next, `${from} in ${file}`).not.toBe(text);
  await writeFile(file, next);
}

async function firstFile(root: string, under: string): Promise<string> {
  const entries = await readdir(path.join(root, under), { recursive: true, withFileTypes: true });
  const file = entries.find((entry) => entry.isFile());
  expect(file, `a file under ${under}`).toBeDefined();
  return path.join(file!.parentPath, file!.name);
}

describe('pack and verify', () => {
  it('a healthy archive from another machine verifies, with the summary an instructor reads', async () => {
    const result = await verify(healthy);
    expect(result.exitCode, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/^bundle bundle\.md$/m);
    expect(result.stdout).toMatch(/^ {2}target: postgres:\/\/.*\*\*\*@/m);
    expect(result.stdout).not.toContain(new URL(db.url).password || 'no password');
    expect(result.stdout).toMatch(/^ {2}3\. idempotency_retry_test: pass: Two invocations with the same idempotency key produced one expenses row/m);
    expect(result.stdout).toMatch(/^ {2}release_decision: PERMITTED: all nine drills passed$/m);
    expect(result.stdout).toMatch(/^mastery bundle bundle\.mastery\.md$/m);
    expect(result.stdout).toMatch(/^ {2}mastery gate: met \(a drill run with its deliberate break failed honestly\)$/m);
    expect(result.stdout).toMatch(/consistent: .*healthy\.tar\.gz matches the evidence its run wrote$/m);
  });

  it('a blocked archive verifies too: consistent, each failure named', async () => {
    const result = await verify(blocked);
    expect(result.exitCode, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/^ {2}3\. idempotency_retry_test: fail \(deliberate break\): two invocations/m);
    expect(result.stdout).toMatch(/^ {2}2\. run_journal_resume_drill: fail: not run$/m);
    expect(result.stdout).toMatch(/^ {2}release_decision: BLOCKED: /m);
  });

  it('a verdict edited from fail into pass is refused, naming the drill', async () => {
    const archive = await tampered(blocked, 'verdict', (root) =>
      replaceIn(path.join(root, 'bundle.md'), /"idempotency_retry_test": "fail: [^"]*"/, '"idempotency_retry_test": "pass"'),
    );
    const result = await verify(archive);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^✗ idempotency_retry_test: the bundle says "pass"; its record says "fail: /m);
  });

  it('a verdict edited in the bundle and in its record is refused: the record contradicts itself, and its hash', async () => {
    const archive = await tampered(blocked, 'record', async (root) => {
      await replaceIn(path.join(root, 'bundle.md'), /"idempotency_retry_test": "fail: [^"]*"/, '"idempotency_retry_test": "pass"');
      const record = await firstFile(root, '.agent-history/records/idempotency_retry_test');
      const text = JSON.parse(await readFile(record, 'utf8'));
      await writeFile(record, JSON.stringify({ ...text, verdict: 'pass', reason: undefined }, null, 2));
    });
    const result = await verify(archive);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^✗ idempotency_retry_test: its record contradicts itself: a pass with observation .* not as the habit needs/m);
    expect(result.stdout).toMatch(/^✗ \.agent-history\/records\/idempotency_retry_test\/.*record\.json: edited/m);
  });

  it('the call flipped from BLOCKED to PERMITTED is refused', async () => {
    const archive = await tampered(blocked, 'call', (root) =>
      replaceIn(path.join(root, 'bundle.md'), /"release_decision": "BLOCKED: [^"]*"/, '"release_decision": "PERMITTED: all nine drills passed"'),
    );
    const result = await verify(archive);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toMatch(/^✗ release_decision: it says "PERMITTED", but .*idempotency_retry_test.* did not pass$/m);
  });

  it('an evidence file edited, a file removed, a file added: each found and named', async () => {
    let edited = '';
    let removed = '';
    const archive = await tampered(healthy, 'files', async (root) => {
      const oracle = await firstFile(root, '.agent-history/oracle/idempotency_retry_test');
      edited = path.relative(root, oracle);
      await writeFile(oracle, `${await readFile(oracle, 'utf8')}\n`);
      const gone = await firstFile(root, '.agent-history/oracle/append_only_event_test');
      removed = path.relative(root, gone);
      await rm(gone);
      await writeFile(path.join(root, '.agent-history', 'oracle', 'idempotency_retry_test', 'extra.txt'), 'added by hand');
    });
    const result = await verify(archive);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain(`✗ ${edited}: edited: its sha256 is not the manifest’s`);
    expect(result.stdout).toContain(`✗ ${removed}: in the manifest, missing`);
    expect(result.stdout).toContain('✗ .agent-history/oracle/idempotency_retry_test/extra.txt: in the archive but in no manifest');
  });

  it('an archive with an absolute path or a .. is refused before anything is extracted', async () => {
    const outside = path.join(path.dirname(dir), `sor-verify-escape-${process.pid}.txt`);
    for (const [name, entry] of [
      ['dotdot', `../${path.basename(outside)}`],
      ['absolute', outside],
    ] as const) {
      const archive = path.join(dir, `${name}.tar.gz`);
      // A hand-made archive whose entry names a path outside wherever it is extracted.
      await writeFile(archive, gzipSync(rawTar(entry, 'outside')));
      const listed: string[] = [];
      await tar.t({ file: archive, onReadEntry: (read) => void listed.push(read.path) });
      expect(listed).toEqual([entry]);
      const result = await verify(archive);
      expect(result.exitCode, result.stdout).toBe(1);
      expect(result.stdout).toMatch(/refused, nothing extracted: (an absolute path|a path that climbs out with \.\.)/);
      expect(existsSync(outside)).toBe(false);
    }
  });

  it('bad usage: no file, or one that is not there (exit 2, one line)', async () => {
    const none = await runCli(['verify'], { cwd: dir });
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/^sor-drills: verify needs a bundle or an archive/);
    const missing = await runCli(['verify', 'no-such.tar.gz'], { cwd: dir });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    const pack = await runCli(['pack', 'no-such.md'], { cwd: dir });
    expect(pack.exitCode).toBe(2);
  });
});
