// Drill 4, concurrency_claim_test (Lesson 4, claims). Two Worker processes race
// for the same pending transactions. Worker A claims first and holds its row lock;
// while A still holds it, Worker B claims: with FOR UPDATE SKIP LOCKED, B must
// skip A's row and take the next one at once. Observed: who claimed what, when
// each got its lock (clock_timestamp inside the claim transaction), the lock waits
// Postgres itself reported while the race ran, and any 55P03 / 40P01 errors.
import { randomBytes } from 'node:crypto';
import { startWorker } from '../reconciler/launch.js';
import { withPgClient } from '../postgres/pg.js';
import { toolServerStep, type ToolServerState } from './common-steps.js';
import { withEvidence } from './evidence.js';
import { query } from './sql.js';
import { need, type Drill, type DrillContext } from './types.js';

const tenant = 'alice';
const workers = [
  { process: 'worker-a', label: 'A' },
  { process: 'worker-b', label: 'B' },
] as const;
/** Claims left behind expire quickly, so the drill can run again on the same target. */
const leaseMs = 5_000;

interface ClaimRow {
  worker: string;
  status: string;
  error_code: string | null;
  error: string | null;
  transaction_id: string | null;
  started_at: string;
  finished_at: string | null;
  locked_at: string | null;
  released_at: string | null;
}

async function claimsOf(ctx: DrillContext, names: string[]): Promise<ClaimRow[]> {
  return query<ClaimRow>(
    ctx,
    `select r.worker, c.status, c.error_code, c.error,
            c.result ->> 'transaction_id' as transaction_id,
            c.started_at::text, c.finished_at::text,
            c.result ->> 'locked_at' as locked_at, c.result ->> 'released_at' as released_at
       from tool_calls c join runs r on r.id = c.run_id
      where r.worker = any($1::text[]) and c.tool = 'claim'
      order by c.id`,
    [names],
  );
}

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NaN);

interface State extends ToolServerState {
  /** The runs' worker names of A and B, in the order of `workers` (unique per drill run). */
  workerNames: string[];
  /** The claim calls both Workers journaled, in call order. */
  claims: ClaimRow[];
  /** The most sessions Postgres showed waiting on a lock at once during the race. */
  lockWaits: number;
}

