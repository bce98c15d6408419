// Database helpers the drills share. Every attempt that could change the target
// runs in a transaction that is rolled back, so a drill observes what the
// database would do and leaves it as it was (a deliberate break is applied
// inside that same transaction and rolled back with it).
//
// Statements are Sql (src/postgres/sql.ts: names quoted, values bound) or, for
// text that names nothing of the target (`set local lock_timeout = '2s'`), plain
// strings. What the operator is shown is `shownSql`: the statement with its values
// as literals and the tables written the way a person types them.
import type pg from 'pg';
import { connect, ident, sqlState, errorMessage, withPgClient } from '../postgres/pg.js';
import { type Sql, sql } from '../postgres/sql.js';
import type { DrillContext } from './types.js';

/** What a drill runs: an Sql, or a plain string that binds nothing. */
export type Statement = Sql | string;

/** A drill's own connection: opened by its first query or attempt, closed when the drill ends. */
interface DrillConnection {
  client: Promise<pg.Client>;
  /** Each use waits for the one before: an attempt's BEGIN ... ROLLBACK is never shared. */
  turn: Promise<unknown>;
  closed: boolean;
  /** The connection ended under it (its backend died, or it was ended): the next use opens another. */
  lost: boolean;
}

const drillConnections = new WeakMap<DrillContext, DrillConnection>();

/** An error after which the connection cannot be trusted: no SQLSTATE, or a lost connection (08) or a shutdown (57). */
const connectionLost = (error: unknown) => {
  const code = sqlState(error);
  return code === undefined || code.startsWith('08') || code.startsWith('57');
};

/**
 * Runs `callback` on the drill's own connection (one per drill run, as the connecting
 * role, in autocommit between uses): a fresh connection for every statement cost a TCP
 * connect, a SCRAM exchange and a backend start each, some 5-12 ms, about forty-five
 * times a run. Uses take turns; each leaves no transaction and no setting behind (the
 * attempts' SET LOCAL ends with their rollback). A use that sets the tenant setting
 * (set_config of app.tenant_id, even local) is not made here: after it the session reads
 * '' where a fresh one reads NULL (PITFALLS.md), which an unset-context read would then
 * see. A connection that fails is dropped and the next use opens another; a context
 * without cleanups (a test's) or a drill that has ended gets a fresh connection for the
 * one use, as before.
 */
export async function withDrillClient<T>(ctx: DrillContext, callback: (client: pg.Client, discard: () => void) => Promise<T>): Promise<T> {
  if (typeof ctx.defer !== 'function' || drillConnections.get(ctx)?.closed) return withPgClient(ctx.url, (client) => callback(client, () => {}));
  let connection = drillConnections.get(ctx);
  if (connection?.lost) {
    drillConnections.delete(ctx);
    connection = undefined;
  }
  if (!connection) {
    const opened: DrillConnection = { client: connect(ctx.url), turn: Promise.resolve(), closed: false, lost: false };
    connection = opened;
    drillConnections.set(ctx, opened);
    opened.client.then(
      (client) => client.once('end', () => void (opened.lost = true)),
      () => drillConnections.get(ctx) === opened && drillConnections.delete(ctx),
    );
    ctx.defer(async () => {
      opened.closed = true;
      await opened.turn.catch(() => {});
      const client = await opened.client.catch(() => undefined);
      await client?.end().catch(() => {});
    });
  }
  const current = connection;
  const run = current.turn.catch(() => {}).then(async () => {
    // Dropped or closed while this use waited its turn: this one use gets a connection of its own.
    if (drillConnections.get(ctx) !== current || current.closed || current.lost) return withPgClient(ctx.url, (client) => callback(client, () => {}));
    const client = await current.client;
    let discarded = false;
    try {
      return await callback(client, () => {
        discarded = true;
      });
    } catch (error) {
      if (connectionLost(error)) discarded = true;
      throw error;
    } finally {
      if (discarded) drop(ctx, current, client);
    }
  });
  current.turn = run;
  return run;
}

/** Forgets a connection that cannot be trusted (the next use opens another) and ends it. */
function drop(ctx: DrillContext, connection: DrillConnection, client: pg.Client): void {
  if (drillConnections.get(ctx) === connection) drillConnections.delete(ctx);
  void client.end().catch(() => {});
}

