// Process entry: the reference Worker, an MCP client of the tool server. It
// holds no database credentials: its environment is the allow-list of env.ts
// (tool server URL and token, its name, tenant, pace, turns, resume, mode, and
// the claim hold it asks for, if any).
//
// On start (mode 'run', resume on) it asks the journal for its latest crashed
// run; if there is one it resumes from the last incomplete turn, reusing the
// recorded results of completed calls; otherwise it starts a new run (a uuid)
// of SOR_TURNS turns. Each turn: claim -> write -> queue (ends_turn), or a claim
// that finds nothing, which ends the turn by itself. It sleeps SOR_PACE_MS
// before each call so an operator can kill it mid-turn.
// Mode 'claim-once' (the race drill): one claim in a new 1-turn run, no resume.
// SOR_WAIT_FOR_GO=1: once connected it says `ready` and makes no call until SIGUSR2
// (the race drill starts B beside A and lets it go once A holds its row).
//
// stdout, one JSON line each:
//   run_started {run_id, worker, tenant, turns}
//   run_resumed {run_id, from_turn, of, reused_calls}
//   call_started {run_id, turn, call, tool}
//   call_reused {run_id, turn, call, tool}        a recorded result, not called again
//   call_completed {run_id, turn, call, tool, result}
//   call_failed {run_id, turn, call, tool, error, error_code}
//   run_finished {run_id, turns}
//   ready {worker}, go {worker}                  SOR_WAIT_FOR_GO: connected and waiting; let go
//   worker_error {message}                       the tool server could not be reached
// Exit: 0 the run finished; 1 a tool call failed (the server recorded it and
// failed the run); 2 bad settings; 3 the tool server could not be reached.
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClaimResult, ResumeResult, WriteResult } from './actions.js';
import { emit } from './json-lines.js';
import type { Journal } from './journal.js';
import { callKey, queueArguments, readWorkerConfig, resumePoint, writeArguments, type WorkerConfig } from './worker-plan.js';
import { delay } from '../util/wait.js';

/** How long a Worker stalls at SOR_PAUSE_AFTER before it goes on by itself. */
const stallMs = 10 * 60_000;

export const workerExitCodes = { finished: 0, callFailed: 1, badSettings: 2, unreachable: 3 } as const;

class ToolFailure extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

type Result = Record<string, unknown>;

async function callTool(client: Client, name: string, args: Result): Promise<Result> {
  const answer = await client.callTool({ name, arguments: args });
  const text = Array.isArray(answer.content)
    ? answer.content.map((part) => (part && part.type === 'text' ? String(part.text) : '')).join('')
    : '';
  const structured = (answer.structuredContent ?? undefined) as Result | undefined;
  if (answer.isError) {
    throw new ToolFailure(text || 'tool call failed', (structured?.error_code as string | null | undefined) ?? null);
  }
  return structured ?? (JSON.parse(text) as Result);
}

