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
//      and the turn, insert the tool_calls row with status 'started'. The
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
import type pg from 'pg';

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

export async function insertEvent(
  client: Queryable,
  events: EventWriter,
  runId: string,
  tenant: string,
  turnNo: number | null,
  eventType: string,
  detail: Record<string, unknown>,
): Promise<void> {
  if (!events.enabled) return;
  await client.query(
    `insert into agent_events (run_id, tenant_id, turn_no, event_type, detail)
     values ($1, $2, $3, $4, $5::jsonb)`,
    [runId, tenant, turnNo, eventType, JSON.stringify(detail)],
  );
}

/**
 * Step 2: run and turn upserted, the call recorded as 'started', committed
 * before the action starts so that an in-flight call is visible.
 */
export async function openCall(
  client: Queryable,
  events: EventWriter,
  journal: Journal,
  tool: string,
  args: Record<string, unknown>,
): Promise<OpenedCall> {
  if (journal.turn > journal.of) throw new JournalRefusal(`turn ${journal.turn} is past the run's ${journal.of} turns`);
  await client.query('begin');
  try {
    const created = await client.query(
      `insert into runs (id, tenant_id, worker, status, total_turns)
       values ($1, $2, $3, 'running', $4)
       on conflict (id) do nothing
       returning id`,
      [journal.run_id, journal.tenant, journal.worker, journal.of],
    );
    if (created.rowCount === 1) {
      await insertEvent(client, events, journal.run_id, journal.tenant, null, 'run_started', {
        tenant_id: journal.tenant,
        worker: journal.worker,
        total_turns: journal.of,
        status: 'running',
      });
    }
    const { rows: runs } = await client.query<{ status: string; tenant_id: string; worker: string; total_turns: number }>(
      'select status, tenant_id, worker, total_turns from runs where id = $1',
      [journal.run_id],
    );
    const run = runs[0];
    if (!run) throw new JournalRefusal(`run ${journal.run_id} could not be recorded`);
    if (run.status !== 'running') throw new JournalRefusal(`run ${journal.run_id} is ${run.status}: start a new run`);
    if (run.tenant_id !== journal.tenant) {
      throw new JournalRefusal(`run ${journal.run_id} belongs to tenant ${run.tenant_id}, not ${journal.tenant}`);
    }
    if (run.worker !== journal.worker) {
      throw new JournalRefusal(`run ${journal.run_id} belongs to worker ${run.worker}, not ${journal.worker}`);
    }
    if (journal.turn > run.total_turns) {
      throw new JournalRefusal(`turn ${journal.turn} is past run ${journal.run_id}'s ${run.total_turns} turns`);
    }
    await client.query(
      `insert into turns (run_id, turn_no, status) values ($1, $2, 'running')
       on conflict (run_id, turn_no) do nothing`,
      [journal.run_id, journal.turn],
    );
    const { rows: turns } = await client.query<{ id: string }>(
      'select id from turns where run_id = $1 and turn_no = $2',
      [journal.run_id, journal.turn],
    );
    const turnId = turns[0]!.id;
    const { rows: calls } = await client.query<{ id: string }>(
      `insert into tool_calls (run_id, turn_id, turn_no, call_no, tool, arguments, status)
       values ($1, $2, $3, $4, $5, $6::jsonb, 'started')
       returning id`,
      [journal.run_id, turnId, journal.turn, journal.call, tool, JSON.stringify(args)],
    );
    await client.query('commit');
    return { callId: calls[0]!.id, turnId, totalTurns: run.total_turns };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

const finishCallSql = (status: 'completed' | 'failed') => `
  update tool_calls t
     set status = '${status}',
         result = $2::jsonb,
         error = $3,
         error_code = $4,
         finished_at = c.now,
         duration_ms = round(extract(epoch from (c.now - t.started_at)) * 1000)::int
    from (select clock_timestamp() as now) c
   where t.id = $1`;

export interface CompletedCall {
  /** Whether the turn ended with this call. */
  turnEnded: boolean;
  /** Whether the run finished with this call. */
  runFinished: boolean;
}

/** Step 3 on success, inside the action's transaction. */
export async function completeCall(
  client: Queryable,
  events: EventWriter,
  journal: Journal,
  opened: OpenedCall,
  tool: string,
  result: Record<string, unknown>,
  endsTurn: boolean,
  eventDetail: Record<string, unknown>,
): Promise<CompletedCall> {
  await client.query(finishCallSql('completed'), [opened.callId, JSON.stringify(result), null, null]);
  await insertEvent(client, events, journal.run_id, journal.tenant, journal.turn, 'tool_called', {
    tool,
    call_no: journal.call,
    status: 'completed',
    ...eventDetail,
  });
  if (!endsTurn) return { turnEnded: false, runFinished: false };

  await client.query(`update turns set status = 'completed', finished_at = clock_timestamp() where id = $1`, [opened.turnId]);
  const { rows: counted } = await client.query<{ tool_calls: number }>(
    `select count(*)::int as tool_calls from tool_calls where turn_id = $1 and status = 'completed'`,
    [opened.turnId],
  );
  await insertEvent(client, events, journal.run_id, journal.tenant, journal.turn, 'turn_completed', {
    turn_no: journal.turn,
    status: 'completed',
    tool_calls: counted[0]?.tool_calls ?? 0,
  });
  if (journal.turn < opened.totalTurns) return { turnEnded: true, runFinished: false };

  await client.query(
    `update runs set status = 'finished', finished_at = clock_timestamp() where id = $1 and status = 'running'`,
    [journal.run_id],
  );
  const { rows: totals } = await client.query<{
    transactions_processed: number;
    expenses_written: number;
    emails_queued: number;
  }>(
    `select count(*) filter (where tool = 'write' and (result ->> 'processed')::boolean)::int as transactions_processed,
            count(*) filter (where tool = 'write' and (result ->> 'inserted')::boolean)::int as expenses_written,
            count(*) filter (where tool = 'queue' and (result ->> 'queued')::boolean)::int as emails_queued
       from tool_calls
      where run_id = $1 and status = 'completed'`,
    [journal.run_id],
  );
  await insertEvent(client, events, journal.run_id, journal.tenant, journal.turn, 'run_finished', {
    status: 'finished',
    total_turns: opened.totalTurns,
    last_turn_no: journal.turn,
    last_turn_status: 'completed',
    ...totals[0],
  });
  return { turnEnded: true, runFinished: true };
}

/** Step 3 on failure, after ROLLBACK TO SAVEPOINT, in the same transaction. Returns the run's error text. */
export async function failCall(
  client: Queryable,
  events: EventWriter,
  journal: Journal,
  opened: OpenedCall,
  tool: string,
  error: { message: string; code: string | undefined },
): Promise<string> {
  const runError = `${tool} (turn ${journal.turn}, call ${journal.call}) failed: ${error.message}${
    error.code ? ` [SQLSTATE ${error.code}]` : ''
  }`;
  await client.query(finishCallSql('failed'), [opened.callId, null, error.message, error.code ?? null]);
  await client.query(`update turns set status = 'failed', finished_at = clock_timestamp() where id = $1`, [opened.turnId]);
  await client.query(
    `update runs set status = 'failed', finished_at = clock_timestamp(), error = $2 where id = $1 and status = 'running'`,
    [journal.run_id, runError],
  );
  await insertEvent(client, events, journal.run_id, journal.tenant, journal.turn, 'tool_failed', {
    tool,
    call_no: journal.call,
    status: 'failed',
    error: error.message,
    error_code: error.code ?? null,
  });
  await insertEvent(client, events, journal.run_id, journal.tenant, journal.turn, 'run_failed', {
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
