// `sor-drills setup` as a user meets it: consent, idempotence, bad input as one
// line with the right exit code, and a password that never shows. And the
// preparation the console and `sor-drills run` share (src/postgres/prepare.ts):
// a URL target is written to only with consent, whatever it holds.
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/cli.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { prepareTarget } from '../../src/postgres/prepare.js';
import type { Target } from '../../src/postgres/target.js';
import { maskUrl, withCredentials } from '../../src/postgres/url.js';

const password = 'Sup3r-s3cret-pw';
let foreign: TestDatabase;
let fresh: TestDatabase;
let limited: TestDatabase;
let foreignUrl: string;
let freshUrl: string;
let limitedUrl: string;
const roleName = `setup_cli_${process.pid}`;
const limitedRole = `limited_${process.pid}`;

beforeAll(async () => {
  foreign = await createTestDatabase({ empty: true });
  fresh = await createTestDatabase({ empty: true });
  limited = await createTestDatabase({ empty: true });
  await withPgClient(foreign.url, async (client) => {
    await client.query(`create role ${roleName} login superuser password '${password}'`);
    await client.query(`create role ${limitedRole} login createdb password '${password}'`);
    await client.query(`alter database ${limited.name} owner to ${limitedRole}`);
    await client.query('create table customers (id int primary key, name text)');
    await client.query(`insert into customers values (1, 'keep me')`);
  });
  await withPgClient(limited.url, (client) => client.query(`grant create on schema public to ${limitedRole}`));
  foreignUrl = withCredentials(foreign.url, roleName, password);
  freshUrl = withCredentials(fresh.url, roleName, password);
  limitedUrl = withCredentials(limited.url, limitedRole, password);
});

afterAll(async () => {
  await foreign?.dispose();
  await fresh?.dispose();
  await limited?.dispose();
  await withPgClient(foreign.adminUrl, async (client) => {
    await client.query(`drop role if exists ${roleName}`);
    await client.query(`drop role if exists ${limitedRole}`);
  });
});

describe('sor-drills setup --db', () => {
  it('installs into an empty database, then says it is already there and changes nothing', async () => {
    const first = await runCli(['setup', '--db', freshUrl]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/applied 20260101000003_security/);
    const second = await runCli(['setup', '--db', freshUrl]);
    expect(second.exitCode).toBe(0);
    expect(second.stderr).toMatch(/already installed.*nothing changed/);
    for (const output of [first.stdout, first.stderr, second.stdout, second.stderr]) {
      expect(output).not.toContain(password);
    }
    const { rows } = await withPgClient(fresh.url, (client) =>
      client.query<{ n: number }>(`select count(*)::int as n from expenses`),
    );
    expect(rows[0]?.n).toBe(78);
  });

  it('refuses a foreign non-empty database without --yes and leaves it untouched', async () => {
    const result = await runCli(['setup', '--db', foreignUrl]);
    expect(result.exitCode).toBe(1);
    const errors = result.stderr.trim().split('\n').filter((line) => line.startsWith('sor-drills:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/holds tables of its own \(customers\).*--yes/);
    const { rows } = await withPgClient(foreign.url, (client) =>
      client.query<{ name: string }>(
        `select tablename as name from pg_tables where schemaname = 'public' order by 1`,
      ),
    );
    expect(rows.map((row) => row.name)).toEqual(['customers']);
  });

  it("an extension's own views (pg_buffercache) do not make a database foreign", async () => {
    const withExtension = await createTestDatabase({ empty: true });
    try {
      await withPgClient(withExtension.url, (client) => client.query('create extension pg_buffercache'));
      const result = await runCli(['setup', '--db', withCredentials(withExtension.url, roleName, password)]);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/inserted seed rows/);
    } finally {
      await withExtension.dispose();
    }
  });

  it('takes DATABASE_URL when --db is absent', async () => {
    const result = await runCli(['setup'], { env: { DATABASE_URL: freshUrl } });
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/already installed/);
  });

  it('names a missing CREATEROLE privilege and exits 3', async () => {
    const result = await runCli(['setup', '--db', limitedUrl]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/missing privilege CREATEROLE/);
    expect(result.stderr).not.toContain(password);
  });

  it('a role that may not read schema_migrations: exit 3 naming the table, not an internal error', async () => {
    // The fresh database holds the schema by now; the limited role cannot read its migration table.
    const url = withCredentials(fresh.url, limitedRole, password);
    const result = await runCli(['run', '--db', url, '--yes', '--only', 'idempotency_retry_test']);
    expect(result.exitCode).toBe(3);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/cannot read public\.schema_migrations.*42501/);
    expect(result.stderr).not.toContain(password);
  });
});

