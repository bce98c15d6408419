// What the drill's steps leave for the next step and for the verdict.
import type { EmailService } from '../../reconciler/launch.js';
import type { TenantState } from '../common-steps.js';
import type { EmailCounts } from './email-deliveries.js';
import type { Episode } from './episode.js';
import type { OutboxRow } from './outbox-row.js';
import type { RelayCounts } from './relay.js';

/** The drill's own outbox row, as the queue step made it. */
export interface Queued {
  id: string;
  dedupKey: string;
}

/**
 * The episode on the operator's own relay (operator-relay.ts), as the database and
 * the email stand-in showed it: their relay's output is never read.
 */
export interface OperatorRelayRun {
  /** The evidence's name for it: "the operator's relay `node relay.mjs`". */
  whose: string;
  /** Whether the stand-in held its answer to a retry: the kill point was reached. */
  retryHeld: boolean;
  /** Why no retry was held, as observed (the row no longer pending, none sent in time). */
  noRetry?: string;
  /** Set when the restarted relay had not marked the row dispatched by the deadline. */
  notDispatched?: string;
}

export interface State extends TenantState {
  /** The email service (its report is the count of deliveries). */
  email?: EmailService;
  /** The outbox row the drill queued. */
  queued?: Queued;
  /** The row right after the queue call (pending, attempts 0). */
  rowQueued?: OutboxRow;
  /** The oracle around the relay episode, open from before the first send to the dispatch. */
  episode?: Episode;
  /** The row after the failed first send. */
  rowAfterBlip?: OutboxRow;
  /** The row after the relay was killed between its send and its commit. */
  rowAfterKill?: OutboxRow;
  /** The row after the restarted relay dispatched it. */
  rowFinal?: OutboxRow;
  /** How the relay ended at the kill: `pid <n> by SIGKILL` (or `by exit <code>`). */
  relayKilled?: string;
  /** The email service's counts for the dedup_key when the relay was killed. */
  emailAtKill?: EmailCounts;
  /** The email service's counts for the dedup_key after the dispatch. */
  emailFinal?: EmailCounts;
  /** What the relay reported about the row, over all its starts. */
  counts?: RelayCounts;
  /** Set when the profile declares the operator's relay and the drill started it. */
  operatorRelay?: OperatorRelayRun;
  /** Whether every oracle expectation of the episode held. */
  oracleOk: boolean;
  /** The oracle's expectations with their verdicts, one `predicate: verdict` each. */
  oracleEvidence?: string;
}
