// The race on the reference Worker side: two reference Workers (mode claim-once)
// through the reference tool server, whose claims hold their row lock until the
// drill releases them (SIGUSR2, launch.ts releaseHolds).
import { randomBytes } from 'node:crypto';
import { jsonLines, releaseHolds, startWorker } from '../../reconciler/launch.js';
import { withPgClient } from '../../postgres/pg.js';
import { waitFor, WaitTimeout } from '../../util/wait.js';
import { toolServerStep } from '../common-steps.js';
import { withEvidence } from '../evidence.js';
import { CouldNotDetermine } from '../runner.js';
import { need, type DrillContext } from '../types.js';
import { checkClaimable, claimsOf } from './claims.js';
import { ended, leaseMs, toolServerApplication, workers, type State } from './state.js';

/** The tool server's hold: longer than any race takes; the drill ends it (releaseHolds) once it has seen the race. */
const heldUntilReleased = 60_000;
/** How long the second Worker may take to lock a row or to begin waiting for one. */
const arrivalTimeoutMs = 30_000;

/** The drill's Workers (by run worker name) the tool server has said hold a row lock, in lock order. */
function lockedWorkers(ctx: DrillContext, toolServer: string, names: string[]): string[] {
  return jsonLines(ctx.system.supervisor(), toolServer)
    .filter((line) => line.event === 'claim_locked' && names.includes(String(line.worker)))
    .map((line) => String(line.worker));
}

/**
 * Waits until one Worker holds its row (A) and the other (B) has either locked a row
 * of its own or begun to wait for one (`lockWaits()` > 0), or has ended; and at least
 * the visible claim hold has passed since A locked. Returns at once when both Workers
 * ended without locking anything (their claims found no row: the verdict says so).
 */
async function waitForTheRace(ctx: DrillContext, toolServer: string, names: string[], lockWaits: () => number): Promise<void> {
  const first = await waitFor(
    'a Worker to lock its row',
    () => lockedWorkers(ctx, toolServer, names)[0] ?? (workers.every((worker) => ended(ctx, worker.process)) ? null : undefined),
    { timeoutMs: arrivalTimeoutMs, signal: ctx.signal },
  );
  if (first === null) return;
  const lockedAt = Date.now();
  const other = workers[names.indexOf(first) === 0 ? 1 : 0];
  const otherName = names.find((name) => name !== first)!;
  await waitFor(
    `${other.process} to lock a row or to wait for one`,
    () =>
      Date.now() - lockedAt >= ctx.options.claimHoldMs &&
      (lockedWorkers(ctx, toolServer, names).includes(otherName) || lockWaits() > 0 || ended(ctx, other.process)),
    { timeoutMs: arrivalTimeoutMs + ctx.options.claimHoldMs, intervalMs: 20, signal: ctx.signal },
  );
}

/**
 * Ends the claim holds until both Workers are done: a Worker that waited for A's row
 * locks its own only after A released, and holds it in turn.
 */
async function releaseUntilDone(ctx: DrillContext, toolServer: string, names: string[]): Promise<void> {
  const sup = ctx.system.supervisor();
  await waitFor(
    'both Workers to finish their claims',
    async () => {
      if (workers.every((worker) => ended(ctx, worker.process))) return true;
      const lines = jsonLines(sup, toolServer);
      const sinceRelease = lines.slice(lines.findLastIndex((line) => line.event === 'holds_released') + 1);
      if (sinceRelease.some((line) => line.event === 'claim_locked' && names.includes(String(line.worker)))) {
        await releaseHolds(sup, toolServer);
      }
      return false;
    },
    { timeoutMs: arrivalTimeoutMs, intervalMs: 20, signal: ctx.signal },
  );
}

export const referenceToolServer = toolServerStep<State>({
  title: 'Start the tool server with a visible claim hold',
  why: 'Each claim holds its row lock until the drill has seen the second Worker arrive, so the second Worker meets a row the first still holds.',
  hint: {
    look: 'claim_hold_ms is the least time a claim keeps its row lock open (the drill ends the hold once it has seen B arrive), and claimable lists the two rows a claim may take now. A claimed row whose lease has run out counts as claimable again.',
    mistake: 'A claim that commits status claimed with no lease. If that Worker dies, the row stays claimed forever and nobody picks it up; a lease_until that expires lets another Worker reclaim it.',
  },
  breaks: { noSkipLocked: true },
  claimHoldMs: () => heldUntilReleased,
  leaseMs,
  after: checkClaimable,
});

/** Two reference Workers race over the drill tenant's two rows. */
export async function raceReferenceWorkers(ctx: DrillContext, state: State): Promise<void> {
    const tools = need(state.tools, 'the tool server');
    const tenant = need(state.tenant, 'the drill tenant').id;
    const p = ctx.profile.names.pending_transactions;
    const sup = ctx.system.supervisor();
    const suffix = randomBytes(3).toString('hex');
    const names = workers.map((worker) => `race-${worker.label.toLowerCase()}-${suffix}`);
    state.workerNames = names;
    let lockWaits = 0;
    let polling = true;
    // Postgres's own view of the race, on a separate connection: the tool server's sessions
    // waiting for a lock (another application's lock waits on a busy target are not the claim's).
    const poll = withPgClient(ctx.url, async (client) => {
      while (polling) {
        const { rows } = await client.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
            where wait_event_type = 'Lock' and datname = current_database() and pid <> pg_backend_pid()
              and application_name = $1`,
          [toolServerApplication],
        );
        lockWaits = Math.max(lockWaits, rows[0]?.n ?? 0);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    try {
      await withEvidence(
        ctx,
        {
          label: 'Workers A and B claim at once',
          tables: [{ name: p.tableName, filter: { [p.tenant.name]: tenant }, key: [p.key.name] }],
          expect: [`${p.tableName}:=`],
          volatiles: p.lease_until ? [p.lease_until.name] : [],
        },
        async (log) => {
          await ctx.operator.request(
            { kind: 'start', processes: workers.map((worker) => worker.process), prompt: 'Start Workers A and B together' },
            async () => {
              // Both at once: whichever locks first holds its row while the other claims.
              await Promise.all(
                workers.map((worker, index) => {
                  ctx.defer(() => ctx.system.stop(worker.process));
                  return startWorker(sup, {
                    name: names[index]!,
                    processName: worker.process,
                    tenant,
                    tools,
                    pace_ms: 0,
                    mode: 'claim-once',
                  });
                }),
              );
            },
          );
          try {
            await waitForTheRace(ctx, tools.name, names, () => lockWaits);
            await releaseUntilDone(ctx, tools.name, names);
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
      polling = false;
      await poll;
    }
    state.lockWaits = lockWaits;
    ctx.observe('lock_waits_seen', lockWaits, lockWaits === 0);
    const claims = await claimsOf(ctx, names);
    state.claims = claims;
    const completed = ctx.profile.names.tool_calls.values.completed;
    for (const [index, worker] of workers.entries()) {
      const claim = claims.find((row) => row.worker === names[index]);
      ctx.observe(
        `claim by ${worker.process}`,
        claim ? `${claim.transaction_id ?? 'nothing'} (${claim.status}${claim.error_code ? ` ${claim.error_code}` : ''})` : 'no claim journaled',
        claim?.status === completed && claim.transaction_id !== null,
      );
    }
}
