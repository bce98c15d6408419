// The reference Worker's run, apart from its process: one MCP client (a session of
// the tool server) working through a run of turns, resuming a crashed one from the
// journal. worker.ts runs one per process; the fleet drill's host (fleet-worker.ts)
// runs many side by side, each its own Worker with its own client and run.
import { randomUUID } from 'node:crypto';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { ClaimResult, ResumeResult, WriteResult } from './actions.js';
import type { Journal } from './journal.js';
import { callKey, queueArguments, resumePoint, writeArguments, type WorkerConfig } from './worker-plan.js';
import { delay } from '../util/wait.js';

/** How long a Worker stalls at SOR_PAUSE_AFTER before it goes on by itself. */
export const stallMs = 10 * 60_000;

export const workerExitCodes = { finished: 0, callFailed: 1, badSettings: 2, unreachable: 3 } as const;

/** Where a run's JSON lines go. */
export type Emit = (event: string, fields?: Record<string, unknown>) => void;

export class ToolFailure extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

type Result = Record<string, unknown>;

export async function callTool(client: Client, name: string, args: Result): Promise<Result> {
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

/** How one run ended: whether a claim found nothing left (a fleet Worker then stops). */
export interface RunOutcome {
  runId: string;
  /** A claim of this run found no pending transaction. */
  drained: boolean;
}

/**
 * One run of the Worker: the crashed run resumed from the journal when there is one, else a new
 * run of config.turns turns. `emit` gets the JSON lines (worker.ts writes them all to stdout; the
 * fleet's host keeps only a few). Throws ToolFailure when a call fails.
 */
export async function runWorker(config: WorkerConfig, client: Client, emit: Emit): Promise<RunOutcome> {
  let runId: string = randomUUID();
  let of = config.mode === 'claim-once' ? 1 : config.turns;
  let fromTurn = 1;
  let recorded = new Map<string, { tool: string; result: Result | null }>();

  let resumed = false;
  let drained = false;
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
    if (claimed.transaction_id === null) drained = true;
    if (config.mode === 'claim-once' || claimed.transaction_id === null) continue;
    const written = (await step(turn, 2, 'write', writeArguments(config.tenant, claimed))) as unknown as WriteResult;
    await step(turn, 3, 'queue', queueArguments(config.tenant, claimed, written), true);
  }
  emit('run_finished', { run_id: runId, turns: of });
  return { runId, drained };
}