/**
 * PostgreSQL's reserved keywords (reserved, and reserved as function or type names):
 * a table named like one must stay quoted on screen.
 */
const reserved = new Set(
  (
    'all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation column ' +
    'concurrently constraint create cross current_catalog current_date current_role current_schema current_time ' +
    'current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze from ' +
    'full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit localtime ' +
    'localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references returning ' +
    'right select session_user similar some symmetric system_user table tablesample then to trailing true union unique user ' +
    'using variadic verbose when where window with'
  ).split(' '),
);

const plain = (name: string) => /^[a-z_][a-z0-9_$]*$/.test(name) && !reserved.has(name);

/**
 * A statement as the operator reads it: values as literals (Sql.shown), and each
 * schema-qualified table written as a person types it: `"public"."agent_events"`
 * becomes `agent_events` (public is the default search path), a name that needs no
 * quotes loses them. Columns keep their quotes. Display only: what runs is the Sql.
 */
export function shownSql(statement: Statement): string {
  const text = typeof statement === 'string' ? statement : statement.shown;
  return text.replace(/"((?:[^"]|"")+)"\."((?:[^"]|"")+)"/g, (whole, schema: string, table: string) => {
    if (schema.includes('""') || table.includes('""')) return whole;
    const name = plain(table) ? table : `"${table}"`;
    if (schema === 'public') return name;
    return `${plain(schema) ? schema : `"${schema}"`}.${name}`;
  });
}

/** A query as pg takes it: an Sql with its values, or a string with the given parameters. */
function toQuery(statement: Statement, params: unknown[] = []): { text: string; values: unknown[] } {
  return typeof statement === 'string' ? { text: statement, values: params } : { text: statement.text, values: statement.values };
}

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
 * Runs `statement` as `role` inside BEGIN ... ROLLBACK. `prelude` statements run first,
 * as the connecting (owner/superuser) role: that is where a deliberate break goes.
 * `tenant` sets the profile's session setting (app.tenant_id on the reference) first.
 */
export async function attemptAs(
  ctx: DrillContext,
  role: string | null,
  statement: Statement,
  options: { prelude?: Statement[]; params?: unknown[]; tenant?: string | null } = {},
): Promise<Attempt> {
  // With a tenant context the attempt sets the tenant setting: a connection of its own (withDrillClient).
  const withClient =
    options.tenant !== undefined && options.tenant !== null
      ? <T>(callback: (client: pg.Client, discard: () => void) => Promise<T>) => withPgClient(ctx.url, (client) => callback(client, () => {}))
      : <T>(callback: (client: pg.Client, discard: () => void) => Promise<T>) => withDrillClient(ctx, callback);
  return withClient(async (client, discard) => {
    await client.query('begin');
    try {
      for (const step of options.prelude ?? []) {
        ctx.showSql(shownSql(step));
        await client.query(toQuery(step));
      }
      if (role) {
        ctx.showSql(`set local role ${ident(role)}`);
        await client.query(`set local role ${ident(role)}`);
      }
      if (options.tenant !== undefined && options.tenant !== null) {
        const setting = sql`select set_config(${ctx.profile.names.setting}, ${options.tenant}, true)`;
        ctx.showSql(shownSql(setting));
        await client.query(toQuery(setting));
      }
      ctx.showSql(shownSql(statement));
      const result = await client.query(toQuery(statement, options.params));
      return { rowCount: result.rowCount ?? 0, command: result.command };
    } catch (error) {
      if (connectionLost(error)) discard();
      return { code: sqlState(error) ?? 'unknown', message: errorMessage(error) };
    } finally {
      // A rollback that fails leaves the connection in an unknown state: it is not used again.
      await client.query('rollback').catch(discard);
    }
  });
}

/**
 * Runs one read-only query as the connecting role and returns its rows: an Sql
 * (shown with its values as literals), or a string with bind parameters.
 */
export async function query<T extends pg.QueryResultRow>(ctx: DrillContext, statement: Statement, params: unknown[] = []): Promise<T[]> {
  ctx.showSql(shownSql(statement));
  return withDrillClient(ctx, async (client) => (await client.query<T>(toQuery(statement, params))).rows);
}

/** A one-word name for small counts, so evidence lines read like the seed ("from six ... rows", built from the count). */
export function countWord(count: number): string {
  const words = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];
  return words[count] ?? String(count);
}