export const concurrencyClaimTest: Drill<State> = {
  number: 4,
  key: 'concurrency_claim_test',
  title: 'SKIP LOCKED claims',
  lesson: 4,
  habit: 'claims with FOR UPDATE SKIP LOCKED',
  tables: ['pending_transactions', 'tool_calls'],
  breakDescription: 'claims without SKIP LOCKED (plain FOR UPDATE): B waits for A\u2019s lock',
  fix: 'claim with SELECT ... FOR UPDATE SKIP LOCKED (with a lease) so a second Worker skips a locked row instead of waiting for it',
  init: () => ({ workerNames: [], claims: [], lockWaits: 0 }),
  steps: [
    toolServerStep({
      title: 'Start the tool server with a visible claim hold',
      why: 'Each claim holds its row lock for a moment before committing, so the second Worker arrives while the first still holds it.',
      breaks: { noSkipLocked: true },
      claimHoldMs: (ctx) => ctx.options.claimHoldMs,
      leaseMs,
      async after(ctx) {
        ctx.observe('claim_hold_ms', ctx.options.claimHoldMs);
        const pending = await query<{ id: string }>(
          ctx,
          `select id from pending_transactions
            where tenant_id = $1 and (status = 'pending' or (status = 'claimed' and locked_until < clock_timestamp()))
            order by id limit 2`,
          [tenant],
        );
        if (pending.length < 2) throw new Error(`${tenant} has ${pending.length} claimable pending transactions; the race needs two`);
        ctx.observe('claimable', pending.map((row) => row.id));
      },
    }),
    {
      id: 'race',
      title: 'Start Workers A and B together',
      why: 'Both claim at once: the first to lock (A) holds its row; the other (B) arrives while A holds it. SKIP LOCKED lets B take the next row without waiting.',
      operator: 'start',
      sql: [
        `select id from pending_transactions where tenant_id = $1 and status = 'pending' order by id limit 1 for update skip locked`,
        `select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`,
      ],
      async run(ctx, state) {
        const tools = need(state.tools, 'the tool server');
        const sup = ctx.system.supervisor();
        const suffix = randomBytes(3).toString('hex');
        const names = workers.map((worker) => `race-${worker.label.toLowerCase()}-${suffix}`);
        state.workerNames = names;
        let lockWaits = 0;
        let polling = true;
        // Postgres's own view of the race, on a separate connection: sessions waiting for a lock.
        const poll = withPgClient(ctx.url, async (client) => {
          while (polling) {
            const { rows } = await client.query<{ n: number }>(
              `select count(*)::int as n from pg_stat_activity
                where wait_event_type = 'Lock' and datname = current_database() and pid <> pg_backend_pid()`,
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
              tables: [{ name: 'pending_transactions', filter: { tenant_id: tenant }, key: ['id'] }],
              expect: ['pending_transactions:='],
              volatiles: ['locked_until'],
            },
            async (log) => {
              await ctx.operator.request(
                { kind: 'start', processes: workers.map((worker) => worker.process), prompt: 'Press enter to start Workers A and B together' },
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
        for (const [index, worker] of workers.entries()) {
          const claim = claims.find((row) => row.worker === names[index]);
          ctx.observe(
            `claim by ${worker.process}`,
            claim ? `${claim.transaction_id ?? 'nothing'} (${claim.status}${claim.error_code ? ` ${claim.error_code}` : ''})` : 'no claim journaled',
            claim?.status === 'completed' && claim.transaction_id !== null,
          );
        }
      },
    },
    {
      id: 'processed-once',
      title: 'Check each row was claimed once',
      why: 'The whole point: no transaction is processed by two Workers.',
      sql: ['select id, claimed_by from pending_transactions where id = any($1)'],
      async run(ctx, state) {
        const claims = state.claims;
        const ids = claims.map((claim) => claim.transaction_id).filter((id): id is string => id !== null);
        const rows = await query<{ id: string; claimed_by: string | null }>(
          ctx,
          `select id, claimed_by from pending_transactions where id = any($1::text[]) order by id`,
          [ids],
        );
        ctx.observe('claimed_by', rows.map((row) => `${row.id}: ${row.claimed_by ?? 'nobody'}`));
        ctx.observe('distinct_rows', new Set(ids).size, new Set(ids).size === ids.length);
      },
    },
  ],
  verdict(_ctx, { claims, workerNames: names, lockWaits }) {
    // "A" is the Worker that got its lock first; "B" the one that came while A held it.
    const [a, b] = names
      .map((name) => claims.find((claim) => claim.worker === name))
      .sort((x, y) => ms(x?.locked_at ?? x?.finished_at) - ms(y?.locked_at ?? y?.finished_at));
    const reasons: string[] = [];
    const errors = claims.filter((claim) => claim.error_code);
    for (const claim of errors) reasons.push(`a claim failed with ${claim.error_code}: ${claim.error ?? ''}`);
    if (!a?.transaction_id || !b?.transaction_id) reasons.push(`A claimed ${a?.transaction_id ?? 'nothing'}, B claimed ${b?.transaction_id ?? 'nothing'}`);
    else if (a.transaction_id === b.transaction_id) reasons.push(`both Workers claimed ${a.transaction_id}: duplicate processing`);
    const waited = b && a ? ms(b.locked_at) - ms(b.started_at) : Number.NaN;
    const overlapped = a && b ? ms(b.locked_at) < ms(a.released_at) : false;
    if (a?.transaction_id && b?.transaction_id && !overlapped) {
      reasons.push(`B got its lock only after A released ${a.transaction_id} (B waited ${Math.round(waited)} ms)`);
    }
    if (lockWaits > 0) reasons.push(`Postgres showed ${lockWaits} session(s) waiting on a lock during the race`);
    if (reasons.length > 0) {
      const reason = reasons.join('; ');
      return { verdict: 'fail', evidence: reason, reason };
    }
    return {
      verdict: 'pass',
      evidence:
        `Worker A claimed pending_transaction ${a!.transaction_id}. Worker B skipped ${a!.transaction_id} and claimed ${b!.transaction_id}. ` +
        `No duplicate processing. No lock errors raised (B locked its row ${Math.max(0, Math.round(waited))} ms after asking, while A held ${a!.transaction_id}; ${lockWaits} lock waits seen).`,
    };
  },
};
