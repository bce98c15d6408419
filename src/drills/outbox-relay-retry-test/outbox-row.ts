// The drill's own outbox row, read by query at each point of the episode and
// shown on one line. Times come back as UTC ISO text so two readings compare
// with Date.parse and show the same way everywhere. The retry bookkeeping
// (attempts, last_error, next_attempt_at, dispatched_at) is read only where the
// profile maps it: an unmapped one reads null and the verdict says less.
import type { ProfileNames } from '../../postgres/profile/index.js';
import { type Identifier, identifier, type Sql, sql } from '../../postgres/sql.js';
import { query } from '../sql.js';
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

export async function readRow(ctx: DrillContext, dedupKey: string): Promise<OutboxRow | undefined> {
  const o = ctx.profile.names.outbox;
  const q = sql`select ${o.key}::text as id, ${o.status}::text as status,
            ${o.attempts ? sql`${o.attempts}::int` : sql`null::int`} as attempts,
            ${o.last_error ? sql`${o.last_error}::text` : sql`null::text`} as last_error,
            ${timeColumn(o.next_attempt_at, 'next_attempt_at')},
            ${timeColumn(o.dispatched_at, 'dispatched_at')}
       from ${o.table} where ${o.dedup_key} = ${dedupKey}`;
  const rows = await query<OutboxRow>(ctx, q);
  return rows[0];
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