async function run(config: WorkerConfig, client: Client): Promise<number> {
  let runId: string = randomUUID();
  let of = config.mode === 'claim-once' ? 1 : config.turns;
  let fromTurn = 1;
  let recorded = new Map<string, { tool: string; result: Result | null }>();

  let resumed = false;
  if (config.mode === 'run' && config.resume) {
    const answer = (await callTool(client, 'read', { what: 'resume', worker: config.name, tenant: config.tenant })) as ResumeResult;
    const point = resumePoint(answer);
    if (point) {
      ({ runId, of, fromTurn, recorded } = point);
      resumed = true;
      emit('run_resumed', { run_id: runId, from_turn: fromTurn, of, reused_calls: recorded.size });
    }
  }
  if (!resumed) emit('run_started', { run_id: runId, worker: config.name, tenant: config.tenant, turns: of });

  // The pace is the pause before each call, for watching. A resumed run's first call goes at
  // once: its pause was spent before the crash, and the crash drill times the resume. A fresh
  // run keeps it (the boundary drill reads a Worker that is asleep before its first claim).
  let unpaced = resumed;
  const step = async (turn: number, call: number, tool: string, args: Result, endsTurn = false): Promise<Result> => {
    const reused = recorded.get(callKey(turn, call));
    if (reused) {
      if (reused.tool !== tool) throw new Error(`journal of run ${runId} has ${reused.tool} at turn ${turn} call ${call}, expected ${tool}`);
      emit('call_reused', { run_id: runId, turn, call, tool });
      return reused.result ?? {};
    }
    if (!unpaced && config.paceMs > 0) await delay(config.paceMs);
    unpaced = false;
    emit('call_started', { run_id: runId, turn, call, tool });
    const journal: Journal = { run_id: runId, worker: config.name, tenant: config.tenant, turn, of, call };
    if (endsTurn) journal.ends_turn = true;
    try {
      const result = await callTool(client, tool, { ...args, journal });
      emit('call_completed', { run_id: runId, turn, call, tool, result });
      if (config.pauseAfter === callKey(turn, call)) {
        // Stalled mid-turn, as behind a slow model call: the operator kills it here.
        emit('paused', { run_id: runId, turn, call, pause_ms: stallMs });
        await delay(stallMs);
      }
      return result;
    } catch (error) {
      if (error instanceof ToolFailure) {
        emit('call_failed', { run_id: runId, turn, call, tool, error: error.message, error_code: error.code });
      }
      throw error;
    }
  };

  for (let turn = fromTurn; turn <= of; turn += 1) {
    const hold = config.claimHoldMs === undefined ? {} : { hold_ms: config.claimHoldMs };
    const claimed = (await step(turn, 1, 'claim', hold, config.mode === 'claim-once')) as unknown as ClaimResult;
    // Nothing claimed: the server ended the turn with the claim (and the run, on the last turn).
    if (config.mode === 'claim-once' || claimed.transaction_id === null) continue;
    const written = (await step(turn, 2, 'write', writeArguments(config.tenant, claimed))) as unknown as WriteResult;
    await step(turn, 3, 'queue', queueArguments(config.tenant, claimed, written), true);
  }
  emit('run_finished', { run_id: runId, turns: of });
  return workerExitCodes.finished;
}

/** Resolves true on the first SIGUSR2, false if none comes within the stall bound; a later SIGUSR2 is ignored. */
function goSignal(): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), stallMs);
    process.on('SIGUSR2', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function main(): Promise<number> {
  let config: WorkerConfig;
  try {
    config = readWorkerConfig(process.env);
  } catch (error) {
    process.stderr.write(`worker: ${error instanceof Error ? error.message : String(error)}\n`);
    return workerExitCodes.badSettings;
  }
  const client = new Client({ name: `sor-worker-${config.name}`, version: '0.1.0' });
  const transport = new StreamableHTTPClientTransport(new URL(config.toolsUrl), {
    requestInit: { headers: { authorization: `Bearer ${config.token}` } },
  });
  // Installed before the connection, so a go that comes right after `ready` is not lost.
  const go = config.waitForGo ? goSignal() : undefined;
  try {
    await client.connect(transport);
    if (go) {
      emit('ready', { worker: config.name });
      if (!(await go)) {
        process.stderr.write(`worker: no go (SIGUSR2) within ${stallMs / 60_000} min\n`);
        return workerExitCodes.badSettings;
      }
      emit('go', { worker: config.name });
    }
    return await run(config, client);
  } catch (error) {
    if (error instanceof ToolFailure) {
      process.stderr.write(`worker: ${error.message}\n`);
      return workerExitCodes.callFailed;
    }
    const message = error instanceof Error ? error.message : String(error);
    emit('worker_error', { message });
    process.stderr.write(`worker: ${message}\n`);
    return workerExitCodes.unreachable;
  } finally {
    await client.close().catch(() => {});
  }
}

main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`worker: ${String(error)}\n`);
    process.exit(workerExitCodes.unreachable);
  },
);
