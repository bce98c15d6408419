// The fleet's figures: what the database showed while it ran (pg_stat_activity,
// sampled on a connection of its own) and what its journal and tables say after.
import type pg from 'pg';

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface Sample {
  /** ms since the fleet started. */
  at: number;
  backends: number;
  /** Client backends in a statement or a transaction (active, or idle in transaction): not free for another call. */
  active: number;
  lockWaits: number;
  advisoryWaits: number;
  processed: number;
  claimed: number;
}

/** One sample: the database's client backends and lock waits, and the fleet's progress. */
export async function sample(client: Queryable, tenants: readonly string[], at: number): Promise<Sample> {
  const { rows } = await client.query<Omit<Sample, 'at'>>(
    `select count(*) filter (where a.backend_type = 'client backend')::int as backends,
            count(*) filter (where a.backend_type = 'client backend' and a.state in ('active', 'idle in transaction'))::int as active,
            count(*) filter (where a.wait_event_type = 'Lock')::int as "lockWaits",
            count(*) filter (where a.wait_event_type = 'Lock' and a.wait_event = 'advisory')::int as "advisoryWaits",
            (select count(*) from pending_transactions where tenant_id = any($1::text[]) and status = 'processed')::int as processed,
            (select count(*) from pending_transactions where tenant_id = any($1::text[]) and status = 'claimed')::int as claimed
       from pg_stat_activity a
      where a.datname = current_database() and a.pid <> pg_backend_pid()`,
    [tenants],
  );
  return { at, ...rows[0]! };
}

export interface ActivityFigures {
  /**
   * Whether the sampling login sees other roles' wait events (superuser or pg_read_all_stats):
   * without it pg_stat_activity hides the tool servers' waits, and the lock figures mean nothing.
   */
  visible: boolean;
  samples: number;
  backends_peak: number;
  /** Samples in which every client backend was busy, in a statement or a transaction (the tool servers' pools all in use). */
  saturated_share: number;
  lock_waits_peak: number;
  /** Share of samples with at least one backend waiting on a lock. */
  lock_wait_share: number;
  lock_waits_mean: number;
  advisory_waits_peak: number;
}

export function activityFigures(samples: readonly Sample[], visible: boolean): ActivityFigures {
  const n = Math.max(1, samples.length);
  const peak = (pick: (s: Sample) => number) => samples.reduce((max, s) => Math.max(max, pick(s)), 0);
  return {
    visible,
    samples: samples.length,
    backends_peak: peak((s) => s.backends),
    saturated_share: samples.filter((s) => s.backends > 0 && s.active >= s.backends).length / n,
    lock_waits_peak: peak((s) => s.lockWaits),
    lock_wait_share: samples.filter((s) => s.lockWaits > 0).length / n,
    lock_waits_mean: samples.reduce((sum, s) => sum + s.lockWaits, 0) / n,
    advisory_waits_peak: peak((s) => s.advisoryWaits),
  };
}

export interface JournalFigures {
  /** The journal's window: the fleet's first call started to its last call finished (s). */
  window_s: number;
  claims: number;
  p50_ms: number;
  p99_ms: number;
  claim_max_ms: number;
  /** The write and queue calls' p50 (ms): what a claim's latency is compared with. */
  write_p50_ms: number;
  queue_p50_ms: number;
  events: number;
  events_per_s: number;
}

/** Claim latency (each claim call's started_at to finished_at, in the journal) and the events written per second. */
export async function journalFigures(client: Queryable, tenants: readonly string[]): Promise<JournalFigures> {
  const { rows } = await client.query<{
    first: Date | null;
    last: Date | null;
    claims: number;
    p50: number | null;
    p99: number | null;
    max: number | null;
    write_p50: number | null;
    queue_p50: number | null;
    events: number;
  }>(
    `with calls as (
       select c.tool, c.started_at, c.finished_at, c.result, extract(epoch from c.finished_at - c.started_at) * 1000 as ms
         from tool_calls c join runs r on r.id = c.run_id
        where r.tenant_id = any($1::text[]) and c.status = 'completed'
     ), taken as (select ms from calls where tool = 'claim' and result ->> 'transaction_id' is not null)
     select (select min(started_at) from calls) as first, (select max(finished_at) from calls) as last,
            (select count(*) from taken)::int as claims,
            (select percentile_cont(0.5) within group (order by ms) from taken)::float8 as p50,
            (select percentile_cont(0.99) within group (order by ms) from taken)::float8 as p99,
            (select max(ms) from taken)::float8 as max,
            (select percentile_cont(0.5) within group (order by ms) from calls where tool = 'write')::float8 as write_p50,
            (select percentile_cont(0.5) within group (order by ms) from calls where tool = 'queue')::float8 as queue_p50,
            (select count(*) from agent_events where tenant_id = any($1::text[]))::int as events`,
    [tenants],
  );
  const row = rows[0]!;
  const window = row.first && row.last ? Math.max(0.001, (row.last.getTime() - row.first.getTime()) / 1000) : 0;
  return {
    window_s: window,
    claims: row.claims,
    p50_ms: row.p50 ?? 0,
    p99_ms: row.p99 ?? 0,
    claim_max_ms: row.max ?? 0,
    write_p50_ms: row.write_p50 ?? 0,
    queue_p50_ms: row.queue_p50 ?? 0,
    events: row.events,
    events_per_s: window > 0 ? row.events / window : 0,
  };
}

