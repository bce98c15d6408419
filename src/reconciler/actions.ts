// What each tool does to the Reconciler's tables. Every value from a tool's
// arguments is a bind parameter: a string like `COMMIT; DROP TABLE expenses`
// is stored as data. Each function runs on a client already inside the call's
// transaction with app.tenant_id set (claim, write) or none needed (queue, read).
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { delay } from '../util/wait.js';
import { lockWorkerForRead } from './journal.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The deliberate breaks of the drills: each removes one mechanism so its drill must fail. */
export interface ToolBreaks {
  /** write inserts a fresh random idempotency key with no ON CONFLICT: a repeated write lands twice. */
  noIdempotencyKey?: boolean;
  /** claim uses plain FOR UPDATE: a second Worker waits on the first one's lock. */
  noSkipLocked?: boolean;
  /** a fifth tool `sql` executes its argument: the surface the boundary drill must catch. */
  rawSqlTool?: boolean;
  /** no agent_events rows at all: the forensics drill cannot build its report. */
  noEvents?: boolean;
}

export const breakNames = ['noIdempotencyKey', 'noSkipLocked', 'rawSqlTool', 'noEvents'] as const satisfies ReadonlyArray<
  keyof ToolBreaks
>;

/** The breaks as the tool server's SOR_TOOLS_BREAKS value (comma-separated names). */
export function formatBreaks(breaks: ToolBreaks = {}): string {
  return breakNames.filter((name) => breaks[name]).join(',');
}

export function parseBreaks(raw: string | undefined): ToolBreaks {
  const breaks: ToolBreaks = {};
  for (const name of (raw ?? '').split(',').map((part) => part.trim()).filter(Boolean)) {
    if (!(breakNames as readonly string[]).includes(name)) throw new Error(`unknown break ${name} (known: ${breakNames.join(', ')})`);
    breaks[name as keyof ToolBreaks] = true;
  }
  return breaks;
}

export interface ClaimResult extends Record<string, unknown> {
  transaction_id: string | null;
  amount_cents: number | null;
  description: string | null;
  /** clock_timestamp() just after the row lock was taken (null when nothing was claimed). */
  locked_at: string | null;
  /** clock_timestamp() just before the transaction commits (and the lock is released). */
  released_at: string;
  locked_until: string | null;
}

export interface ClaimOptions {
  tenant: string;
  worker: string;
  holdMs: number;
  leaseMs: number;
  skipLocked: boolean;
  /** Called while the row lock is held (the server logs claim_locked). */
  onLocked?: (transactionId: string) => void;
  /** How the hold waits: a plain delay by default; the tool server's can be ended early (holds.ts). */
  hold?: (ms: number) => Promise<unknown>;
}

/**
 * The next pending transaction of the tenant, or a claimed one whose lease has
 * expired (its Worker died after committing the claim). Locked FOR UPDATE SKIP
 * LOCKED, marked claimed with a lease, and held `holdMs` before the commit so
 * that a race is visible.
 */
export async function claim(client: Queryable, options: ClaimOptions): Promise<ClaimResult> {
  const { rows } = await client.query<{ id: string; amount_cents: number; description: string }>(
    `select id, amount_cents, description
       from pending_transactions
      where tenant_id = $1
        and (status = 'pending' or (status = 'claimed' and locked_until < clock_timestamp()))
      order by id
      limit 1
      for update${options.skipLocked ? ' skip locked' : ''}`,
    [options.tenant],
  );
  const row = rows[0];
  if (!row) {
    const { rows: now } = await client.query<{ released_at: Date }>('select clock_timestamp() as released_at');
    return {
      transaction_id: null,
      amount_cents: null,
      description: null,
      locked_at: null,
      released_at: now[0]!.released_at.toISOString(),
      locked_until: null,
    };
  }
  const { rows: claimed } = await client.query<{ locked_at: Date; locked_until: Date }>(
    `update pending_transactions
        set status = 'claimed', claimed_by = $2, locked_until = clock_timestamp() + $3 * interval '1 millisecond'
      where id = $1
      returning clock_timestamp() as locked_at, locked_until`,
    [row.id, options.worker, options.leaseMs],
  );
  options.onLocked?.(row.id);
  if (options.holdMs > 0) await (options.hold ?? delay)(options.holdMs);
  const { rows: now } = await client.query<{ released_at: Date }>('select clock_timestamp() as released_at');
  return {
    transaction_id: row.id,
    amount_cents: row.amount_cents,
    description: row.description,
    locked_at: claimed[0]!.locked_at.toISOString(),
    released_at: now[0]!.released_at.toISOString(),
    locked_until: claimed[0]!.locked_until.toISOString(),
  };
}

export interface WriteInput {
  tenant: string;
  worker: string;
  idempotency_key: string;
  transaction_id?: string | undefined;
  amount_cents: number;
  description: string;
}

export interface WriteResult extends Record<string, unknown> {
  inserted: boolean;
  expense_id: string | null;
  idempotency_key: string;
  transaction_id: string | null;
  /** Whether this call marked the pending transaction processed (false when it already was, or none). */
  processed: boolean;
}

/**
 * An expense, INSERT ... ON CONFLICT (tenant_id, idempotency_key) DO NOTHING:
 * a repeated write is a no-op that says so. If the target has no such unique key
 * Postgres refuses the statement (42P10) and the call fails: never papered over.
 */
