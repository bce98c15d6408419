// The one start key of the race, on either Worker side: Worker A (the process
// worker-a, whose Worker name is worker-a too) starts first; the drill watches the
// database until A's claim holds its row, and only then starts Worker B, while A
// still holds it. So A locks first because it was first, not because it won a race,
// and B meets a row that is held: what SKIP LOCKED is for. A Worker that can wait
// for a go (the reference one) has B's process started beside A's, connected and
// making no call until the drill lets it go at that moment: B's claim still comes
// only once A holds its row, without B's process start on the way.
import { WaitTimeout } from '../../util/wait.js';
import type { DrillContext } from '../types.js';
import { waitForRowLock } from './locks.js';
import { workers, type RaceWorker } from './state.js';

/** What the operator is asked (the console shows it beside the start key). */
export const startPrompt = 'Start Workers A and B: A first, B while A holds its row';

/** How the start went: B started (after A held its row, or after A ended holding none), or not at all. */
export type AThenB = { bStarted: true; aHeld: boolean; /** Date.now() when A was seen holding its row (or ended). */ aSeenAt: number } | { bStarted: false; reason: string };

/**
 * Asks for the start; when it is given, starts A (and, with `ready`, B's process beside it,
 * waiting), waits (polling pg_locks) until a session of the tool server, by its
 * application_name `tag`, holds A's claimed row, then starts B (lets it go, with `ready`).
 * A that ends before any row lock is seen (its claim took nothing, or held nothing) does
 * not stop B: what each claim answered is the verdict's to read. A that neither locks nor
 * ends within `timeoutMs` leaves B unstarted, with the reason.
 */
export async function startAThenB(
  ctx: DrillContext,
  options: {
    tag: string;
    toolServer: string;
    timeoutMs: number;
    start: (worker: RaceWorker) => Promise<void>;
    /** Starts B's process beside A's, making no call until start(b): resolves once it waits. */
    ready?: (worker: RaceWorker) => Promise<void>;
  },
): Promise<AThenB> {
  const [a, b] = workers;
  const table = ctx.profile.names.pending_transactions.table;
  let outcome: AThenB | undefined;
  await ctx.operator.request({ kind: 'start', processes: workers.map((worker) => worker.process), prompt: startPrompt }, async () => {
    const bReady = options.ready?.(b);
    // Awaited below; a failure meanwhile must not go unhandled.
    bReady?.catch(() => {});
    await options.start(a);
    let seen;
    try {
      seen = await waitForRowLock(ctx, { tag: options.tag, table, process: a.process, timeoutMs: options.timeoutMs });
    } catch (error) {
      if (!(error instanceof WaitTimeout)) throw error;
      const reason =
        `${a.process}'s claim held no row of ${table.name} within ${options.timeoutMs / 1000} s ` +
        `(no session of ${options.toolServer} held a lock on it), so ${b.process} was not ${bReady ? 'let go' : 'started'}: there was no race to look at`;
      ctx.observe(`${a.process} holds its row`, reason, false);
      outcome = { bStarted: false, reason };
      return;
    }
    const now = bReady ? `${b.process} (started beside it, waiting) goes now` : `${b.process} starts now`;
    ctx.observe(
      `${a.process} holds its row`,
      seen.held
        ? `yes: session pid ${seen.pid} of ${options.toolServer} holds ${seen.mode} on ${table.name} for its claim; ${now}`
        : `${a.process} ended before any row lock of its claim was seen; ${now}`,
      seen.held,
    );
    await bReady;
    outcome = { bStarted: true, aHeld: seen.held, aSeenAt: Date.now() };
    await options.start(b);
  });
  if (!outcome) throw new Error('internal: the start was given but the Workers were not started');
  return outcome;
}
