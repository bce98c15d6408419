// The example Worker: an MCP client of the tool server, and nothing else. It holds
// no database credentials and imports no database driver.
//
// On start it asks read_journal for its latest crashed run (a run of WORKER_ID still
// 'running'). If there is one it resumes it from the first turn not completed,
// reusing the recorded results of that turn's completed calls (never calling them
// again) and doing the rest. Otherwise it starts a new run (a uuid) of TURNS turns.
// Each turn: claim_transaction -> record_expense (key `expense:<transaction id>`) ->
// queue_email (dedup key `email:<transaction id>`, ends_turn). A claim that finds
// nothing ends the run: the tool server completes it with that claim.
//
// Environment (declared in profile.json's processes.worker.env):
//   TOOLS_URL, TOOLS_TOKEN  the tool server and its bearer token
//   USER_ID                 the user (tenant) it works for
//   WORKER_ID               its name; its runs carry it (runs.worker_id)
//   TURNS                   turns of a new run (default 5)
//   PACE_MS                 optional, not in the contract: sleep before each call (default 0),
//                           so a person trying it by hand can kill it mid-turn
//   EXAMPLE_BUG             no-resume: always start a new run (the resume drill must catch it);
//                           leak-database-url: needs DATABASE_URL in its environment, which
//                           the profile's worker env must then declare (the boundary drill
//                           must catch it). The Worker never uses it.
//
// stdout, one JSON line each:
//   run_started {run_id, worker_id, user_id, turns}
//   run_resumed {run_id, from_turn, of, reused_calls}
//   call_started / call_reused / call_completed {run_id, turn, call, tool[, result]}
//   call_failed {run_id, turn, call, tool, error, error_code}
//   run_finished {run_id, turns, ended_early}
//   worker_error {message}
// Exit: 0 the run finished; 1 a tool call failed; 2 bad settings; 3 the tool server could not be reached.
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exampleBug } from './bugs.mjs';

const exitCodes = { finished: 0, callFailed: 1, badSettings: 2, unreachable: 3 };

const emit = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class SettingsError extends Error {}

class ToolFailure extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

function readSettings(env) {
  const required = (name) => {
    if (!env[name]) throw new SettingsError(`${name} is not set: declare it in the profile's processes.worker.env`);
    return env[name];
  };
  const count = (name, fallback, min) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) throw new SettingsError(`${name} must be an integer of at least ${min}, got ${JSON.stringify(raw)}`);
    return value;
  };
  let bug;
  try {
    bug = exampleBug(env);
  } catch (error) {
    throw new SettingsError(error.message);
  }
  if (bug === 'leak-database-url' && !env.DATABASE_URL) {
    throw new SettingsError('EXAMPLE_BUG=leak-database-url needs DATABASE_URL: add "DATABASE_URL": "{database_url}" to processes.worker.env');
  }
  return {
    toolsUrl: required('TOOLS_URL'),
    token: required('TOOLS_TOKEN'),
    userId: required('USER_ID'),
    workerId: required('WORKER_ID'),
    turns: count('TURNS', 5, 1),
    paceMs: count('PACE_MS', 0, 0),
    resume: bug !== 'no-resume',
  };
}

/** One tool call; its structured answer, or a ToolFailure carrying the SQLSTATE the server reported. */
async function callTool(client, name, args) {
  const answer = await client.callTool({ name, arguments: args });
  const text = (answer.content ?? []).map((part) => (part.type === 'text' ? part.text : '')).join('');
  if (answer.isError) throw new ToolFailure(text || `${name} failed`, answer.structuredContent?.error_code ?? null);
  return answer.structuredContent ?? JSON.parse(text);
}

const callKey = (turn, call) => `${turn}.${call}`;

/**
 * Where a crashed run goes on: its first turn not completed, and the completed calls
 * of the turns from there on (by turn.call), whose results are reused.
 */
function resumePoint(journal) {
  const { run } = journal;
  if (!run) return null;
  const completed = new Set(journal.turns.filter((turn) => turn.status === 'completed').map((turn) => turn.turn));
  let fromTurn = 1;
  while (fromTurn < run.total_turns && completed.has(fromTurn)) fromTurn += 1;
  const recorded = new Map();
  for (const call of journal.calls) {
    if (call.turn >= fromTurn && !recorded.has(callKey(call.turn, call.call))) recorded.set(callKey(call.turn, call.call), call);
  }
  return { runId: run.id, of: Math.max(run.total_turns, fromTurn), fromTurn, recorded };
}

