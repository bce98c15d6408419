// The run journal: every tool call of a run is recorded in runs -> turns ->
// tool_calls, and narrated in agent_events (append-only).
//
// Glossary
//   run      one Reconciler run of a Worker: `of` turns, status running until it
//            finishes (finished_at set only then) or fails. A crashed run is one
//            still 'running' with finished_at null whose Worker is gone.
//   turn     one step of a run: claim -> write -> queue (or a claim that finds nothing).
//   call     one tool call of a turn, numbered from 1 (`call_no`).
//   journal  the coordinates a Worker passes with every call: { run_id, worker,
//            tenant, turn, of, call, ends_turn? }. The four tools are the whole
//            surface, so the run's lifecycle travels as arguments of those calls.
//
// One call, on one pooled connection, in order:
//   1. take the Worker's advisory lock (session-level, released in `finally`, and
//      by Postgres if the connection dies). Calls of one Worker are thereby
//      serial, and a resume read (which takes the same lock, transaction-scoped)
//      waits for a call still in flight from a Worker that was killed, instead of
//      seeing it half done and running it a second time.
//   2. a short transaction, committed: upsert the run (run_started event when new)
//      and the turn (read first, inserted when absent: the Worker's lock already
//      serialises its calls, and not every target has a unique key on (run, turn
//      number) to conflict on), insert the tool_calls row with status 'started'. The
//      in-flight call is visible from here on.
//   3. BEGIN, app.tenant_id set, SAVEPOINT, the action's writes, then in the SAME
//      transaction the call marked completed with its result, its events, the turn
//      completed (ends_turn) and the run finished (ends_turn on the last turn);
//      COMMIT. On an error: ROLLBACK TO SAVEPOINT (the action's writes are gone),
//      then the call failed with error and SQLSTATE, the turn and run failed,
//      tool_failed and run_failed events; COMMIT.
// One connection per call (not one for the journal and one for the action): a
// call that held one connection while waiting for a second would deadlock the
// pool as soon as enough Workers call at once.
//
// Under transaction pooling (PgBouncer pool_mode=transaction, SOR_TOOLS_TRANSACTION_POOLING=1)
// a session lock and a session `set role` do not survive: each transaction may run on
// another server connection. There the call is ONE transaction: BEGIN, SET LOCAL ROLE,
// the lock transaction-scoped (lockWorkerForCall), step 2's statements (recordCall), then
// step 3 as above, one COMMIT. The price of pooling: the 'started' row is visible only
// with the call's outcome, never while the action runs.
//
// Every table and column comes from the profile's names (`n`); optional columns the
// target lacks are left out: without runs.worker the worker check is skipped, without
// runs.total_turns the journal's `of` is the run's length, without a run column on
// tool_calls a call reaches its run through its turn.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { newKey, type ProfileNames, insertList, requiredInsert, setList } from '../postgres/profile/index.js';
import { type Identifier, sql } from '../postgres/sql.js';
import type { Keys } from './actions.js';

export interface Journal {
  run_id: string;
  worker: string;
  tenant: string;
  turn: number;
  of: number;
  call: number;
  ends_turn?: boolean | undefined;
}

/** A call the journal refuses before anything is recorded (a finished run, a wrong tenant). */
export class JournalRefusal extends Error {
  override name = 'JournalRefusal';
}

export interface OpenedCall {
  callId: string;
  turnId: string;
  totalTurns: number;
}

