// The statements the tool server's `queue` and the relay run on the outbox, as the
// drill's steps show them (display only: the processes run their own, with every
// value bound). Written through the profile's names, so the console shows the
// target's own table and columns; an optional column the target lacks is left out,
// as the processes leave it out.
import type { ProfileNames } from '../../postgres/profile/index.js';
import type { Identifier } from '../../postgres/sql.js';

const mapped = (columns: Array<Identifier | undefined>): Identifier[] =>
  columns.filter((column): column is Identifier => column !== undefined);

/** The message's fields: their own columns, or the jsonb payload that holds them. */
function messageColumns(n: ProfileNames): Identifier[] {
  const o = n.outbox;
  const own = mapped([o.recipient, o.subject, o.body]);
  return own.length > 0 ? own : mapped([o.payload]);
}

export function queueSql(n: ProfileNames): string {
  const o = n.outbox;
  const columns = [...mapped([o.tenant, o.run, o.dedup_key]), ...messageColumns(n)];
  const values = columns.map((_, index) => `$${index + 1}`);
  return (
    `insert into ${o.table} (${columns.join(', ')}) values (${values.join(', ')}) ` +
    `on conflict (${o.dedup_key}) do nothing returning ${o.key}`
  );
}

export function claimSql(n: ProfileNames): string {
  const o = n.outbox;
  const columns = [o.key, o.dedup_key, ...messageColumns(n), ...mapped([o.attempts])];
  const due = o.next_attempt_at ? ` and ${o.next_attempt_at} <= now()` : '';
  const order = mapped([o.next_attempt_at, o.key]);
  return (
    `select ${columns.join(', ')} from ${o.table} where ${o.status} = $1${due} and ${o.tenant} = $2 ` +
    `order by ${order.join(', ')} limit 1 for update skip locked`
  );
}

export function failedSql(n: ProfileNames): string {
  const o = n.outbox;
  const set = [
    ...(o.attempts ? [`${o.attempts} = ${o.attempts} + 1`] : []),
    ...(o.last_error ? [`${o.last_error} = $2`] : []),
    ...(o.next_attempt_at
      ? [`${o.next_attempt_at} = now() + $3 * power(2, ${o.attempts ?? '0'}) * interval '1 millisecond'`]
      : []),
  ];
  return set.length > 0
    ? `update ${o.table} set ${set.join(', ')} where ${o.key} = $1`
    : `-- ${o.tableName} records no retry bookkeeping (no attempts, last_error or next_attempt_at in the profile)`;
}

export function dispatchedSql(n: ProfileNames): string {
  const o = n.outbox;
  const set = [
    `${o.status} = $2`,
    ...(o.attempts ? [`${o.attempts} = ${o.attempts} + 1`] : []),
    ...(o.dispatched_at ? [`${o.dispatched_at} = clock_timestamp()`] : []),
  ];
  return `update ${o.table} set ${set.join(', ')} where ${o.key} = $1`;
}

/** The wait for the killed operator relay's sessions (tagged by their application_name) to end. */
export const sessionsSql = 'select count(*)::int as sessions from pg_stat_activity where application_name = $1';