async function work(settings, client) {
  const { userId, workerId } = settings;
  let plan = null;
  if (settings.resume) {
    plan = resumePoint(await callTool(client, 'read_journal', { user_id: userId, worker_id: workerId }));
  }
  if (plan) {
    emit('run_resumed', { run_id: plan.runId, from_turn: plan.fromTurn, of: plan.of, reused_calls: plan.recorded.size });
  } else {
    plan = { runId: randomUUID(), of: settings.turns, fromTurn: 1, recorded: new Map() };
    emit('run_started', { run_id: plan.runId, worker_id: workerId, user_id: userId, turns: plan.of });
  }
  const { runId, of } = plan;

  const step = async (turn, call, tool, args, endsTurn = false) => {
    const reused = plan.recorded.get(callKey(turn, call));
    if (reused) {
      if (reused.tool !== tool) throw new Error(`run ${runId} has ${reused.tool} at turn ${turn} call ${call}, not ${tool}: the journal is not this Worker's plan`);
      emit('call_reused', { run_id: runId, turn, call, tool });
      return reused.result ?? {};
    }
    if (settings.paceMs > 0) await sleep(settings.paceMs);
    emit('call_started', { run_id: runId, turn, call, tool });
    const coordinates = { run_id: runId, worker_id: workerId, turn, turns: of, call, ...(endsTurn ? { ends_turn: true } : {}) };
    try {
      const result = await callTool(client, tool, { ...args, ...coordinates });
      emit('call_completed', { run_id: runId, turn, call, tool, result });
      return result;
    } catch (error) {
      if (error instanceof ToolFailure) emit('call_failed', { run_id: runId, turn, call, tool, error: error.message, error_code: error.code });
      throw error;
    }
  };

  let turn = plan.fromTurn;
  let endedEarly = false;
  for (; turn <= of; turn += 1) {
    const claimed = await step(turn, 1, 'claim_transaction', { worker_id: workerId, user_id: userId });
    if (claimed.transaction_id === null) {
      // The tool server completed the turn and the run with this claim.
      endedEarly = turn < of;
      break;
    }
    const id = claimed.transaction_id;
    await step(turn, 2, 'record_expense', {
      user_id: userId,
      idempotency_key: `expense:${id}`,
      transaction_id: id,
      amount: claimed.amount,
      memo: claimed.memo,
    });
    await step(
      turn,
      3,
      'queue_email',
      {
        user_id: userId,
        dedup_key: `email:${id}`,
        to: claimed.user_email ?? `user-${userId}@example.invalid`,
        subject: `Expense recorded: ${claimed.external_ref ?? id}`,
        body: `Transaction ${claimed.external_ref ?? id} (${claimed.amount}) was recorded as an expense.`,
        transaction_id: id,
      },
      true,
    );
  }
  emit('run_finished', { run_id: runId, turns: of, ended_early: endedEarly });
  return exitCodes.finished;
}

async function main() {
  let settings;
  try {
    settings = readSettings(process.env);
  } catch (error) {
    process.stderr.write(`worker: ${error.message}\n`);
    return exitCodes.badSettings;
  }
  const client = new Client({ name: `example-worker-${settings.workerId}`, version: '0.1.0' });
  const transport = new StreamableHTTPClientTransport(new URL(settings.toolsUrl), {
    requestInit: { headers: { authorization: `Bearer ${settings.token}` } },
  });
  try {
    await client.connect(transport);
    return await work(settings, client);
  } catch (error) {
    if (error instanceof ToolFailure) {
      process.stderr.write(`worker: ${error.message}\n`);
      return exitCodes.callFailed;
    }
    const message = error instanceof Error ? error.message : String(error);
    emit('worker_error', { message });
    process.stderr.write(`worker: ${message}\n`);
    return exitCodes.unreachable;
  } finally {
    await client.close().catch(() => {});
  }
}

// Exit in the write callback: an exit right after a write to a pipe can cut it short.
main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (error) => {
    process.stderr.write(`worker: ${String(error)}\n`);
    process.exit(exitCodes.unreachable);
  },
);
