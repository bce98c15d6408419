// The run journal of the example tool server, on fixtures/other-reconciler's tables:
// runs -> turns -> tool_calls, narrated in agent_events (append-only).
//
// Glossary
//   run          a runs row: status 'running' until 'completed' or 'failed'. Its length is
//                kept in its run_started event (payload.total_turns): runs has no column for it.
//   turn         a turns row (run_id, turn_index from 1): claim -> record -> queue.
//   call         a tool_calls row (turn_id, seq from 1 within the turn).
//   coordinates  what a Worker passes with every call, as plain tool arguments:
//                run_id, worker_id, turn, turns, call, ends_turn. A call without run_id
//                (a drill calling record_expense directly) is journaled in a one-call run
//                of its own, completed with the call.
//
// One call, on one pooled connection, in order:
//   1. pg_advisory_lock on the Worker's name (session-level, released in `finally`, and
//      by Postgres when the connection dies). A Worker's calls are serial, and
//      read_journal (the same key, transaction-scoped) waits for a call still in flight
//      from a Worker that was just killed, instead of seeing it half done and letting
//      the restarted Worker call it a second time.
//   2. BEGIN; the run inserted when absent (run_started event), checked; the turn
//      inserted when absent; the call inserted 'started'; COMMIT. The call in flight is
//      visible from here on.
//   3. BEGIN; set_config('app.current_user_id', user, true); SAVEPOINT; the action; in
//      the SAME transaction the call completed with its output, tool_called, the turn
//      completed (ends_turn), the run completed (its last turn, or a claim that found
//      nothing); COMMIT. When the action fails: ROLLBACK TO SAVEPOINT (its writes are
//      gone), the call failed with error_message and sqlstate, turn and run failed,
//      tool_failed and run_failed events; COMMIT.
// Every value is a bind parameter, the status words too.
import { randomUUID } from 'node:crypto';

export const setting = 'app.current_user_id';

const runStatus = { running: 'running', completed: 'completed', failed: 'failed' };
const turnStatus = { running: 'running', completed: 'completed', failed: 'failed' };
const callStatus = { started: 'started', completed: 'completed', failed: 'failed' };

/** The journal coordinates' argument names: kept out of tool_calls.input. */
export const coordinateNames = ['run_id', 'turn', 'turns', 'call', 'ends_turn'];

/** A call the journal refuses before anything is recorded (a finished run, a wrong Worker). */
export class Refusal extends Error {
  name = 'Refusal';
}

/** A pg error's message and SQLSTATE. */
export function describeError(error) {
  return {
    message: error instanceof Error ? error.message : String(error),
    code: typeof error?.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code) ? error.code : null,
  };
}

/** The call's place in the journal, from its arguments; a call outside a run gets a run of its own. */
export function coordinatesOf(tool, args) {
  if (args.run_id === undefined) {
    return { runId: randomUUID(), workerId: args.worker_id ?? 'direct-call', turn: 1, turns: 1, call: 1, endsTurn: true, direct: true };
  }
  const missing = ['worker_id', 'turn', 'turns', 'call'].filter((key) => args[key] === undefined);
  if (missing.length > 0) {
    throw new Refusal(`${tool}: run_id was given without ${missing.join(', ')}: pass every journal coordinate, or none for a call outside a run`);
  }
  if (args.turn > args.turns) throw new Refusal(`${tool}: turn ${args.turn} is past the run's ${args.turns} turns`);
  return {
    runId: args.run_id,
    workerId: args.worker_id,
    turn: args.turn,
    turns: args.turns,
    call: args.call,
    endsTurn: args.ends_turn === true,
    direct: false,
  };
}

const lockKey = (workerId) => `example-worker:${workerId}`;

async function lockWorker(client, workerId) {
  await client.query('select pg_advisory_lock(hashtextextended($1::text, 0))', [lockKey(workerId)]);
}

async function unlockWorker(client, workerId) {
  await client.query('select pg_advisory_unlock(hashtextextended($1::text, 0))', [lockKey(workerId)]);
}

/** The same lock for a reader, released at COMMIT: waits for the Worker's call in flight. */
export async function lockWorkerForRead(client, workerId) {
  await client.query('select pg_advisory_xact_lock(hashtextextended($1::text, 0))', [lockKey(workerId)]);
}

export async function setTenant(client, userId) {
  await client.query('select set_config($1::text, $2::text, true)', [setting, userId]);
}

