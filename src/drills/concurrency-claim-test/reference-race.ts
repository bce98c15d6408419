// The race on the reference Worker side: two reference Workers (mode claim-once)
// through the reference tool server (the session's shared one when unbroken), each
// claim asking the server to hold its row lock (hold_ms, a bound only): the drill
// ends the holds (SIGUSR2, launch.ts releaseHolds) as soon as it has seen B's claim
// lock a row of its own or B's session wait for A's lock. So A holds its row exactly
// until B's claim is seen, however slowly B starts: an event, never a timer.
import { goWorker, jsonLines, releaseHolds, startWorker, type ToolServer } from '../../reconciler/launch.js';
import type { Supervisor } from '../../reconciler/supervisor.js';
import { waitFor, WaitTimeout } from '../../util/wait.js';
import { toolServerStep } from '../common-steps.js';
import { naturalKeys, withEvidence } from '../evidence.js';
import { CouldNotDetermine } from '../runner.js';
import { need, type DrillContext } from '../types.js';
import { startAThenB } from './a-then-b.js';
import { checkClaimable, claimsOf } from './claims.js';
import { sampleLockWaits } from './locks.js';
import { ended, toolServerApplication, workerNames, workers, type State } from './state.js';

/** How long A may take to hold its row, and B to lock one or to begin waiting for one. */
const arrivalTimeoutMs = 30_000;
/**
 * The hold each Worker's claim asks for: the bound on a stuck race only (the drill ends
 * it once it has seen B arrive, or gives up after arrivalTimeoutMs and ends it then).
 */
const holdBoundMs = arrivalTimeoutMs + 5_000;

/**
 * Whether a tool server's line says one of the drill's Workers locked one of this run's
 * rows: the Worker names are the same in every run, the rows are this run's tenant's.
 */
function lockedHere(line: Record<string, unknown>, names: string[], rows: string[]): boolean {
  return line.event === 'claim_locked' && names.includes(String(line.worker)) && rows.includes(String(line.transaction_id));
}

/** The drill's Workers (by run worker name) the tool server has said hold one of `rows`, in lock order. */
function lockedWorkers(ctx: DrillContext, toolServer: string, names: string[], rows: string[]): string[] {
  return jsonLines(ctx.system.supervisor(), toolServer)
    .filter((line) => lockedHere(line, names, rows))
    .map((line) => String(line.worker));
}

/**
 * Once B has started (A holding its row since `aHeldAt`): waits until B has either locked
 * a row of its own or begun to wait for one (`lockWaits()` > 0), or has ended; and at
 * least the visible claim hold (ctx.options.claimHoldMs: 0 headless, a person's pace in
 * the console) has passed since A held its row.
 */
async function waitForB(ctx: DrillContext, toolServer: string, rows: string[], aHeldAt: number, lockWaits: () => number): Promise<void> {
  const b = workers[1];
  await waitFor(
    `${b.process} to lock a row or to wait for one`,
    () =>
      Date.now() - aHeldAt >= ctx.options.claimHoldMs &&
      (lockedWorkers(ctx, toolServer, [b.process], rows).length > 0 || lockWaits() > 0 || ended(ctx, b.process)),
    { timeoutMs: arrivalTimeoutMs + ctx.options.claimHoldMs, intervalMs: 20, signal: ctx.signal },
  );
}

/**
 * Ends the claim holds until both Workers are done: a Worker that waited for A's row
 * locks its own only after A released, and holds it in turn.
 */
async function releaseUntilDone(ctx: DrillContext, toolServer: string, names: string[], rows: string[]): Promise<void> {
  const sup = ctx.system.supervisor();
  await waitFor(
    'both Workers to finish their claims',
    async () => {
      if (workers.every((worker) => ended(ctx, worker.process))) return true;
      const lines = jsonLines(sup, toolServer);
      const sinceRelease = lines.slice(lines.findLastIndex((line) => line.event === 'holds_released') + 1);
      if (sinceRelease.some((line) => lockedHere(line, names, rows))) {
        await releaseHolds(sup, toolServer);
      }
      return false;
    },
    { timeoutMs: arrivalTimeoutMs, intervalMs: 20, signal: ctx.signal },
  );
}

/** A race Worker: one claim, asking for the hold the drill ends; `waitForGo`: connected, it waits for goWorker(). */
function startRaceWorker(sup: Supervisor, name: string, tenant: string, tools: ToolServer, waitForGo: boolean) {
  return startWorker(sup, { name, processName: name, tenant, tools, pace_ms: 0, mode: 'claim-once', claimHoldMs: holdBoundMs, waitForGo });
}

