// What each tool does to the Reconciler's tables. Every value from a tool's
// arguments is a bind parameter: a string like `COMMIT; DROP TABLE expenses`
// is stored as data. Each function runs on a client already inside the call's
// transaction with the tenant setting (app.tenant_id) set (claim, write) or none
// needed (queue, read).
//
// Every table and column comes from the profile's names (`n`, see
// ../postgres/profile/names.ts): on the reference schema they are the names of
// fixtures/migrations, on another target whatever its profile says. An optional
// column the target lacks is left out of the statement, and the result says less.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import {
  amountValue,
  builtInSource,
  centsOf,
  type KeyInfo,
  newKey,
  parseProfile,
  type Profile,
  ProfileError,
  type ProfileInUse,
  type ProfileNames,
  type ProfileTable,
  referenceProfile,
  referenceWithRoles,
  resolveProfile,
  setList,
} from '../postgres/profile/index.js';
import { empty, type Identifier, identifier, join, raw, type Sql, sql } from '../postgres/sql.js';
import type { ToolBreaks } from './breaks.js';
import { delay } from '../util/wait.js';
import { insertWithRequired, lockWorkerForRead } from './journal.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export { breakNames, formatBreaks, parseBreaks, type ToolBreaks } from './breaks.js';

/** Each part's key column, as the catalog has it (how a new row gets its key: newKey). */
export type Keys = Record<ProfileTable, KeyInfo>;

/** The profile the tool server or relay was handed: SOR_PROFILE, or the reference one. */
export interface ProfileSetting {
  profile: Profile;
  source: string;
  given: boolean;
}

/**
 * SOR_PROFILE (the profile's JSON, set by launch.ts), or when absent the reference
 * profile with `workerRole` as its worker role. Throws a one-line ProfileError.
 */
export function profileSetting(env: NodeJS.ProcessEnv, workerRole: string): ProfileSetting {
  const text = env.SOR_PROFILE;
  if (text) return { profile: parseProfile(text, 'SOR_PROFILE'), source: 'SOR_PROFILE', given: true };
  return { profile: referenceWithRoles({ ...referenceProfile.roles, worker: workerRole }), source: builtInSource, given: false };
}

/**
 * The profile held against the target, on one of the process's own connections.
 * A misfit is one line naming the first problem: the process refuses to start
 * rather than fail at its first call. The reader and owner roles are the drills',
 * not the Worker side's, so a target that lacks them still serves.
 */
export async function fitProfile(client: Queryable, setting: ProfileSetting): Promise<ProfileInUse> {
  const inUse = await resolveProfile(client, setting.profile, setting.source, setting.given);
  const problems = inUse.problems.filter((problem) => !/^roles\.(reader|owner) /.test(problem));
  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    throw new ProfileError(`profile ${setting.source} does not fit the target: ${problems[0]}${more}`);
  }
  return { ...inUse, problems };
}

/** fitProfile on one connection of the pool (the tool server's), released after. */
export async function fitProfileOnPool(pool: { connect(): Promise<pg.PoolClient> }, setting: ProfileSetting): Promise<ProfileInUse> {
  const client = await pool.connect();
  try {
    return await fitProfile(client, setting);
  } finally {
    client.release();
  }
}

/** A column, or SQL null where the target has none (`alias.column` when an alias is given). */
export function orNull(column: Identifier | undefined, alias?: string): Sql {
  if (!column) return sql`null`;
  return alias ? sql`${identifier(alias)}.${column}` : sql`${column}`;
}

/**
 * A status column read as the drills' word (running, finished, ...), whatever value
 * the target stores for it; a value the profile does not map is shown as stored.
 * The read results keep their meaning on every target (the Worker resumes by them).
 */
export function statusWord(column: Sql, values: Record<string, string>): Sql {
  const cases = Object.entries(values).map(([word, value]) => sql` when ${value}::text then ${word}::text`);
  return sql`case ${column}::text${join(cases, '')} else ${column}::text end`;
}

/** `to_json(column) #>> '{}'`: a timestamp as the ISO text Postgres writes, or null when the target has no such column. */
function isoText(column: Identifier | undefined, alias?: string): Sql {
  return column ? sql`to_json(${orNull(column, alias)}) #>> '{}'` : sql`null::text`;
}

