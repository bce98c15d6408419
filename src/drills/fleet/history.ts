// The fleet's history check, from the database alone: what the rows and the
// journal say happened to every transaction the fleet was given. Nothing the
// Workers printed is believed here. Each violation names its rows.
import type pg from 'pg';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** SQLSTATEs of lock trouble: lock_not_available, deadlock_detected, serialization_failure. */
export const lockErrorCodes = ['55P03', '40P01', '40001'] as const;

export interface Violation {
  /** What was broken, in a few words. */
  what: string;
  /** How many rows break it. */
  count: number;
  /** The first rows, named (transaction ids, run ids, worker pairs). */
  rows: string[];
}

export interface HistoryCheck {
  ok: boolean;
  transactions: number;
  processed: number;
  /** Transactions processed more than once: a second expense, a second outbox row, a second processing write, or held by two Workers at once. */
  duplicates: number;
  /** Transactions not processed, or without their expense or outbox row. */
  lost: number;
  /** Calls that failed on a lock (55P03 / 40P01 / 40001 or a deadlock) plus the deadlocks the database counted meanwhile. */
  lock_errors: number;
  /** Transactions claimed again by another Worker after a lease ran out (not a violation: the lease did its job). */
  reclaimed: number;
  runs: number;
  calls: number;
  events: number;
  violations: Violation[];
}

const shownRows = 10;

async function rows<T extends pg.QueryResultRow>(client: Queryable, text: string, values: unknown[]): Promise<T[]> {
  return (await client.query<T>(text, values)).rows;
}

/** The fleet runs' journaled calls as the check reads them (a CTE prefix shared by the queries). */
const journal = `
  with fleet_runs as (select id, worker, tenant_id, status from runs where tenant_id = any($1::text[])),
  claims as (
    select c.result ->> 'transaction_id' as tx, r.worker, c.run_id,
           (c.result ->> 'locked_at')::timestamptz as locked_at, (c.result ->> 'locked_until')::timestamptz as locked_until
      from tool_calls c join fleet_runs r on r.id = c.run_id
     where c.tool = 'claim' and c.status = 'completed' and c.result ->> 'transaction_id' is not null
  ),
  writes as (
    select c.arguments ->> 'transaction_id' as tx, r.worker, c.finished_at, coalesce((c.result ->> 'processed')::boolean, false) as processed
      from tool_calls c join fleet_runs r on r.id = c.run_id
     where c.tool = 'write' and c.status = 'completed'
  )`;

/**
 * Checks every transaction of the fleet's tenants. `deadlocks` is how many deadlocks the
 * database counted during the run (pg_stat_database, after minus before).
 */
