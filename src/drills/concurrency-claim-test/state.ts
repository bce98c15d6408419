// What the race drill's steps leave for the next step and for the verdict, and the
// names both Worker sides share.
import type { TenantState, ToolServerState } from '../common-steps.js';
import type { DrillContext } from '../types.js';

/**
 * Worker A and Worker B: each has one name, used alike by the evidence line, the process
 * panel (the supervised process), the journal (runs' worker) and the diff (claimed_by).
 * The drill's own tenant keeps one drill run's claims apart from another's.
 */
export const workers = [
  { process: 'worker-a', label: 'A' },
  { process: 'worker-b', label: 'B' },
] as const;
export type RaceWorker = (typeof workers)[number];
/** The Worker names, in the order of `workers`: the process names themselves. */
export const workerNames: string[] = workers.map((worker) => worker.process);
/** The application_name of the tool server's sessions (src/reconciler/tool-server.ts): whose lock waits count. */
export const toolServerApplication = 'sor-tool-server';
/** Claims left behind expire quickly, so the drill can run again on the same target. */
export const leaseMs = 5_000;

export interface ClaimRow {
  worker: string;
  status: string;
  error_code: string | null;
  error: string | null;
  transaction_id: string | null;
  /** When the claim call began; null when tool_calls.started_at is not in the profile. */
  started_at: string | null;
  finished_at: string | null;
  locked_at: string | null;
  released_at: string | null;
}

/** A claim call of one of their Workers, from the journal. */
export interface TheirClaim {
  worker: string;
  status: string;
  error_code: string | null;
  error: string | null;
  /** What the claim answered it took, when tool_calls.result is mapped and says transaction_id. */
  transaction_id: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/** A drill row after the race. */
export interface TheirRow {
  id: string;
  status: string;
  claimed_by: string | null;
  /** Expenses that name it (expenses.transaction); null when the profile maps no such column. */
  expenses: number | null;
}

/** The operator's Worker side as the race drives it. */
export interface OperatorRace {
  /** Evidence names: "the operator's Worker `node worker.mjs`", "the operator's tool server `...`". */
  worker: string;
  toolServer: string;
  theirToolServer: boolean;
  /** The application_name of the tool server's sessions: whose lock waits count. */
  tag: string;
  /** The claim tool's name as the journal records it. */
  claimTool: string;
  /** The hold asked for ({claim_hold_ms}). */
  holdMs: number;
  claims: TheirClaim[];
  rows: TheirRow[];
  /** `55P03 in worker-a's log`, for each lock error a process printed. */
  logLockErrors: string[];
  /** `40P01 (record_expense)`, for each call of their runs but the claims (those are in `claims`) failed with a lock error. */
  journalLockErrors: string[];
  /** How each Worker ended: `worker-a: exit 0`. */
  exits: string[];
}

export interface State extends TenantState, ToolServerState {
  /** The drill tenant's two pending transactions the Workers race over, in claim order. */
  pending: string[];
  /** The runs' worker names of A and B, in the order of `workers` (A first). */
  workerNames: string[];
  /** The claim calls both Workers journaled, in call order. */
  claims: ClaimRow[];
  /** The most sessions Postgres showed waiting on a lock at once during the race. */
  lockWaits: number;
  /** The operator's Worker side when the profile declares their Worker; undefined on the reference one. */
  operator?: OperatorRace;
}

export const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NaN);

export function ended(ctx: DrillContext, process: string): boolean {
  const state = ctx.system.supervisor().get(process)?.state;
  return state === 'exited' || state === 'killed';
}