export async function insertEvent(client, runId, userId, type, payload) {
  await client.query(
    `insert into agent_events (run_id, user_id, event_type, payload)
     values ($1::uuid, $2::uuid, $3::text, $4::jsonb)`,
    [runId, userId, type, JSON.stringify(payload)],
  );
}

/** Inserts the run when it is new; true when it was. */
async function insertRun(client, at, userId) {
  const { rowCount } = await client.query(
    `insert into runs (id, user_id, worker_id, status)
     values ($1::uuid, $2::uuid, $3::text, $4::text)
     on conflict (id) do nothing`,
    [at.runId, userId, at.workerId, runStatus.running],
  );
  return rowCount === 1;
}

async function readRun(client, runId) {
  const { rows } = await client.query(
    `select status, user_id::text as user_id, worker_id
       from runs
      where id = $1::uuid`,
    [runId],
  );
  return rows[0];
}

/** The turn's id and status, inserted when absent (unique on run_id, turn_index). */
async function openTurn(client, runId, turn) {
  await client.query(
    `insert into turns (run_id, turn_index, status)
     values ($1::uuid, $2::int, $3::text)
     on conflict (run_id, turn_index) do nothing`,
    [runId, turn, turnStatus.running],
  );
  const { rows } = await client.query(
    `select id::text as id, status
       from turns
      where run_id = $1::uuid and turn_index = $2::int`,
    [runId, turn],
  );
  return rows[0];
}

async function insertCall(client, turnId, seq, tool, input) {
  const { rows } = await client.query(
    `insert into tool_calls (turn_id, seq, tool_name, input, status)
     values ($1::uuid, $2::int, $3::text, $4::jsonb, $5::text)
     returning id::text as id`,
    [turnId, seq, tool, JSON.stringify(input), callStatus.started],
  );
  return rows[0].id;
}

async function completeCall(client, callId, output) {
  await client.query(
    `update tool_calls
        set status = $2::text, output = $3::jsonb, ended_at = clock_timestamp()
      where id = $1::uuid`,
    [callId, callStatus.completed, JSON.stringify(output)],
  );
}

async function failCall(client, callId, failure) {
  await client.query(
    `update tool_calls
        set status = $2::text, error_message = $3::text, sqlstate = $4::text, ended_at = clock_timestamp()
      where id = $1::uuid`,
    [callId, callStatus.failed, failure.message, failure.code],
  );
}

async function endTurn(client, turnId, status) {
  await client.query(
    `update turns
        set status = $2::text, ended_at = clock_timestamp()
      where id = $1::uuid`,
    [turnId, status],
  );
}

async function endRun(client, runId, status, error) {
  await client.query(
    `update runs
        set status = $2::text, ended_at = clock_timestamp(), error_message = $3::text
      where id = $1::uuid and status = $4::text`,
    [runId, status, error, runStatus.running],
  );
}

async function completedCallsOfTurn(client, turnId) {
  const { rows } = await client.query(
    `select count(*)::int as n
       from tool_calls
      where turn_id = $1::uuid and status = $2::text`,
    [turnId, callStatus.completed],
  );
  return rows[0].n;
}