export interface EventWriter {
  enabled: boolean;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

export const workerLockKey = (worker: string) => `sor-worker:${worker}`;

const lockSql = (fn: string) => `select ${fn}(hashtextextended($1, 0))`;

/** Step 1: serialises the calls of one Worker. Must be paired with unlockWorker (or the connection dropped). */
export async function lockWorker(client: Queryable, worker: string): Promise<void> {
  await client.query(lockSql('pg_advisory_lock'), [workerLockKey(worker)]);
}

export async function unlockWorker(client: Queryable, worker: string): Promise<void> {
  await client.query(lockSql('pg_advisory_unlock'), [workerLockKey(worker)]);
}

/** The same lock for a reader, released at COMMIT or ROLLBACK: waits for the Worker's call in flight. */
export async function lockWorkerForRead(client: Queryable, worker: string): Promise<void> {
  await client.query(lockSql('pg_advisory_xact_lock'), [workerLockKey(worker)]);
}

/**
 * Transaction pooling: step 1 inside the call's one transaction (a session lock would be
 * taken on one server connection and its unlock sent to another). Released at COMMIT or ROLLBACK.
 */
export const lockWorkerForCall = lockWorkerForRead;

/**
 * An INSERT's column and VALUES lists (insertList) plus the part's `required` templates,
 * skipping the columns the pairs already set.
 */
export function insertWithRequired(
  part: { required: Record<string, string> },
  pairs: ReadonlyArray<readonly [Identifier | undefined, unknown]>,
  template: { key: string; tenant?: string | undefined },
) {
  const set = pairs.flatMap(([column]) => (column ? [column] : []));
  const required = requiredInsert(part, template, set);
  return insertList([...pairs, ...required.columns.map((column, index) => [column, required.values[index]] as const)]);
}

export async function insertEvent(
  client: Queryable,
  n: ProfileNames,
  keys: Keys,
  events: EventWriter,
  runId: string,
  tenant: string,
  turnNo: number | null,
  eventType: string,
  detail: Record<string, unknown>,
): Promise<void> {
  if (!events.enabled) return;
  const e = n.events;
  const id = newKey(keys.events, 'ev');
  const { columns, values } = insertWithRequired(
    e,
    [
      [id === undefined ? undefined : e.key, id],
      [e.run, runId],
      [e.tenant, tenant],
      [e.turn_number, turnNo],
      [e.type, eventType],
      [e.payload, JSON.stringify(detail)],
      [e.created_at, sql`now()`],
    ],
    { key: id ?? randomUUID(), tenant },
  );
  await client.query(sql`insert into ${e.table} (${columns}) values (${values})`);
}

/** The turn's key: read first, inserted when absent (the Worker's lock serialises its calls). */
async function openTurn(client: Queryable, n: ProfileNames, keys: Keys, journal: Journal): Promise<string> {
  const t = n.turns;
  const { rows: found } = await client.query<{ id: string }>(
    sql`select ${t.key}::text as id from ${t.table} where ${t.run} = ${journal.run_id} and ${t.number} = ${journal.turn}`,
  );
  if (found[0]) return found[0].id;
  const turnKey = newKey(keys.turns, 'turn');
  const turn = insertWithRequired(
    t,
    [
      [turnKey === undefined ? undefined : t.key, turnKey],
      [t.run, journal.run_id],
      [t.number, journal.turn],
      [t.status, t.values.running],
      [t.started_at, sql`now()`],
    ],
    { key: turnKey ?? randomUUID(), tenant: journal.tenant },
  );
  const { rows: inserted } = await client.query<{ id: string }>(
    sql`insert into ${t.table} (${turn.columns}) values (${turn.values}) returning ${t.key}::text as id`,
  );
  return inserted[0]!.id;
}

/**
 * Step 2: run and turn upserted, the call recorded as 'started', committed
 * before the action starts so that an in-flight call is visible.
 */
export async function openCall(
  client: Queryable,
  n: ProfileNames,
  keys: Keys,
  events: EventWriter,
  journal: Journal,
  tool: string,
  args: Record<string, unknown>,
): Promise<OpenedCall> {
  await client.query('begin');
  try {
    const opened = await recordCall(client, n, keys, events, journal, tool, args);
    await client.query('commit');
    return opened;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

/**
 * Step 2's statements, in the caller's transaction: openCall commits them on their own;
 * under transaction pooling they are part of the call's one transaction (tools.ts).
 */
export async function recordCall(
  client: Queryable,
  n: ProfileNames,
  keys: Keys,
  events: EventWriter,
  journal: Journal,
  tool: string,
  args: Record<string, unknown>,
): Promise<OpenedCall> {
  if (journal.turn > journal.of) throw new JournalRefusal(`turn ${journal.turn} is past the run's ${journal.of} turns`);
  const r = n.runs;
  const c = n.tool_calls;
  // The run's key is the Worker's run id, used as given.
  const runInsert = insertWithRequired(
    r,
    [
      [r.key, journal.run_id],
      [r.tenant, journal.tenant],
      [r.worker, journal.worker],
      [r.status, r.values.running],
      [r.total_turns, journal.of],
      [r.started_at, sql`now()`],
    ],
    { key: journal.run_id, tenant: journal.tenant },
  );
  const created = await client.query(
    sql`insert into ${r.table} (${runInsert.columns})
        values (${runInsert.values})
        on conflict (${r.key}) do nothing
        returning ${r.key}::text as id`,
  );
  if (created.rowCount === 1) {
    await insertEvent(client, n, keys, events, journal.run_id, journal.tenant, null, 'run_started', {
      tenant_id: journal.tenant,
      worker: journal.worker,
      total_turns: journal.of,
      status: 'running',
    });
  }
  const { rows: runs } = await client.query<{
    status: string;
    tenant_id: string;
    same_tenant: boolean;
    worker: string | null;
    total_turns: number | null;
  }>(
    sql`select ${r.status}::text as status, ${r.tenant}::text as tenant_id, ${r.tenant} = ${journal.tenant} as same_tenant,
               ${r.worker ?? sql`null`}::text as worker, ${r.total_turns ?? sql`null`}::int as total_turns
          from ${r.table} where ${r.key} = ${journal.run_id}`,
  );
  const run = runs[0];
  if (!run) throw new JournalRefusal(`run ${journal.run_id} could not be recorded`);
  if (run.status !== r.values.running) throw new JournalRefusal(`run ${journal.run_id} is ${run.status}: start a new run`);
  if (!run.same_tenant) {
    throw new JournalRefusal(`run ${journal.run_id} belongs to tenant ${run.tenant_id}, not ${journal.tenant}`);
  }
  if (r.worker && run.worker !== journal.worker) {
    throw new JournalRefusal(`run ${journal.run_id} belongs to worker ${run.worker}, not ${journal.worker}`);
  }
  const totalTurns = run.total_turns ?? journal.of;
  if (journal.turn > totalTurns) {
    throw new JournalRefusal(`turn ${journal.turn} is past run ${journal.run_id}'s ${totalTurns} turns`);
  }
  const turnId = await openTurn(client, n, keys, journal);
  const callKey = newKey(keys.tool_calls, 'call');
  const call = insertWithRequired(
    c,
    [
      [callKey === undefined ? undefined : c.key, callKey],
      [c.run, journal.run_id],
      [c.turn, turnId],
      [c.turn_number, journal.turn],
      [c.number, journal.call],
      [c.tool, tool],
      [c.arguments, JSON.stringify(args)],
      [c.status, c.values.started],
      [c.started_at, sql`clock_timestamp()`],
    ],
    { key: callKey ?? randomUUID(), tenant: journal.tenant },
  );
  const { rows: calls } = await client.query<{ id: string }>(
    sql`insert into ${c.table} (${call.columns})
        values (${call.values})
        returning ${c.key}::text as id`,
  );
  return { callId: calls[0]!.id, turnId, totalTurns };
}

/** The call settled: status, result or error, finished_at and duration_ms where the target has them. */
async function finishCall(
  client: Queryable,
  n: ProfileNames,
  callId: string,
  status: 'completed' | 'failed',
  outcome: { result: Record<string, unknown> | null; error: string | null; errorCode: string | null },
): Promise<void> {
  const c = n.tool_calls;
  const duration =
    c.duration_ms && c.started_at ? sql`round(extract(epoch from (clock.now - tc.${c.started_at})) * 1000)::int` : undefined;
  await client.query(
    sql`update ${c.table} tc
           set ${setList([
             [c.status, c.values[status]],
             [c.result, outcome.result === null ? null : JSON.stringify(outcome.result)],
             [c.error, outcome.error],
             [c.error_code, outcome.errorCode],
             [c.finished_at, sql`clock.now`],
             [duration === undefined ? undefined : c.duration_ms, duration],
           ])}
          from (select clock_timestamp() as now) clock
         where tc.${c.key} = ${callId}`,
  );
}

export interface CompletedCall {
  /** Whether the turn ended with this call. */
  turnEnded: boolean;
  /** Whether the run finished with this call. */
  runFinished: boolean;
}

/** The turn ended (completed or failed), finished_at when the target has it. */
async function endTurn(client: Queryable, n: ProfileNames, turnId: string, status: 'completed' | 'failed'): Promise<void> {
  const t = n.turns;
  await client.query(
    sql`update ${t.table}
           set ${setList([
             [t.status, t.values[status]],
             [t.finished_at, sql`clock_timestamp()`],
           ])}
         where ${t.key} = ${turnId}`,
  );
}

/** Step 3 on success, inside the action's transaction. */
export async function completeCall(
  client: Queryable,
  n: ProfileNames,
  keys: Keys,
  events: EventWriter,
  journal: Journal,
  opened: OpenedCall,
  tool: string,
  result: Record<string, unknown>,
  endsTurn: boolean,
  eventDetail: Record<string, unknown>,
): Promise<CompletedCall> {
  const c = n.tool_calls;
  const t = n.turns;
  const r = n.runs;
  await finishCall(client, n, opened.callId, 'completed', { result, error: null, errorCode: null });
  await insertEvent(client, n, keys, events, journal.run_id, journal.tenant, journal.turn, 'tool_called', {
    tool,
    call_no: journal.call,
    status: 'completed',
    ...eventDetail,
  });
  if (!endsTurn) return { turnEnded: false, runFinished: false };

  await endTurn(client, n, opened.turnId, 'completed');
  const { rows: counted } = await client.query<{ tool_calls: number }>(
    sql`select count(*)::int as tool_calls from ${c.table} where ${c.turn} = ${opened.turnId} and ${c.status} = ${c.values.completed}`,
  );
  await insertEvent(client, n, keys, events, journal.run_id, journal.tenant, journal.turn, 'turn_completed', {
    turn_no: journal.turn,
    status: 'completed',
    tool_calls: counted[0]?.tool_calls ?? 0,
  });
  if (journal.turn < opened.totalTurns) return { turnEnded: true, runFinished: false };

  await client.query(
    sql`update ${r.table}
           set ${setList([
             [r.status, r.values.finished],
             [r.finished_at, sql`clock_timestamp()`],
           ])}
         where ${r.key} = ${journal.run_id} and ${r.status} = ${r.values.running}`,
  );
  // The run's totals come from the calls' results; a target without a result column says less.
  let totals: Record<string, number> = {};
  if (c.result) {
    const outcome = (tool: string, key: string) =>
      sql`count(*) filter (where c.${c.tool} = ${tool}::text and (c.${c.result} ->> ${key}::text)::boolean)::int`;
    const { rows } = await client.query<{ transactions_processed: number; expenses_written: number; emails_queued: number }>(
      sql`select ${outcome('write', 'processed')} as transactions_processed,
                 ${outcome('write', 'inserted')} as expenses_written,
                 ${outcome('queue', 'queued')} as emails_queued
            from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn}
           where t.${t.run} = ${journal.run_id} and c.${c.status} = ${c.values.completed}`,
    );
    totals = rows[0] ?? {};
  }
  await insertEvent(client, n, keys, events, journal.run_id, journal.tenant, journal.turn, 'run_finished', {
    status: 'finished',
    total_turns: opened.totalTurns,
    last_turn_no: journal.turn,
    last_turn_status: 'completed',
    ...totals,
  });
  return { turnEnded: true, runFinished: true };
}

/** Step 3 on failure, after ROLLBACK TO SAVEPOINT, in the same transaction. Returns the run's error text. */
export async function failCall(
  client: Queryable,
  n: ProfileNames,
  keys: Keys,
  events: EventWriter,
  journal: Journal,
  opened: OpenedCall,
  tool: string,
  error: { message: string; code: string | undefined },
): Promise<string> {
  const r = n.runs;
  const runError = `${tool} (turn ${journal.turn}, call ${journal.call}) failed: ${error.message}${
    error.code ? ` [SQLSTATE ${error.code}]` : ''
  }`;
  await finishCall(client, n, opened.callId, 'failed', { result: null, error: error.message, errorCode: error.code ?? null });
  await endTurn(client, n, opened.turnId, 'failed');
  await client.query(
    sql`update ${r.table}
           set ${setList([
             [r.status, r.values.failed],
             [r.finished_at, sql`clock_timestamp()`],
             [r.error, runError],
           ])}
         where ${r.key} = ${journal.run_id} and ${r.status} = ${r.values.running}`,
  );
  await insertEvent(client, n, keys, events, journal.run_id, journal.tenant, journal.turn, 'tool_failed', {
    tool,
    call_no: journal.call,
    status: 'failed',
    error: error.message,
    error_code: error.code ?? null,
  });
  await insertEvent(client, n, keys, events, journal.run_id, journal.tenant, journal.turn, 'run_failed', {
    status: 'failed',
    total_turns: opened.totalTurns,
    failed_turn: journal.turn,
    failed_call: journal.call,
    tool,
    error: error.message,
    error_code: error.code ?? null,
  });
  return runError;
}
