// One database per test file, cloned from the template that holds the
// reference schema and seed rows. dispose() fails the file if any connection
// to its database is still open (a leaked client), then drops the database.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { ident, withPgClient } from '../../src/postgres/pg.js';
import { withDatabase } from '../../src/postgres/url.js';

export interface TestDatabase {
  name: string;
  /** Superuser URL of this file's database. */
  url: string;
  adminUrl: string;
  dispose(): Promise<void>;
}

export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const template = inject('pgTemplate');
  const name = `t_${randomBytes(5).toString('hex')}`;
  await withPgClient(adminUrl, (client) =>
    client.query(`create database ${ident(name)}${options.empty ? '' : ` template ${ident(template)}`}`),
  );
  const url = withDatabase(adminUrl, name);
  return {
    name,
    url,
    adminUrl,
    async dispose() {
      const leaked = await openConnections(adminUrl, name);
      await withPgClient(adminUrl, (client) => client.query(`drop database if exists ${ident(name)} with (force)`));
      if (leaked.length > 0) {
        throw new Error(`leaked ${leaked.length} connection(s) to ${name}: ${leaked.join(', ')}`);
      }
    },
  };
}

/** Connections still open to a database, waiting briefly for ones that are closing. */
export async function openConnections(adminUrl: string, database: string): Promise<string[]> {
  const deadline = Date.now() + 2_000;
  for (;;) {
    const { rows } = await withPgClient(adminUrl, (client) =>
      client.query<{ who: string }>(
        `select coalesce(nullif(application_name, ''), usename, 'unknown') || ' pid ' || pid as who
           from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
        [database],
      ),
    );
    if (rows.length === 0 || Date.now() > deadline) return rows.map((row) => row.who);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The rows of one query on its own connection. */
export function queryRows<T extends Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  return withPgClient(url, async (client) => (await client.query<T>(sql, params)).rows);
}