/** Step 2: run and turn upserted and checked, the call recorded 'started'; committed. */
async function openCall(client, tool, userId, at, input) {
  await client.query('begin');
  try {
    if (await insertRun(client, at, userId)) {
      await insertEvent(client, at.runId, userId, 'run_started', {
        user_id: userId,
        worker_id: at.workerId,
        total_turns: at.turns,
        status: runStatus.running,
      });
    }
    const run = await readRun(client, at.runId);
    if (!run) throw new Refusal(`run ${at.runId} could not be recorded`);
    if (run.status !== runStatus.running) throw new Refusal(`run ${at.runId} is ${run.status}: start a new run`);
    if (run.user_id !== userId) throw new Refusal(`run ${at.runId} belongs to user ${run.user_id}, not ${userId}`);
    if (run.worker_id !== at.workerId) throw new Refusal(`run ${at.runId} belongs to worker ${run.worker_id}, not ${at.workerId}`);
    const turn = await openTurn(client, at.runId, at.turn);
    if (turn.status !== turnStatus.running) throw new Refusal(`turn ${at.turn} of run ${at.runId} is already ${turn.status}`);
    const callId = await insertCall(client, turn.id, at.call, tool, input);
    await client.query('commit');
    return { callId, turnId: turn.id };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

/**
 * Runs one tool call under the journal. `action(client)` runs in the call's
 * transaction, the tenant set; it returns { result, endsRun? }. Resolves to
 * { ok: true, result } or { ok: false, message, code } (the tool's error answer).
 */
export async function journaled(pool, { tool, userId, at, input, action, detail, log }) {
  const client = await pool.connect();
  // A connection whose state is unknown (a failed ROLLBACK or unlock) is destroyed,
  // not reused: its session lock and any open transaction go with it.
  let broken;
  const markBroken = (error) => {
    broken = error instanceof Error ? error : new Error(String(error));
  };
  const where = { worker_id: at.workerId, run_id: at.runId, turn: at.turn, call: at.call, tool };
  try {
    await lockWorker(client, at.workerId);
  } catch (error) {
    markBroken(error);
    client.release(broken);
    const failure = describeError(error);
    return { ok: false, message: `${tool} could not be journaled: ${failure.message}`, code: failure.code };
  }
  try {
    const opened = await openCall(client, tool, userId, at, input);
    await client.query('begin');
    try {
      await setTenant(client, userId);
      await client.query('savepoint action');
      let outcome;
      try {
        outcome = await action(client);
        await client.query('release savepoint action');
      } catch (error) {
        const failure = describeError(error);
        await client.query('rollback to savepoint action');
        const runError = `${tool} (turn ${at.turn}, call ${at.call}) failed: ${failure.message}${failure.code ? ` [SQLSTATE ${failure.code}]` : ''}`;
        await failCall(client, opened.callId, failure);
        await endTurn(client, opened.turnId, turnStatus.failed);
        await endRun(client, at.runId, runStatus.failed, runError);
        await insertEvent(client, at.runId, userId, 'tool_failed', {
          tool,
          turn_no: at.turn,
          seq: at.call,
          status: callStatus.failed,
          error: failure.message,
          error_code: failure.code,
        });
        await insertEvent(client, at.runId, userId, 'run_failed', {
          status: runStatus.failed,
          failed_turn: at.turn,
          failed_call: at.call,
          tool,
          error: failure.message,
          error_code: failure.code,
        });
        await client.query('commit');
        log('call', { ...where, status: 'failed', error: failure.message, error_code: failure.code });
        return { ok: false, message: `${runError}; run ${at.runId} marked failed`, code: failure.code };
      }
      const { result, endsRun = false } = outcome;
      await completeCall(client, opened.callId, result);
      await insertEvent(client, at.runId, userId, 'tool_called', {
        tool,
        turn_no: at.turn,
        seq: at.call,
        status: callStatus.completed,
        ...detail(result),
      });
      const turnEnds = at.endsTurn || endsRun;
      const runEnds = endsRun || (turnEnds && at.turn >= at.turns);
      if (turnEnds) {
        await endTurn(client, opened.turnId, turnStatus.completed);
        await insertEvent(client, at.runId, userId, 'turn_completed', {
          turn_no: at.turn,
          status: turnStatus.completed,
          tool_calls: await completedCallsOfTurn(client, opened.turnId),
        });
      }
      if (runEnds) {
        await endRun(client, at.runId, runStatus.completed, null);
        await insertEvent(client, at.runId, userId, 'run_finished', {
          status: runStatus.completed,
          last_turn_no: at.turn,
          total_turns: at.turns,
          ended_early: at.turn < at.turns,
        });
      }
      await client.query('commit');
      log('call', { ...where, status: 'completed', turn_ended: turnEnds, run_finished: runEnds });
      return { ok: true, result };
    } catch (error) {
      await client.query('rollback').catch(markBroken);
      throw error;
    }
  } catch (error) {
    if (error instanceof Refusal) {
      log('call', { ...where, status: 'refused', error: error.message });
      return { ok: false, message: error.message, code: null };
    }
    const failure = describeError(error);
    log('call', { ...where, status: 'error', error: failure.message, error_code: failure.code });
    return {
      ok: false,
      message: `${tool} could not be journaled: ${failure.message}${failure.code ? ` [SQLSTATE ${failure.code}]` : ''}`,
      code: failure.code,
    };
  } finally {
    if (!broken) await unlockWorker(client, at.workerId).catch(markBroken);
    client.release(broken);
  }
}