export interface ClaimResult extends Record<string, unknown> {
  transaction_id: string | null;
  amount_cents: number | null;
  description: string | null;
  /** clock_timestamp() just after the row lock was taken (null when nothing was claimed). */
  locked_at: string | null;
  /** clock_timestamp() just before the transaction commits (and the lock is released). */
  released_at: string;
  /** When the claim's lease ends; null when nothing was claimed or the target has no lease column. */
  locked_until: string | null;
}

export interface ClaimOptions {
  tenant: string;
  worker: string;
  holdMs: number;
  leaseMs: number;
  skipLocked: boolean;
  /** The fleet drill's broken claim: no row lock at all (a plain read, then the update). */
  noLock?: boolean;
  /** Called while the row lock is held (the server logs claim_locked). */
  onLocked?: (transactionId: string) => void;
  /** How the hold waits: a plain delay by default; the tool server's can be ended early (holds.ts). */
  hold?: (ms: number) => Promise<unknown>;
}

/**
 * The next pending transaction of the tenant, or a claimed one whose lease has
 * expired (its Worker died after committing the claim). Locked FOR UPDATE SKIP
 * LOCKED, marked claimed with a lease, and held `holdMs` before the commit so
 * that a race is visible. A target without a lease column (pending_transactions.
 * lease_until) never reclaims: a claimed row stays its Worker's.
 */
