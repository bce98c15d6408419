// PG* variables fill a target string's gaps only where a target enters the
// program (--db, DATABASE_URL, SOR_WORKER_URL). Everywhere else, and for the
// embedded cluster above all, the environment changes nothing: not through our
// own code, and not through the pg driver's own reading of PG* variables.
// Against the shared test cluster, which has no TLS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { scratchDir } from '../helpers/scratch.js';
import { connect, withPgClient } from '../../src/postgres/pg.js';
import { parseUrl, withSslMode } from '../../src/postgres/url.js';
import { workerCredentials } from '../../src/reconciler/launch.js';
import { openWorkerPool } from '../../src/reconciler/db.js';

let db: TestDatabase;
let password: string;

/** Everything pg 8 would read from the environment, each set to something that would break or redirect us. */
const hostileEnvironment = {
  PGHOST: 'nowhere.invalid',
  PGPORT: '1',
  PGUSER: 'nobody',
  PGPASSWORD: 'not-the-password',
  PGDATABASE: 'no_such_database',
  PGSSLMODE: 'verify-full',
  PGOPTIONS: '-c search_path=from_pgoptions',
  PGAPPNAME: 'from-pgappname',
  PGSSLNEGOTIATION: 'direct',
  PGREPLICATION: 'database',
  PGCLIENT_ENCODING: 'LATIN1',
  PGCONNECT_TIMEOUT: '1',
};

/** Runs body with the hostile variables in this process's own environment, then restores it. */
async function withHostileEnvironment<T>(body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(hostileEnvironment).map((name) => [name, process.env[name]]));
  Object.assign(process.env, hostileEnvironment);
  try {
    return await body();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  password = parseUrl(db.url, {}).password;
});

afterAll(async () => {
  await db?.dispose();
});

describe("the program's own connection strings ignore PG*", () => {
  it('a client gets exactly what the string says, whatever pg would read from the environment', async () => {
    const settings = await withHostileEnvironment(() =>
      withPgClient(db.url, async (client) => {
        const { rows } = await client.query<{ db: string; who: string; path: string; app: string; ssl: boolean }>(
          `select current_database() as db, current_user as who, current_setting('search_path') as path,
                  current_setting('application_name') as app,
                  (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl`,
        );
        return rows[0]!;
      }),
    );
    expect(settings).toEqual({ db: db.name, who: 'postgres', path: '"$user", public', app: 'sor-drills', ssl: false });
  });

  it("the tool server's pool too", async () => {
    const path = await withHostileEnvironment(async () => {
      const pool = await openWorkerPool(db.url, { max: 1 });
      try {
        const client = await pool.connect();
        try {
          return (await client.query<{ path: string }>(`select current_setting('search_path') as path`)).rows[0]!.path;
        } finally {
          client.release();
        }
      } finally {
        await pool.end();
      }
    });
    expect(path).toBe('"$user", public');
  });

  it('prefer, the default, falls back to a plain connection on a server without TLS', async () => {
    const client = await connect(db.url);
    try {
      const { rows } = await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
      expect(rows[0]?.ssl).toBe(false);
    } finally {
      await client.end();
    }
  });
});

describe('where a target enters the program', () => {
  it('sslmode=require against a server without TLS exits 3 in one line', async () => {
    const result = await runCli(['setup', '--db', withSslMode(db.url, 'require')]);
    expect(result.exitCode).toBe(3);
    const lines = result.stderr.trim().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^sor-drills: .* does not accept TLS connections \(sslmode=require\)/);
    expect(`${result.stdout}${result.stderr}`).not.toContain(password);
  });

  it('a shell with PG* set still gets the embedded cluster when neither --db nor DATABASE_URL is given', async () => {
    const home = scratchDir('env-home-');
    const result = await runCli(['setup'], { env: { ...hostileEnvironment, HOME: home } });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/target: postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/sor_drills/);
    expect(result.stderr).toMatch(/applied 20260101000003_security/);
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/nowhere\.invalid|SECURITY WARNING|\(node:\d+\)/);
  });

  it('SOR_WORKER_URL may be a keyword/value string; it is handed on as a URL with its gaps filled', async () => {
    const { host, port, database } = parseUrl(db.url, {});
    const saved = { worker: process.env.SOR_WORKER_URL, password: process.env.PGPASSWORD };
    process.env.SOR_WORKER_URL = `host=${host} port=${port} dbname=${database} user=postgres sslmode=disable`;
    process.env.PGPASSWORD = password;
    try {
      const url = await workerCredentials(db.url);
      expect(url).toBe(`postgres://postgres:${password}@${host}:${port}/${database}?sslmode=disable`);
      const who = await withPgClient(url, async (client) => (await client.query<{ who: string }>('select current_user as who')).rows[0]!.who);
      expect(who).toBe('postgres');
    } finally {
      for (const [name, value] of [['SOR_WORKER_URL', saved.worker], ['PGPASSWORD', saved.password]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