export interface TableFigures {
  /** Total size (heap, indexes, TOAST) of each Reconciler table after the run, bytes. */
  sizes: Record<string, number>;
  /** The claim index (pending_transactions (status, id)), bytes; null when the target has none by that name. */
  claim_index_bytes: number | null;
  /** Dead row versions in pending_transactions (each claim and processing leaves one). */
  pending_dead_rows: number;
  max_connections: number;
}

const tables = ['pending_transactions', 'expenses', 'outbox', 'runs', 'turns', 'tool_calls', 'agent_events'] as const;

export async function tableFigures(client: Queryable): Promise<TableFigures> {
  const { rows } = await client.query<{ name: string; bytes: string }>(
    `select c.relname as name, pg_total_relation_size(c.oid)::text as bytes
       from pg_class c where c.relkind in ('r', 'p') and c.relname = any($1::text[]) and pg_table_is_visible(c.oid)`,
    [tables],
  );
  const { rows: other } = await client.query<{ claim_index: string | null; dead: string | null; max_connections: string }>(
    `select pg_relation_size(to_regclass('pending_transactions_status_id_idx'))::text as claim_index,
            (select n_dead_tup from pg_stat_user_tables where relid = to_regclass('pending_transactions'))::text as dead,
            current_setting('max_connections') as max_connections`,
  );
  return {
    sizes: Object.fromEntries(rows.map((row) => [row.name, Number(row.bytes)])),
    claim_index_bytes: other[0]?.claim_index == null ? null : Number(other[0].claim_index),
    pending_dead_rows: Number(other[0]?.dead ?? 0),
    max_connections: Number(other[0]?.max_connections ?? 0),
  };
}

/** Whether this login sees every backend's wait events in pg_stat_activity. */
export async function seesAllActivity(client: Queryable): Promise<boolean> {
  const { rows } = await client.query<{ visible: boolean }>(
    `select r.rolsuper or pg_has_role(current_user, 'pg_read_all_stats', 'member') as visible from pg_roles r where r.rolname = current_user`,
  );
  return rows[0]?.visible ?? false;
}

/** The database's deadlock count so far (pg_stat_database): read before and after the run. */
export async function deadlockCount(client: Queryable): Promise<number> {
  const { rows } = await client.query<{ deadlocks: string }>(
    `select deadlocks::text from pg_stat_database where datname = current_database()`,
  );
  return Number(rows[0]?.deadlocks ?? 0);
}

export interface ClaimPlan {
  /** The plan's scan of pending_transactions, e.g. "Index Scan using pending_transactions_pkey". */
  scan: string;
  /** Rows the claim's scan read and threw away to find its row (or find none). */
  rows_removed: number;
  execution_ms: number;
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

/**
 * The claim's row search as the database runs it after the fleet (EXPLAIN ANALYZE of the claim's
 * SELECT for one tenant, without its FOR UPDATE: nothing is locked): how much a claim reads to
 * find the next row once the tenant's rows are processed.
 */
export async function claimPlan(client: Queryable, tenant: string): Promise<ClaimPlan> {
  const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode; 'Execution Time': number }> }>(
    `explain (analyze, format json)
     select id, amount_cents, description from pending_transactions
      where tenant_id = $1 and (status = 'pending' or (status = 'claimed' and locked_until < clock_timestamp()))
      order by pending_transactions.id limit 1`,
    [tenant],
  );
  const top = rows[0]!['QUERY PLAN'][0]!;
  const nodes: PlanNode[] = [];
  const walk = (node: PlanNode) => {
    nodes.push(node);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(top.Plan);
  const scan = nodes.find((node) => node['Relation Name'] === 'pending_transactions');
  return {
    scan: scan ? `${scan['Node Type']}${scan['Index Name'] ? ` using ${scan['Index Name']}` : ''}` : top.Plan['Node Type'],
    rows_removed: nodes.reduce((sum, node) => sum + (node['Rows Removed by Filter'] ?? 0), 0),
    execution_ms: top['Execution Time'],
  };
}

/** The machine's CPU time so far (/proc/stat): busy and total jiffies; undefined where there is no /proc. */
export async function cpuTimes(): Promise<{ busy: number; total: number } | undefined> {
  try {
    const { readFile } = await import('node:fs/promises');
    const first = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
    const fields = first.trim().split(/\s+/).slice(1).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}