export async function claim(client: Queryable, n: ProfileNames, options: ClaimOptions): Promise<ClaimResult> {
  const p = n.pending_transactions;
  const expired = p.lease_until
    ? sql` or (${p.status} = ${p.values.claimed} and ${p.lease_until} < clock_timestamp())`
    : empty;
  const { rows } = await client.query<{ id: string; amount_cents: number; description: string | null }>(
    sql`select ${p.key}::text as id, ${centsOf(p)} as amount_cents, ${orNull(p.description)}::text as description
          from ${p.table}
         where ${p.tenant} = ${options.tenant}
           and (${p.status} = ${p.values.pending}${expired})
         order by ${p.table}.${p.key}
         limit 1
         ${raw(options.noLock ? '' : options.skipLocked ? 'for update skip locked' : 'for update')}`,
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
  const lease = p.lease_until ? sql`clock_timestamp() + ${options.leaseMs} * interval '1 millisecond'` : undefined;
  const { rows: claimed } = await client.query<{ locked_at: Date; locked_until: Date | null }>(
    sql`update ${p.table}
           set ${setList([
             [p.status, p.values.claimed],
             [p.claimed_by, options.worker],
             [p.lease_until, lease],
           ])}
         where ${p.key} = ${row.id}
         returning clock_timestamp() as locked_at, ${orNull(p.lease_until)}::timestamptz as locked_until`,
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
    locked_until: claimed[0]!.locked_until?.toISOString() ?? null,
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
 * An expense, INSERT ... ON CONFLICT (the profile's idempotency key, e.g.
 * tenant_id, idempotency_key) DO NOTHING: a repeated write is a no-op that says so.
 * If the target has no such unique key Postgres refuses the statement (42P10) and
 * the call fails: never papered over.
 */
export async function write(client: Queryable, n: ProfileNames, keys: Keys, input: WriteInput, breaks: ToolBreaks): Promise<WriteResult> {
  const e = n.expenses;
  const key = breaks.noIdempotencyKey ? `no-key:${randomUUID()}` : input.idempotency_key;
  const id = newKey(keys.expenses, 'E');
  const { columns, values } = insertWithRequired(
    e,
    [
      [id === undefined ? undefined : e.key, id],
      [e.tenant, input.tenant],
      [e.idempotencyKey, key],
      [e.transaction, input.transaction_id ?? null],
      [e.amount, amountValue(e, input.amount_cents)],
      [e.description, input.description],
    ],
    { key, tenant: input.tenant },
  );
  const onConflict = breaks.noIdempotencyKey ? empty : sql` on conflict (${join(e.conflict)}) do nothing`;
  const inserted = await client.query<{ id: string }>(
    sql`insert into ${e.table} (${columns})
        values (${values})${onConflict}
        returning ${e.key}::text as id`,
  );
  let expenseId = inserted.rows[0]?.id ?? null;
  if (expenseId === null) {
    const { rows } = await client.query<{ id: string }>(
      sql`select ${e.key}::text as id from ${e.table} where ${e.tenant} = ${input.tenant} and ${e.idempotencyKey} = ${key}`,
    );
    expenseId = rows[0]?.id ?? null;
  }
  let processed = false;
  if (input.transaction_id) {
    const p = n.pending_transactions;
    const { rowCount } = await client.query(
      sql`update ${p.table}
             set ${setList([
               [p.status, p.values.processed],
               [p.processed_by, input.worker],
               [p.processed_at, sql`clock_timestamp()`],
               [p.lease_until, null],
             ])}
           where ${p.key} = ${input.transaction_id} and ${p.status} <> ${p.values.processed}`,
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

/**
 * An outbox message, ON CONFLICT (dedup_key) DO NOTHING: queued false when it already
 * was. Recipient, subject and body go in their columns; a target that has no column
 * for one of them gets all three as the payload {"to", "subject", "body"}.
 */
export async function queue(client: Queryable, n: ProfileNames, keys: Keys, input: QueueInput): Promise<QueueResult> {
  const o = n.outbox;
  const id = newKey(keys.outbox, 'O');
  const payload =
    o.payload && !(o.recipient && o.subject && o.body)
      ? JSON.stringify({ to: input.recipient, subject: input.subject, body: input.body })
      : undefined;
  const { columns, values } = insertWithRequired(
    o,
    [
      [id === undefined ? undefined : o.key, id],
      [o.tenant, input.tenant],
      [o.run, input.run_id],
      [o.dedup_key, input.dedup_key],
      [o.recipient, input.recipient],
      [o.subject, input.subject],
      [o.body, input.body],
      [payload === undefined ? undefined : o.payload, payload],
    ],
    { key: input.dedup_key, tenant: input.tenant },
  );
  const inserted = await client.query<{ id: string }>(
    sql`insert into ${o.table} (${columns})
        values (${values})
        on conflict (${o.dedup_key}) do nothing
        returning ${o.key}::text as id`,
  );
  let outboxId = inserted.rows[0]?.id ?? null;
  if (outboxId === null) {
    const { rows } = await client.query<{ id: string }>(
      sql`select ${o.key}::text as id from ${o.table} where ${o.dedup_key} = ${input.dedup_key}`,
    );
    outboxId = rows[0]?.id ?? null;
  }
  return { outbox_id: outboxId, queued: inserted.rowCount === 1, dedup_key: input.dedup_key };
}

/** A run as the read tool answers it: the reference column names, statuses as the drills' words. */
export interface RunRow {
  id: string;
  tenant_id: string;
  /** Null when the target's runs record no worker (runs.worker). */
  worker: string | null;
  status: string;
  /** From runs.total_turns; without that column, the run_started event's total_turns, else its highest turn. */
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

/** The select list of a RunRow, over `runs r`. */
function runColumns(n: ProfileNames): Sql {
  const r = n.runs;
  const t = n.turns;
  const e = n.events;
  // Without a total_turns column the run's length is what its run_started event said
  // (journal.ts writes total_turns there), else as far as its turns went.
  const totalTurns = r.total_turns
    ? sql`r.${r.total_turns}::int`
    : sql`coalesce(
        (select (ev.${e.payload} ->> ${'total_turns'}::text)::int from ${e.table} ev
          where ev.${e.run} = r.${r.key} and ev.${e.type} = ${'run_started'}::text order by ev.${e.key} limit 1),
        (select max(t.${t.number})::int from ${t.table} t where t.${t.run} = r.${r.key}),
        0)`;
  return sql`r.${r.key}::text as id, r.${r.tenant}::text as tenant_id, ${orNull(r.worker, 'r')}::text as worker,
    ${statusWord(sql`r.${r.status}`, r.values)} as status, ${totalTurns} as total_turns, ${orNull(r.error, 'r')}::text as error,
    ${isoText(r.started_at, 'r')} as started_at, ${isoText(r.finished_at, 'r')} as finished_at`;
}

async function readTurns(client: Queryable, n: ProfileNames, runId: string): Promise<TurnRow[]> {
  const t = n.turns;
  const { rows } = await client.query<TurnRow>(
    sql`select t.${t.number} as turn_no, ${statusWord(sql`t.${t.status}`, t.values)} as status,
               ${isoText(t.started_at, 't')} as started_at, ${isoText(t.finished_at, 't')} as finished_at
          from ${t.table} t where t.${t.run} = ${runId} order by t.${t.number}`,
  );
  return rows;
}

/** tool_calls of one run, reached through its turns (tool_calls may have no run column). */
function callsOfRun(n: ProfileNames, runId: string): Sql {
  const c = n.tool_calls;
  const t = n.turns;
  return sql`from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} where t.${t.run} = ${runId}`;
}

/**
 * What a restarted Worker needs to resume. Takes the Worker's lock first, so it
 * waits for a call its killed predecessor still has in flight instead of seeing
 * it half done and running it a second time. The crashed run is the Worker's;
 * on a target whose runs record no worker, the tenant's (pass `tenant`).
 * Without a result column no call can be reused: calls is empty and the Worker
 * redoes its turn.
 */
export async function readResume(client: Queryable, n: ProfileNames, worker: string, tenant?: string): Promise<ResumeResult> {
  const r = n.runs;
  if (!r.worker && tenant === undefined) {
    throw new Error(`the target's runs record no worker (profile runs.worker): a resume read needs the tenant`);
  }
  await lockWorkerForRead(client, worker);
  const whose = r.worker ? sql`r.${r.worker} = ${worker}` : sql`r.${r.tenant} = ${tenant}`;
  const unfinished = r.finished_at ? sql` and r.${r.finished_at} is null` : empty;
  const latest = r.started_at ? sql`r.${r.started_at} desc, ` : empty;
  const { rows: runs } = await client.query<RunRow>(
    sql`select ${runColumns(n)}
          from ${r.table} r
         where ${whose} and r.${r.status} = ${r.values.running}${unfinished}
         order by ${latest}r.${r.key} desc
         limit 1`,
  );
  const run = runs[0] ?? null;
  if (!run) return { run: null, turns: [], calls: [] };
  const turns = await readTurns(client, n, run.id);
  const c = n.tool_calls;
  const t = n.turns;
  if (!c.result) return { run, turns, calls: [] };
  const { rows: calls } = await client.query<RecordedCall>(
    sql`select t.${t.number} as turn, c.${c.number} as call, c.${c.tool} as tool, c.${c.result} as result
        ${callsOfRun(n, run.id)} and c.${c.status} = ${c.values.completed}
         order by t.${t.number}, c.${c.number}, c.${c.key}`,
  );
  return { run, turns, calls };
}

export interface JournalResult extends Record<string, unknown> {
  run: RunRow | null;
  turns: TurnRow[];
  calls: Array<Record<string, unknown>>;
}

export async function readJournal(client: Queryable, n: ProfileNames, runId: string): Promise<JournalResult> {
  const r = n.runs;
  // The key read as text: a run id that is not a uuid (or a number) finds no run instead of failing the read.
  const { rows: runs } = await client.query<RunRow>(sql`select ${runColumns(n)} from ${r.table} r where r.${r.key}::text = ${runId}`);
  const run = runs[0] ?? null;
  if (!run) return { run: null, turns: [], calls: [] };
  const turns = await readTurns(client, n, run.id);
  const c = n.tool_calls;
  const t = n.turns;
  const { rows: calls } = await client.query(
    sql`select c.${c.key}::text as id, t.${t.number} as turn, c.${c.number} as call, c.${c.tool} as tool, c.${c.arguments} as arguments,
               ${statusWord(sql`c.${c.status}`, c.values)} as status, ${orNull(c.result, 'c')} as result,
               ${orNull(c.error, 'c')}::text as error, ${orNull(c.error_code, 'c')}::text as error_code,
               ${isoText(c.started_at, 'c')} as started_at, ${isoText(c.finished_at, 'c')} as finished_at,
               ${orNull(c.duration_ms, 'c')}::int as duration_ms
        ${callsOfRun(n, run.id)}
         order by t.${t.number}, c.${c.number}, c.${c.key}`,
  );
  return { run, turns, calls };
}
