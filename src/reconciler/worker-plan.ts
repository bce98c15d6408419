// The reference Worker's fixed plan, without I/O: what a run of turns calls,
// and where a crashed run resumes. No model is needed: each turn claims a
// pending transaction, writes it as an expense, and queues the email about it.
import type { ClaimResult, ResumeResult, RecordedCall, WriteResult } from './actions.js';
import { intSetting, requiredSetting } from './json-lines.js';

export type WorkerMode = 'run' | 'claim-once';

export interface WorkerConfig {
  toolsUrl: string;
  token: string;
  name: string;
  tenant: string;
  paceMs: number;
  turns: number;
  resume: boolean;
  mode: WorkerMode;
  /**
   * `turn.call` (e.g. `3.1`): after executing that call the Worker stalls, as a slow
   * model call would, so the operator can kill it mid-turn. A reused call does not stall.
   */
  pauseAfter: string | undefined;
  /**
   * The hold each claim asks for (the claim tool's hold_ms), or none: the race drill's
   * Workers ask for a long one, which the drill ends as soon as it has seen the second
   * Worker's claim (SIGUSR2 to the tool server), so the bound is only for a stuck race.
   */
  claimHoldMs: number | undefined;
  /**
   * Connect, say `ready`, and make no call until SIGUSR2 (then say `go`): a Worker whose
   * process starts beside another's, while its first call must come after a moment the
   * drill watches for (the race's B, started with A and let go once A holds its row).
   */
  waitForGo: boolean;
}

/** The Worker's settings, from its allow-listed environment (system.ts startWorker). */
export function readWorkerConfig(env: NodeJS.ProcessEnv): WorkerConfig {
  const mode = env.SOR_MODE || 'run';
  if (mode !== 'run' && mode !== 'claim-once') throw new Error(`SOR_MODE must be run or claim-once, got ${mode}`);
  const turns = intSetting(env, 'SOR_TURNS', 5);
  const pauseAfter = env.SOR_PAUSE_AFTER || undefined;
  if (pauseAfter !== undefined && !/^\d+\.\d+$/.test(pauseAfter)) {
    throw new Error(`SOR_PAUSE_AFTER must be turn.call (e.g. 3.1), got ${pauseAfter}`);
  }
  if (turns < 1) throw new Error('SOR_TURNS must be at least 1');
  const claimHoldMs = env.SOR_CLAIM_HOLD_MS ? intSetting(env, 'SOR_CLAIM_HOLD_MS', 0) : undefined;
  return {
    toolsUrl: requiredSetting(env, 'SOR_TOOLS_URL'),
    token: requiredSetting(env, 'SOR_TOOLS_TOKEN'),
    name: requiredSetting(env, 'SOR_WORKER_NAME'),
    tenant: requiredSetting(env, 'SOR_TENANT'),
    paceMs: intSetting(env, 'SOR_PACE_MS', 1_000),
    turns,
    resume: !['0', 'false', 'off', 'no'].includes((env.SOR_RESUME ?? '1').toLowerCase()),
    mode,
    pauseAfter,
    claimHoldMs,
    waitForGo: env.SOR_WAIT_FOR_GO === '1',
  };
}

export const callKey = (turn: number, call: number) => `${turn}.${call}`;

export interface ResumePoint {
  runId: string;
  of: number;
  /** The first turn that is not completed: the run goes on from here. */
  fromTurn: number;
  /** Completed calls of the turns still to do, by callKey: reused, never called again. */
  recorded: Map<string, RecordedCall>;
}

/** Where a crashed run resumes, from the read tool's resume answer; null when there is none. */
export function resumePoint(answer: ResumeResult): ResumePoint | null {
  const run = answer.run;
  if (!run) return null;
  const completed = new Set(answer.turns.filter((turn) => turn.status === 'completed').map((turn) => turn.turn_no));
  let fromTurn = 1;
  while (fromTurn < run.total_turns && completed.has(fromTurn)) fromTurn += 1;
  const recorded = new Map<string, RecordedCall>();
  for (const call of answer.calls) {
    if (call.turn < fromTurn) continue;
    const key = callKey(call.turn, call.call);
    if (!recorded.has(key)) recorded.set(key, call);
  }
  return { runId: run.id, of: run.total_turns, fromTurn, recorded };
}

type Claimed = Pick<ClaimResult, 'transaction_id' | 'amount_cents' | 'description'>;

/** Call 2 of a turn: the expense for the claimed transaction, keyed `<tenant>:<transaction_id>`. */
export function writeArguments(tenant: string, claimed: Claimed) {
  return {
    idempotency_key: `${tenant}:${claimed.transaction_id}`,
    transaction_id: claimed.transaction_id ?? undefined,
    amount_cents: claimed.amount_cents ?? 0,
    description: claimed.description ?? '',
  };
}

/** Call 3 of a turn: the email about it, deduplicated by `expense-recorded:<tenant>:<transaction_id>`. */
export function queueArguments(tenant: string, claimed: Claimed, written: Pick<WriteResult, 'expense_id'>) {
  const id = claimed.transaction_id ?? '';
  const amount = ((claimed.amount_cents ?? 0) / 100).toFixed(2);
  return {
    dedup_key: `expense-recorded:${tenant}:${id}`,
    recipient: `finance@${tenant}.example`,
    subject: `Expense recorded: ${id}`,
    body: `Transaction ${id} (${amount}) was recorded as expense ${written.expense_id ?? '?'}.`,
    transaction_id: id,
  };
}