/** Ends whatever claim hold is still in progress in the tool server, if it still runs. */
async function releaseLeftHolds(ctx: DrillContext, toolServer: string): Promise<void> {
  const sup = ctx.system.supervisor();
  if (sup.get(toolServer)?.state !== 'running') return;
  await releaseHolds(sup, toolServer);
}

export const referenceToolServer = toolServerStep<State>({
  title: 'Start the tool server',
  why: 'Each claim holds its row lock until the drill has seen the second Worker arrive, so the second Worker meets a row the first still holds.',
  hint: {
    look: 'claim_hold says how long a claim keeps its row lock open: until the drill has seen B arrive (B locking a row of its own, or waiting for A\u2019s). claimable lists the two rows a claim may take now. A claimed row whose lease has run out counts as claimable again.',
    mistake: 'A claim that commits status claimed with no lease. If that Worker dies, the row stays claimed forever and nobody picks it up; a lease_until that expires lets another Worker reclaim it.',
  },
  breaks: { noSkipLocked: true },
  after: checkClaimable,
});

/**
 * Two reference Workers over the drill tenant's two rows: A first; B once the database
 * shows A's claim holding its row (the tool server holds it until the drill releases it).
 */
export async function raceReferenceWorkers(ctx: DrillContext, state: State): Promise<void> {
  const tools = need(state.tools, 'the tool server');
  const tenant = need(state.tenant, 'the drill tenant').id;
  const p = ctx.profile.names.pending_transactions;
  const sup = ctx.system.supervisor();
  const names = workerNames;
  state.workerNames = names;
  // A race that ended early (a timeout, a failed start) leaves no hold behind in the tool
  // server, which may be the session's shared one: run last, once the Workers are stopped.
  ctx.defer(() => releaseLeftHolds(ctx, tools.name));
  // Postgres's own view of the race: the tool server's sessions waiting for a lock
  // (another application's lock waits on a busy target are not the claim's).
  const sampler = sampleLockWaits(ctx, toolServerApplication, 'any');
  let lockWaits: number;
  try {
    await withEvidence(
      ctx,
      {
        label: 'Worker A claims first; Worker B claims while A holds its row',
        tables: [{ name: p.tableName, filter: { [p.tenant.name]: tenant }, key: [p.key.name] }],
        expect: [`${p.tableName}:+0`],
        volatiles: [...(p.lease_until ? [p.lease_until.name] : []), ...naturalKeys(ctx, ['pending_transactions'])],
      },
      async (log) => {
        const waiting = new Set<string>();
        const start = await startAThenB(ctx, {
          tag: toolServerApplication,
          toolServer: 'the tool server',
          timeoutMs: arrivalTimeoutMs,
          // B's process starts beside A's and waits; start(B) lets it make its claim.
          ready: async (worker) => {
            ctx.defer(() => ctx.system.stop(worker.process));
            waiting.add(worker.process);
            await startRaceWorker(sup, worker.process, tenant, tools, true);
            log(`${worker.process} started, waiting to be let go`);
          },
          start: async (worker) => {
            if (waiting.has(worker.process)) {
              await goWorker(sup, worker.process);
              log(`${worker.process} let go`);
              return;
            }
            ctx.defer(() => ctx.system.stop(worker.process));
            await startRaceWorker(sup, worker.process, tenant, tools, false);
            log(`${worker.process} started`);
          },
        });
        if (!start.bStarted) throw new CouldNotDetermine(start.reason);
        try {
          await waitForB(ctx, tools.name, state.pending, start.aSeenAt, sampler.most);
          await releaseUntilDone(ctx, tools.name, names, state.pending);
        } catch (error) {
          if (!(error instanceof WaitTimeout)) throw error;
          throw new CouldNotDetermine(`the race could not be observed: ${error.message}`, { cause: error });
        }
        for (const worker of workers) {
          const exit = await sup.waitForExit(worker.process);
          log(`${worker.process} exited with ${exit.exitCode ?? exit.signal}`);
        }
        return 0;
      },
    );
  } finally {
    lockWaits = await sampler.stop();
  }
  state.lockWaits = lockWaits;
  ctx.observe('lock_waits_seen', lockWaits, lockWaits === 0);
  const claims = await claimsOf(ctx, tenant, names);
  state.claims = claims;
  const completed = ctx.profile.names.tool_calls.values.completed;
  for (const worker of workers) {
    const claim = claims.find((row) => row.worker === worker.process);
    ctx.observe(
      `claim by ${worker.process}`,
      claim ? `${claim.transaction_id ?? 'nothing'} (${claim.status}${claim.error_code ? ` ${claim.error_code}` : ''})` : 'no claim journaled',
      claim?.status === completed && claim.transaction_id !== null,
    );
  }
}
