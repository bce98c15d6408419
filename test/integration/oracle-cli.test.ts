// `sor-drills oracle` as a user meets it: a command wrapped, the verdict as the
// exit code (0 APPROVE, 1 REJECT, 4 ESCALATE, 2 bad usage, 3 unreachable), the
// eight evidence files, and a password that shows nowhere.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/cli.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { parseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/postgres/embedded.js';
import { evidenceFiles } from '../../src/oracle/types.js';

let db: TestDatabase;
let dir: string;
let password: string;

const hasPsql = (() => {
  try {
    execFileSync('psql', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), 'oracle-cli-'));
  password = parseUrl(db.url).password;
  await withPgClient(db.url, (client) =>
    client.query(`create table widgets (id serial primary key, name text not null unique, created_at timestamptz default now())`),
  );
});

afterAll(async () => {
  await db?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A command that inserts a widget through its own connection (node and pg: present wherever the tests run). */
const insertWidget = (name: string) => [
  '--',
  process.execPath,
  '-e',
  `const { Client } = require('pg'); const c = new Client(process.argv[1]);
   c.connect().then(() => c.query("insert into widgets (name) values ($1)", [process.argv[2]])).then(() => { console.log('INSERT 0 1 via ' + process.argv[1]); return c.end(); })`,
  db.url,
  name,
];

const folderOf = (stdout: string) => /^evidence: (.+)\/$/m.exec(stdout)?.[1];

async function expectNoPassword(folder: string, ...outputs: string[]) {
  expect((await readdir(folder)).sort()).toEqual([...evidenceFiles].sort());
  for (const file of evidenceFiles) {
    expect(await readFile(path.join(folder, file), 'utf8'), file).not.toContain(password);
  }
  for (const output of outputs) expect(output).not.toContain(password);
}

describe('sor-drills oracle', () => {
  it('--help shows the flags and a worked example', async () => {
    const help = await runCli(['oracle', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('Worked example');
    expect(help.stdout).toMatch(/--expect 'widgets:\+1'.* -- psql/s);
    expect(help.stdout).toContain('4 ESCALATE');
    expect(help.stderr).toBe('');
  });

  it('APPROVE, exit 0: the right expectation, the verdict table and the eight files', async () => {
    const result = await runCli(['oracle', '--db', db.url, '--card', 'demo', '--tables', 'widgets', '--expect', 'widgets:+1', '--expect', 'widgets:+{name=alpha}', '--dir', dir, ...insertWidget('alpha')]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^APPROVE {2}card demo: 2 of 2 predicates satisfied/);
    expect(result.stdout).toMatch(/│ widgets │ 0 +│ 1 +│ 1 +│/);
    expect(result.stderr).toContain('before: widgets 0 rows');
    const folder = folderOf(result.stdout)!;
    expect(folder).toMatch(/demo[/\\]\d{8}T\d{6}$/);
    await expectNoPassword(folder, result.stdout, result.stderr);
    expect(await readFile(path.join(folder, 'action_exit.txt'), 'utf8')).toBe('0\n');
    expect(await readFile(path.join(folder, 'action.log'), 'utf8')).toMatch(/INSERT 0 1 via postgres:\/\/postgres:\*\*\*@/);
    expect(await readFile(path.join(folder, 'diff.txt'), 'utf8')).toMatch(/^\+\s+\{"name":"alpha"\}$/m);
    expect(await readFile(path.join(folder, 'verdict.md'), 'utf8')).toContain('**Verdict**: APPROVE');
  });

  it('REJECT, exit 1: a wrong expectation', async () => {
    const result = await runCli(['oracle', '--db', db.url, '--card', 'demo', '--expect', 'widgets:+2', '--expect', 'widgets:+{name=gamma}', '--dir', dir, ...insertWidget('beta')]);
    expect(result.exitCode, result.stderr).toBe(1);
    expect(result.stdout).toMatch(/^REJECT {2}card demo: 0 of 2/);
    expect(result.stdout).toContain('unsatisfied');
    await expectNoPassword(folderOf(result.stdout)!, result.stdout, result.stderr);
  });

  it('ESCALATE, exit 4: a command that fails; its code is in action_exit.txt', async () => {
    const result = await runCli(['oracle', '--db', db.url, '--card', 'demo', '--expect', 'widgets:+1', '--dir', dir, '--', process.execPath, '-e', 'process.exit(5)']);
    expect(result.exitCode, result.stderr).toBe(4);
    expect(result.stdout).toMatch(/^ESCALATE/);
    expect(result.stdout).toContain('The action exited 5');
    const folder = folderOf(result.stdout)!;
    expect(await readFile(path.join(folder, 'action_exit.txt'), 'utf8')).toBe('5\n');
  });

  it('ESCALATE, exit 4: nothing asserted; --json gives the typed result', async () => {
    const result = await runCli(['oracle', '--db', db.url, '--card', 'demo', '--tables', 'widgets', '--json', '--dir', dir, '--', process.execPath, '-e', '0']);
    expect(result.exitCode, result.stderr).toBe(4);
    const parsed = JSON.parse(result.stdout) as { verdict: string; expectations: unknown[]; folder: string; tables: Array<{ table: string }> };
    expect(parsed.verdict).toBe('ESCALATE');
    expect(parsed.expectations).toEqual([]);
    expect(parsed.tables.map((table) => table.table)).toEqual(['widgets']);
  });

  it('bad usage, exit 2', async () => {
    const cases = [
      ['oracle', '--db', db.url, '--card', 'demo', '--bogus', '--', 'true'],
      ['oracle', '--db', db.url, '--card', 'demo', '--expect', 'widgets:+1'],
      ['oracle', '--db', db.url, '--card', 'demo', '--expect', 'widgets:+x', '--', 'true'],
      ['oracle', '--db', db.url, '--expect', 'widgets:+1', '--', 'true'],
      ['oracle', '--db', db.url, '--card', '../up', '--expect', 'widgets:+1', '--', 'true'],
      ['oracle', '--card', 'demo', '--expect', 'widgets:+1', '--', 'true'],
    ];
    for (const args of cases) {
      const result = await runCli(args);
      expect(result.exitCode, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).not.toContain(password);
      // One line, and where to read the usage: never the whole usage.
      expect(result.stderr, args.join(' ')).toMatch(/^sor-drills: [^\n]*; see sor-drills oracle --help$/);
    }
  });

  it('an evidence directory that cannot be made is bad usage, found before the snapshot or the command', async () => {
    const marker = path.join(dir, 'ran-with-bad-dir');
    const blocker = path.join(dir, 'a-file');
    await writeFile(blocker, 'in the way');
    const result = await runCli(['oracle', '--db', db.url, '--card', 'demo', '--expect', 'widgets:+1', '--dir', path.join(blocker, 'evidence'), '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^sor-drills: --dir .*a-file is a file, not a directory; choose another path; see sor-drills oracle --help$/);
    expect(result.stderr).not.toMatch(/before: widgets/);
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
  });

  it('unreachable target, exit 3, before the command runs', async () => {
    const port = await freePort();
    const url = `postgres://someone:${password}@127.0.0.1:${port}/nowhere`;
    const marker = path.join(dir, 'ran');
    const result = await runCli(['oracle', '--db', url, '--card', 'demo', '--expect', 'x:+1', '--dir', dir, '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/connection refused/);
    expect(result.stderr).not.toContain(password);
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
  });

  it.skipIf(!hasPsql)('wraps psql -c "insert ..." as the issue\'s user would', async () => {
    const result = await runCli(['oracle', '--db', db.url, '--card', 'psql-demo', '--tables', 'widgets', '--expect', 'widgets:+1', '--expect', 'widgets:+{name=from-psql}', '--dir', dir, '--', 'psql', db.url, '-c', `insert into widgets (name) values ('from-psql')`]);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const folder = folderOf(result.stdout)!;
    expect(await readFile(path.join(folder, 'action.log'), 'utf8')).toContain('INSERT 0 1');
    await expectNoPassword(folder, result.stdout, result.stderr);
  });
});