describe('preparing a target for the drills (the console and `run` share it)', () => {
  const urlTarget = (db: TestDatabase): Target => ({ kind: 'url', url: db.url, display: maskUrl(db.url), database: db.name, close: async () => {} });
  const publicTables = async (db: TestDatabase) =>
    (
      await withPgClient(db.url, (client) =>
        client.query<{ name: string }>(`select tablename as name from pg_tables where schemaname = 'public' order by 1`),
      )
    ).rows.map((row) => row.name);

  it('an empty URL database is only read without consent; with it the schema is installed, then tested as it is', async () => {
    const empty = await createTestDatabase({ empty: true });
    try {
      const target = urlTarget(empty);
      const asked = await prepareTarget(target, { consent: false });
      expect(asked).toMatchObject({ kind: 'needs-consent', state: { kind: 'empty' }, installs: true });
      expect(asked.kind === 'needs-consent' && asked.why).toMatch(/is empty: .*append-only/);
      expect(await publicTables(empty)).toEqual([]);
      const lines: string[] = [];
      expect(await prepareTarget(target, { consent: true, onProgress: (line) => lines.push(line) })).toMatchObject({
        kind: 'ready',
        state: { kind: 'empty' },
      });
      expect(lines).toContain('inserted seed rows: tenants alice and bob, 47 + 31 expenses, pending T-101..T-110, run R-44');
      // Installed now: still a question without consent (drills write rows), and with it nothing is changed.
      expect(await prepareTarget(target, { consent: false })).toMatchObject({ kind: 'needs-consent', state: { kind: 'installed' }, installs: false });
      expect(await prepareTarget(target, { consent: true })).toMatchObject({ kind: 'ready', state: { kind: 'installed' } });
    } finally {
      await empty.dispose();
    }
  });

  it('`run` on a foreign URL database without --yes: exit 2 naming its tables and --yes, nothing written', async () => {
    const result = await runCli(['run', '--db', foreignUrl]);
    expect(result.exitCode).toBe(2);
    const errors = result.stderr.trim().split('\n').filter((line) => line.startsWith('sor-drills:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/holds tables of its own \(customers\) and no Reconciler schema.*append-only.*--yes/);
    expect(errors[0]).not.toContain(password);
    expect(await publicTables(foreign)).toEqual(['customers']);
  });
});

describe('bad input: one line, what to do, the right exit code', () => {
  let silent: Server;
  let silentPort = 0;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // A loopback server that accepts and never answers: an unreachable host without leaving the machine.
    silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  const oneLine = (stderr: string) => expect(stderr.trim().split('\n')).toHaveLength(1);

  it('a host that never answers: exit 3 within 15 s', async () => {
    const result = await runCli(['setup', '--db', `postgres://u:${password}@127.0.0.1:${silentPort}/db`]);
    expect(result.exitCode).toBe(3);
    expect(result.durationMs).toBeLessThan(15_000);
    expect(result.stderr).toMatch(/no answer from postgres:\/\/u:\*\*\*@127\.0\.0\.1/);
    expect(result.stderr).not.toContain(password);
    oneLine(result.stderr);
  });

  it('a refused connection: exit 3', async () => {
    const closed = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const port = (probe.address() as { port: number }).port;
        probe.close(() => resolve(port));
      });
    });
    const result = await runCli(['setup', '--db', `postgres://u:${password}@127.0.0.1:${closed}/db`]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/connection refused/);
    oneLine(result.stderr);
  });

  it('a malformed connection string: exit 2 naming --db', async () => {
    const result = await runCli(['setup', '--db', 'not a url']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^sor-drills: --db: .*; see sor-drills setup --help$/);
    oneLine(result.stderr);
  });

  it('a wrong password: exit 3, the password not echoed', async () => {
    const wrong = 'Wr0ng-passw0rd-here';
    const result = await runCli(['setup', '--db', withCredentials(fresh.url, roleName, wrong)]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/authentication failed/);
    expect(result.stderr).not.toContain(wrong);
    oneLine(result.stderr);
  });

  it('an unknown flag: exit 2, one line pointing at the usage, not the usage itself', async () => {
    const result = await runCli(['setup', '--frobnicate']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe('sor-drills: unknown flag --frobnicate; see sor-drills setup --help');
    expect(result.stderr).not.toMatch(/Usage/);
  });

  it('an unknown command: exit 2, one line', async () => {
    const result = await runCli(['frobnicate']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^sor-drills: unknown command: frobnicate .*; see sor-drills --help$/);
    oneLine(result.stderr);
  });

  it('a malformed DATABASE_URL: exit 2 naming the variable, before anything starts', async () => {
    const result = await runCli(['setup'], { env: { DATABASE_URL: `postgres://u:${password}@[::1` } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^sor-drills: DATABASE_URL: .*; see sor-drills setup --help$/);
    expect(result.stderr).not.toContain(password);
    oneLine(result.stderr);
  });
});