export async function write(client: Queryable, input: WriteInput, breaks: ToolBreaks): Promise<WriteResult> {
  const key = breaks.noIdempotencyKey ? `no-key:${randomUUID()}` : input.idempotency_key;
  const values = [input.tenant, key, input.transaction_id ?? null, input.amount_cents, input.description];
  const inserted = breaks.noIdempotencyKey
    ? await client.query<{ id: string }>(
        `insert into expenses (tenant_id, idempotency_key, transaction_id, amount_cents, description)
         values ($1, $2, $3, $4, $5)
         returning id`,
        values,
      )
    : await client.query<{ id: string }>(
        `insert into expenses (tenant_id, idempotency_key, transaction_id, amount_cents, description)
         values ($1, $2, $3, $4, $5)
         on conflict (tenant_id, idempotency_key) do nothing
         returning id`,
        values,
      );
  let expenseId = inserted.rows[0]?.id ?? null;
  if (expenseId === null) {
    const { rows } = await client.query<{ id: string }>(
      'select id from expenses where tenant_id = $1 and idempotency_key = $2',
      [input.tenant, key],
    );
    expenseId = rows[0]?.id ?? null;
  }
  let processed = false;
  if (input.transaction_id) {
    const { rowCount } = await client.query(
      `update pending_transactions
          set status = 'processed', processed_by = $2, processed_at = clock_timestamp(), locked_until = null
        where id = $1 and status <> 'processed'`,
      [input.transaction_id, input.worker],
    );
    processed = rowCount === 1;
  }
  return {
    inserted: inserted.rowCount === 1,
    expense_id: expenseId,
    idempotency_key: key,
    transaction_id: input.transaction_id ?? null,
    processed,
  };
}

export interface QueueInput {
  tenant: string;
  run_id: string;
  dedup_key: string;
  recipient: string;
  subject: string;
  body: string;
}

export interface QueueResult extends Record<string, unknown> {
  outbox_id: string | null;
  queued: boolean;
  dedup_key: string;
}

/** An outbox message, ON CONFLICT (dedup_key) DO NOTHING: queued false when it already was. */
export async function queue(client: Queryable, input: QueueInput): Promise<QueueResult> {
  const inserted = await client.query<{ id: string }>(
    `insert into outbox (tenant_id, run_id, dedup_key, recipient, subject, body)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (dedup_key) do nothing
     returning id`,
    [input.tenant, input.run_id, input.dedup_key, input.recipient, input.subject, input.body],
  );
  let outboxId = inserted.rows[0]?.id ?? null;
  if (outboxId === null) {
    const { rows } = await client.query<{ id: string }>('select id from outbox where dedup_key = $1', [input.dedup_key]);
    outboxId = rows[0]?.id ?? null;
  }
  return { outbox_id: outboxId, queued: inserted.rowCount === 1, dedup_key: input.dedup_key };
}

export interface RunRow {
  id: string;
  tenant_id: string;
  worker: string;
  status: string;
  total_turns: number;
  error: string | null;
  started_at: string;
  finished_at: string | null;
}

export interface TurnRow {
  turn_no: number;
  status: string;
  started_at: string;
  finished_at: string | null;
}

export interface RecordedCall {
  turn: number;
  call: number;
  tool: string;
  result: Record<string, unknown> | null;
}

export interface ResumeResult extends Record<string, unknown> {
  /** The latest crashed run of the Worker (status running, finished_at null), or null. */
  run: RunRow | null;
  turns: TurnRow[];
  /** The run's completed calls, in order: their results are reused, never re-executed. */
  calls: RecordedCall[];
}

const runColumns = `id, tenant_id, worker, status, total_turns, error,
  to_json(started_at) #>> '{}' as started_at, to_json(finished_at) #>> '{}' as finished_at`;

/**
 * What a restarted Worker needs to resume. Takes the Worker's lock first, so it
 * waits for a call its killed predecessor still has in flight instead of seeing
 * it half done and running it a second time.
 */
export async function readResume(client: Queryable, worker: string): Promise<ResumeResult> {
  await lockWorkerForRead(client, worker);
  const { rows: runs } = await client.query<RunRow>(
    `select ${runColumns}
       from runs
      where worker = $1 and status = 'running' and finished_at is null
      order by started_at desc, id desc
      limit 1`,
    [worker],
  );
  const run = runs[0] ?? null;
  if (!run) return { run: null, turns: [], calls: [] };
  const { rows: turns } = await client.query<TurnRow>(
    `select turn_no, status, to_json(started_at) #>> '{}' as started_at, to_json(finished_at) #>> '{}' as finished_at
       from turns where run_id = $1 order by turn_no`,
    [run.id],
  );
  const { rows: calls } = await client.query<RecordedCall>(
    `select turn_no as turn, call_no as call, tool, result
       from tool_calls
      where run_id = $1 and status = 'completed'
      order by turn_no, call_no, id`,
    [run.id],
  );
  return { run, turns, calls };
}

export interface JournalResult extends Record<string, unknown> {
  run: RunRow | null;
  turns: TurnRow[];
  calls: Array<Record<string, unknown>>;
}

export async function readJournal(client: Queryable, runId: string): Promise<JournalResult> {
  const { rows: runs } = await client.query<RunRow>(`select ${runColumns} from runs where id = $1`, [runId]);
  const run = runs[0] ?? null;
  if (!run) return { run: null, turns: [], calls: [] };
  const { rows: turns } = await client.query<TurnRow>(
    `select turn_no, status, to_json(started_at) #>> '{}' as started_at, to_json(finished_at) #>> '{}' as finished_at
       from turns where run_id = $1 order by turn_no`,
    [runId],
  );
  const { rows: calls } = await client.query(
    `select id::text, turn_no as turn, call_no as call, tool, arguments, status, result, error, error_code,
            to_json(started_at) #>> '{}' as started_at, to_json(finished_at) #>> '{}' as finished_at, duration_ms
       from tool_calls where run_id = $1 order by turn_no, call_no, id`,
    [runId],
  );
  return { run, turns, calls };
}
