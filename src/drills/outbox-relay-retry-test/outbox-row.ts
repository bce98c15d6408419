// The drill's own outbox row, read by query at each point of the episode and
// shown on one line. Times come back as UTC ISO text so two readings compare
// with Date.parse and show the same way everywhere.
import { query } from '../sql.js';
import type { DrillContext } from '../types.js';

export interface OutboxRow {
  id: string;
  status: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: string;
  dispatched_at: string | null;
}

/** The read as the steps show it (their `sql`); readRow runs it with the times formatted. */
export const rowSql =
  'select id, status, attempts, last_error, next_attempt_at, dispatched_at from outbox where dedup_key = $1';

export async function readRow(ctx: DrillContext, dedupKey: string): Promise<OutboxRow | undefined> {
  const rows = await query<OutboxRow>(
    ctx,
    `select id, status, attempts, last_error,
            to_char(next_attempt_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as next_attempt_at,
            to_char(dispatched_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as dispatched_at
       from outbox where dedup_key = $1`,
    [dedupKey],
  );
  return rows[0];
}

export function showRow(row: OutboxRow | undefined): string {
  if (!row) return 'no row';
  return (
    `${row.id} status=${row.status} attempts=${row.attempts} ` +
    `last_error=${row.last_error === null ? 'null' : JSON.stringify(row.last_error)} ` +
    `next_attempt_at=${row.next_attempt_at} dispatched_at=${row.dispatched_at ?? 'null'}`
  );
}
