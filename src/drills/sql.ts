// Database helpers the drills share. Every attempt that could change the target
// runs in a transaction that is rolled back, so a drill observes what the
// database would do and leaves it as it was (a deliberate break is applied
// inside that same transaction and rolled back with it).
import type pg from 'pg';
import { ident, sqlState, errorMessage, withPgClient } from '../postgres/pg.js';
import type { DrillContext } from './types.js';

export interface Attempt {
  /** SQLSTATE when the statement was refused. */
  code?: string;
  message?: string;
  /** Rows the statement affected when it was not refused. */
  rowCount?: number;
  /** The command tag when it was not refused (TRUNCATE reports no row count). */
  command?: string;
}

/**
 * Runs `sql` as `role` inside BEGIN ... ROLLBACK. `prelude` statements run first,
 * as the connecting (owner/superuser) role: that is where a deliberate break goes.
 */
export async function attemptAs(
  ctx: DrillContext,
  role: string | null,
  sql: string,
  options: { prelude?: string[]; params?: unknown[]; tenant?: string | null } = {},
): Promise<Attempt> {
  return withPgClient(ctx.url, async (client) => {
    await client.query('begin');
    try {
      for (const statement of options.prelude ?? []) {
        ctx.showSql(statement);
        await client.query(statement);
      }
      if (role) {
        ctx.showSql(`set local role ${ident(role)}`);
        await client.query(`set local role ${ident(role)}`);
      }
      if (options.tenant !== undefined && options.tenant !== null) {
        ctx.showSql(`select set_config('app.tenant_id', '${options.tenant}', true)`);
        await client.query(`select set_config('app.tenant_id', $1, true)`, [options.tenant]);
      }
      ctx.showSql(sql);
      const result = await client.query(sql, options.params);
      return { rowCount: result.rowCount ?? 0, command: result.command };
    } catch (error) {
      return { code: sqlState(error) ?? 'unknown', message: errorMessage(error) };
    } finally {
      await client.query('rollback').catch(() => {});
    }
  });
}

/** Runs one read-only query as the connecting role and returns its rows. */
export async function query<T extends pg.QueryResultRow>(
  ctx: DrillContext,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  ctx.showSql(sql);
  return withPgClient(ctx.url, async (client) => (await client.query<T>(sql, params)).rows);
}

/** A one-word name for small counts, so evidence lines read like the seed ("from six ... rows", built from the count). */
export function countWord(count: number): string {
  const words = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];
  return words[count] ?? String(count);
}
