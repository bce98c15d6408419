// The drill's own outbox row, read by query at each point of the episode and
// shown on one line. Times come back as UTC ISO text so two readings compare
// with Date.parse and show the same way everywhere. The retry bookkeeping
// (attempts, last_error, next_attempt_at, dispatched_at) is read only where the
// profile maps it: an unmapped one reads null and the verdict says less.
// watchRow polls it on one connection (the operator's relay is watched from the
// database, not from its output).
import type { ProfileNames } from '../../postgres/profile/index.js';
import { type Identifier, identifier, type Sql, sql } from '../../postgres/sql.js';
import { withPgClient } from '../../postgres/pg.js';
import { waitFor, WaitTimeout } from '../../util/wait.js';
import { query, shownSql } from '../sql.js';
import type { DrillContext } from '../types.js';

export interface OutboxRow {
  id: string;
  /** The target's own status value (profile outbox.status.values). */
  status: string;
  /** null when outbox.attempts is not in the profile. */
  attempts: number | null;
  last_error: string | null;
  /** null when outbox.next_attempt_at is not in the profile. */
  next_attempt_at: string | null;
  dispatched_at: string | null;
}

/** The columns the row is read with, for the steps' `sql` (the mapped ones only). */
function rowColumns(n: ProfileNames): Identifier[] {
  const o = n.outbox;
  return [o.key, o.status, o.attempts, o.last_error, o.next_attempt_at, o.dispatched_at].filter(
    (column): column is Identifier => column !== undefined,
  );
}

/** The read as the steps show it (their `sql`); readRow runs it with the times formatted. */
export function rowSql(n: ProfileNames): string {
  return `select ${rowColumns(n).join(', ')} from ${n.outbox.table} where ${n.outbox.dedup_key} = $1`;
}

const isoFormat = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"';

function timeColumn(column: Identifier | undefined, alias: string): Sql {
  return column
    ? sql`to_char(${column} at time zone ${'UTC'}::text, ${isoFormat}::text) as ${identifier(alias)}`
    : sql`null::text as ${identifier(alias)}`;
}

function rowQuery(o: ProfileNames['outbox'], dedupKey: string): Sql {
  return sql`select ${o.key}::text as id, ${o.status}::text as status,
            ${o.attempts ? sql`${o.attempts}::int` : sql`null::int`} as attempts,
            ${o.last_error ? sql`${o.last_error}::text` : sql`null::text`} as last_error,
            ${timeColumn(o.next_attempt_at, 'next_attempt_at')},
            ${timeColumn(o.dispatched_at, 'dispatched_at')}
       from ${o.table} where ${o.dedup_key} = ${dedupKey}`;
}

export async function readRow(ctx: DrillContext, dedupKey: string): Promise<OutboxRow | undefined> {
  const rows = await query<OutboxRow>(ctx, rowQuery(ctx.profile.names.outbox, dedupKey));
  return rows[0];
}

/** What watchRow saw: the last reading, and whether `until` held for it before the deadline. */
export interface Watched {
  row: OutboxRow | undefined;
  met: boolean;
}

/**
 * Reads the row on one connection (shown once) until `until` holds for a reading,
 * or the deadline passes: then `met` is false and `row` is the last reading. What
 * `until` throws (a process gone) ends the watch.
 */
export async function watchRow(
  ctx: DrillContext,
  dedupKey: string,
  what: string,
  until: (row: OutboxRow | undefined) => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<Watched> {
  const q = rowQuery(ctx.profile.names.outbox, dedupKey);
  ctx.showSql(shownSql(q));
  return withPgClient(ctx.url, async (client) => {
    let row: OutboxRow | undefined;
    try {
      await waitFor(
        what,
        async () => {
          row = (await client.query<OutboxRow>(q)).rows[0];
          return until(row);
        },
        { timeoutMs, intervalMs: 50, signal: ctx.signal },
      );
      return { row, met: true };
    } catch (error) {
      if (error instanceof WaitTimeout) return { row, met: false };
      throw error;
    }
  });
}

export function showRow(row: OutboxRow | undefined, n: ProfileNames): string {
  if (!row) return 'no row';
  const o = n.outbox;
  const fields = [
    `${o.status.name}=${row.status}`,
    ...(o.attempts ? [`${o.attempts.name}=${row.attempts}`] : []),
    ...(o.last_error ? [`${o.last_error.name}=${row.last_error === null ? 'null' : JSON.stringify(row.last_error)}`] : []),
    ...(o.next_attempt_at ? [`${o.next_attempt_at.name}=${row.next_attempt_at}`] : []),
    ...(o.dispatched_at ? [`${o.dispatched_at.name}=${row.dispatched_at ?? 'null'}`] : []),
  ];
  return `${row.id} ${fields.join(' ')}`;
}