export async function checkHistory(client: Queryable, tenants: readonly string[], deadlocks: number): Promise<HistoryCheck> {
  const violations: Violation[] = [];
  const add = (what: string, found: string[], count = found.length) => {
    if (count > 0) violations.push({ what, count, rows: found.slice(0, shownRows) });
  };

  const perTransaction = await rows<{ id: string; status: string; expenses: number; outbox: number; writes: number; claimers: number; claims: number }>(
    client,
    `${journal}
     select p.id, p.status, coalesce(e.n, 0)::int as expenses, coalesce(o.n, 0)::int as outbox, coalesce(w.n, 0)::int as writes,
            coalesce(c.workers, 0)::int as claimers, coalesce(c.n, 0)::int as claims
       from pending_transactions p
       left join (select tenant_id, transaction_id, count(*) as n from expenses where tenant_id = any($1::text[]) group by 1, 2) e
              on e.tenant_id = p.tenant_id and e.transaction_id = p.id
       left join (select dedup_key, count(*) as n from outbox where tenant_id = any($1::text[]) group by 1) o
              on o.dedup_key = 'expense-recorded:' || p.tenant_id || ':' || p.id
       left join (select tx, count(*) as n from writes where processed group by 1) w on w.tx = p.id
       left join (select tx, count(*) as n, count(distinct worker) as workers from claims group by 1) c on c.tx = p.id
      where p.tenant_id = any($1::text[])
      order by p.id`,
    [tenants],
  );
  const transactions = perTransaction.length;
  const processed = perTransaction.filter((row) => row.status === 'processed').length;
  const lost = perTransaction.filter((row) => row.status !== 'processed' || row.expenses === 0 || row.outbox === 0);
  add('not processed, or without its expense or outbox row (lost)', lost.map((row) => `${row.id} (${row.status}, ${row.expenses} expense, ${row.outbox} outbox)`));
  add('more than one expense', perTransaction.filter((row) => row.expenses > 1).map((row) => `${row.id} (${row.expenses} expenses)`));
  add('more than one outbox row', perTransaction.filter((row) => row.outbox > 1).map((row) => `${row.id} (${row.outbox} outbox rows)`));
  add('marked processed by more than one write', perTransaction.filter((row) => row.writes > 1).map((row) => `${row.id} (${row.writes} writes)`));

  // Held by two Workers at once: each claim holds its row from locked_at until the same
  // Worker's write of it finished (or, never written, until its lease ran out).
  const overlaps = await rows<{ tx: string; a: string; b: string; a_at: string; b_at: string }>(
    client,
    `${journal},
     contested as (select tx from claims group by tx having count(distinct worker) > 1),
     holds as (
       select c.tx, c.worker, c.locked_at,
              coalesce((select min(w.finished_at) from writes w where w.tx = c.tx and w.worker = c.worker and w.finished_at >= c.locked_at),
                       c.locked_until, 'infinity'::timestamptz) as ended
         from claims c where c.tx in (select tx from contested)
     )
     select distinct on (a.tx) a.tx, a.worker as a, b.worker as b, a.locked_at::text as a_at, b.locked_at::text as b_at
       from holds a join holds b on a.tx = b.tx and a.worker < b.worker and a.locked_at < b.ended and b.locked_at < a.ended
      order by a.tx`,
    [tenants],
  );
  add(
    'held by two Workers at once (claimed again while the first claim held it)',
    overlaps.map((row) => `${row.tx}: ${row.a} and ${row.b}`),
  );
  const held = new Set(overlaps.map((row) => row.tx));
  const duplicateIds = new Set(
    perTransaction.filter((row) => row.expenses > 1 || row.outbox > 1 || row.writes > 1 || held.has(row.id)).map((row) => row.id),
  );
  const reclaimed = perTransaction.filter((row) => row.claimers > 1 && !held.has(row.id)).length;

  const redone = await rows<{ call: string }>(
    client,
    `select c.run_id || ' turn ' || c.turn_no || ' call ' || c.call_no as call
       from tool_calls c join runs r on r.id = c.run_id
      where r.tenant_id = any($1::text[]) and c.status = 'completed'
      group by c.run_id, c.turn_no, c.call_no having count(*) > 1
      order by 1`,
    [tenants],
  );
  add('a completed call made again (not reused on resume)', redone.map((row) => row.call));

  const unfinished = await rows<{ id: string; worker: string; status: string; error: string | null }>(
    client,
    `select id, worker, status, error from runs where tenant_id = any($1::text[]) and status <> 'finished' order by id`,
    [tenants],
  );
  add('a run not finished (crashed and never resumed, or failed)', unfinished.map((run) => `${run.id} (${run.worker}, ${run.status}${run.error ? `: ${run.error}` : ''})`));

  const lockFailures = await rows<{ call: string }>(
    client,
    `select c.run_id || ' ' || c.tool || ' turn ' || c.turn_no || ': ' || coalesce(c.error_code, '') || ' ' || coalesce(c.error, '') as call
       from tool_calls c join runs r on r.id = c.run_id
      where r.tenant_id = any($1::text[]) and c.status = 'failed'
        and (c.error_code = any($2::text[]) or c.error ilike '%deadlock%' or c.error ilike '%could not obtain lock%')
      order by c.id`,
    [tenants, lockErrorCodes],
  );
  add('a call failed on a lock (55P03, 40P01, 40001 or deadlock)', lockFailures.map((row) => row.call));
  if (deadlocks > 0) violations.push({ what: 'deadlocks counted by the database during the run (pg_stat_database)', count: deadlocks, rows: [] });

  const crossTenant = await rows<{ id: string }>(
    client,
    `select e.id::text || ' (expense of ' || e.tenant_id || ' for ' || p.id || ' of ' || p.tenant_id || ')' as id
       from expenses e join pending_transactions p on p.id = e.transaction_id
      where p.tenant_id = any($1::text[]) and e.tenant_id <> p.tenant_id
      order by e.id`,
    [tenants],
  );
  add("an expense written under another tenant than its transaction's", crossTenant.map((row) => row.id));

  const [totals] = await rows<{ runs: number; calls: number; completed: number; events: number; tool_events: number }>(
    client,
    `select (select count(*) from runs where tenant_id = any($1::text[]))::int as runs,
            (select count(*) from tool_calls c join runs r on r.id = c.run_id where r.tenant_id = any($1::text[]))::int as calls,
            (select count(*) from tool_calls c join runs r on r.id = c.run_id where r.tenant_id = any($1::text[]) and c.status = 'completed')::int as completed,
            (select count(*) from agent_events where tenant_id = any($1::text[]))::int as events,
            (select count(*) from agent_events where tenant_id = any($1::text[]) and event_type = 'tool_called')::int as tool_events`,
    [tenants],
  );
  if (totals!.tool_events !== totals!.completed) {
    violations.push({
      what: 'agent_events does not hold one tool_called event per completed call',
      count: Math.abs(totals!.completed - totals!.tool_events),
      rows: [`${totals!.completed} completed calls, ${totals!.tool_events} tool_called events`],
    });
  }

  return {
    ok: violations.length === 0,
    transactions,
    processed,
    duplicates: duplicateIds.size,
    lost: lost.length,
    lock_errors: lockFailures.length + deadlocks,
    reclaimed,
    runs: totals!.runs,
    calls: totals!.calls,
    events: totals!.events,
    violations,
  };
}
