// The drills that need the Reconciler's processes, against real processes and a
// real Postgres: green on the reference system, red with their deliberate break,
// red when the target itself lacks the mechanism.
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { addedRows } from '../helpers/diff-rows.js';
import { runOne, useDrillTarget, type TestSystem } from '../helpers/drills.js';
import { idempotencyRetryTest, writeOutcome } from '../../src/drills/idempotency-retry-test.js';
import { runJournalResumeDrill, timeline } from '../../src/drills/run-journal-resume-drill.js';
import { concurrencyClaimTest, duplicateProcessing, lockErrors } from '../../src/drills/concurrency-claim-test/index.js';
import { startAThenB } from '../../src/drills/concurrency-claim-test/a-then-b.js';
import { referenceProfile } from '../../src/postgres/profile/reference.js';
import { resolveProfile } from '../../src/postgres/profile/index.js';
import { connect, withPgClient } from '../../src/postgres/pg.js';
import { waitFor } from '../../src/util/wait.js';
import type { DrillContext, RunnerEvent } from '../../src/drills/types.js';

let db: TestDatabase;
let system: TestSystem;
useDrillTarget((target) => ({ db, system } = target));

const sql = (text: string) => withPgClient(db.url, (client) => client.query(text));

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

/** Alice's pending transactions as they stand: the race drill must leave them as they are. */
async function alicePending(): Promise<unknown[]> {
  const { rows } = await sql(
    `select id, status, claimed_by, locked_until, processed_by, processed_at
       from pending_transactions where tenant_id = 'alice' order by id`,
  );
  return rows;
}

describe('idempotency_retry_test', () => {
  it('passes: one row for two writes, the second a no-op, with an oracle evidence folder', async () => {
    const result = await runOne(idempotencyRetryTest, db, { system });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(
      'Two invocations with the same idempotency key produced one expenses row. Second insert was a no-op. Row count delta: +1.',
    );
    expect(result.evidenceDirs).toHaveLength(1);
  });

  it('fails with its deliberate break: two rows', async () => {
    const result = await runOne(idempotencyRetryTest, db, { system, broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/produced 2 expenses rows .* row count delta: \+2/);
  });

  it('fails when the unique key is dropped from the target, and leaves it dropped', async () => {
    await sql('alter table expenses drop constraint expenses_tenant_idempotency_key');
    try {
      const result = await runOne(idempotencyRetryTest, db, { system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/42P10|no unique or exclusion constraint/);
      const { rows } = await sql(`select 1 from pg_constraint where conname = 'expenses_tenant_idempotency_key'`);
      expect(rows).toHaveLength(0);
    } finally {
      await sql('alter table expenses add constraint expenses_tenant_idempotency_key unique (tenant_id, idempotency_key)');
    }
  });
});

describe('run_journal_resume_drill', () => {
  it('passes: killed mid-turn 3 with SIGKILL, resumed from turn 3, turns 1 and 2 not re-executed', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(runJournalResumeDrill, db, { system, events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(/^Run resumed from turn 3 of 5\. Turns 1 and 2 were not re-executed\. Journal shows continuous timeline with one gap closed/);
    // The restart's diff names the run by its natural key (R-...), running before and finished after.
    const runId = observed(events, 'run_id');
    const folder = result.evidenceDirs.at(-1)!;
    expect((await addedRows(folder)).filter((row) => row.id === runId)).toEqual([expect.objectContaining({ id: runId, status: 'finished' })]);
    // How long after the restart the Worker resumed, on the database's clock: the restart's moment
    // (observed) to the first call the journal holds after it, turn 3's write, read back here.
    const latency = /\(Worker pid \d+ killed by SIGKILL at turn 3 call 1 \(claim, completed\); resumed (\d+) ms after the restart\)\.$/.exec(result.evidence);
    expect(latency, result.evidence).not.toBeNull();
    const restartedAt = observed(events, 'restarted_at')!;
    const { rows } = await sql(
      `select c.turn_no, c.call_no, round(extract(epoch from c.started_at - '${restartedAt}'::timestamptz) * 1000)::int as after_restart
         from tool_calls c where c.run_id = '${runId}' and c.started_at >= '${restartedAt}'::timestamptz
        order by c.started_at limit 1`,
    );
    expect(rows[0]).toMatchObject({ turn_no: 3, call_no: 2 });
    const ms = Number(latency![1]);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(15_000);
    expect(Math.abs(ms - (rows[0] as { after_restart: number }).after_restart)).toBeLessThanOrEqual(1);
    // Every call journaled before the kill started before the restart.
    const { rows: early } = await sql(
      `select count(*)::int as n from tool_calls c where c.run_id = '${runId}' and c.started_at < '${restartedAt}'::timestamptz`,
    );
    expect(early).toEqual([{ n: 7 }]);
  });

  it('fails with its deliberate break: resume off redoes the turns in a new run', async () => {
    const result = await runOne(runJournalResumeDrill, db, { system, broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/ignored crashed run \w+ and began a new run \w+ at turn 1/);
  });

  it('fails when the journal cannot be written (INSERT on tool_calls revoked in the target), naming the refusal', async () => {
    await sql('revoke insert on tool_calls from worker_write');
    try {
      const events: RunnerEvent[] = [];
      const result = await runOne(runJournalResumeDrill, db, { system, events });
      expect(result.verdict).toBe('fail');
      // What the drill observed, structurally: the Worker's first call refused with 42501, and the
      // privilege the target took away, read from the catalog.
      const refused = observed(events, 'worker_call_failed');
      const missing = observed(events, 'journal_privileges_missing');
      expect(refused, 'the drill observed the refused call').toBeDefined();
      expect(missing, 'the drill observed the missing privilege').toBeDefined();
      expect(JSON.parse(refused!)).toMatchObject({
        turn: 1,
        call: 1,
        tool: 'claim',
        sqlstate: '42501',
        error: expect.stringMatching(/permission denied for table tool_calls/),
      });
      expect(JSON.parse(missing!)).toEqual(['INSERT on tool_calls']);
      expect(result.reason).toContain('failed with SQLSTATE 42501');
      expect(result.reason).toContain('lacks INSERT on tool_calls: the run journal cannot be written');
    } finally {
      await sql('grant insert on tool_calls to worker_write');
    }
  });
});

describe('concurrency_claim_test', () => {
  it('passes: A takes the first claimable transaction and holds it, B takes the next without waiting', async () => {
    const aliceBefore = await alicePending();
    const events: RunnerEvent[] = [];
    const result = await runOne(concurrencyClaimTest, db, { system, events });
    expect(result.verdict, result.reason).toBe('pass');
    // The race runs over two rows of the drill's own tenant; the target's own rows are never claimed.
    const [first, next] = JSON.parse(observed(events, 'pending') ?? '[]') as string[];
    expect(await alicePending()).toEqual(aliceBefore);
    expect(result.evidence).toMatch(
      new RegExp(
        `^Worker A claimed pending_transaction ${first}\\. Worker B skipped ${first} and claimed ${next}\\. No duplicate processing\\. No lock errors raised`,
      ),
    );
    // One name per Worker: Worker A is the process worker-a, which started first, held its row
    // (seen in pg_locks) before worker-b started, and wrote its own name into claimed_by.
    expect(result.evidence).toContain(` (Worker A is worker-a, Worker B worker-b; B locked its row `);
    expect(observed(events, 'worker-a holds its row')).toMatch(/^yes: session pid \d+ of the tool server holds Row(Share|Exclusive)Lock on pending_transactions for its claim; worker-b \(started beside it, waiting\) goes now$/);
    expect(observed(events, 'claim by worker-a')).toBe(`${first} (completed)`);
    expect(observed(events, 'claim by worker-b')).toBe(`${next} (completed)`);
    expect(JSON.parse(observed(events, 'claimed_by')!)).toEqual([`${first}: worker-a`, `${next}: worker-b`]);
    const { rows: runs } = await sql(`select worker, count(*)::int as n from runs where tenant_id = '${observed(events, 'tenant')}' group by worker order by worker`);
    expect(runs).toEqual([{ worker: 'worker-a', n: 1 }, { worker: 'worker-b', n: 1 }]);
    // The oracle's diff keeps the natural key: the row A took, its id visible, claimed_by worker-a.
    expect(result.evidenceDirs).toHaveLength(1);
    const added = await addedRows(result.evidenceDirs[0]!);
    expect(added.find((row) => row.id === first), JSON.stringify(added)).toMatchObject({ id: first, status: 'claimed', claimed_by: 'worker-a' });
    expect(added.find((row) => row.id === next), JSON.stringify(added)).toMatchObject({ id: next, status: 'claimed', claimed_by: 'worker-b' });
  });

  it("passes on a busy target: another application's lock wait in the same database is not the claim's", async () => {
    await sql('create table unrelated_jobs (id int primary key)');
    await sql('insert into unrelated_jobs values (1)');
    const holder = await connect(db.url, { applicationName: 'someone-else' });
    const waiter = await connect(db.url, { applicationName: 'someone-else' });
    try {
      await holder.query('begin');
      await holder.query('update unrelated_jobs set id = id where id = 1');
      const waiting = waiter.query('update unrelated_jobs set id = id where id = 1').catch(() => undefined);
      await waitFor(
        "the other application's lock wait",
        async () => {
          const { rows } = await sql(
            `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and application_name = 'someone-else'`,
          );
          return rows[0]?.n === 1;
        },
        { timeoutMs: 10_000 },
      );
      const events: RunnerEvent[] = [];
      const result = await runOne(concurrencyClaimTest, db, { system, events });
      expect(result.verdict, result.reason).toBe('pass');
      expect(Number(observed(events, 'lock_waits_seen'))).toBe(0);
      await holder.query('rollback');
      await waiting;
    } finally {
      await holder.end().catch(() => {});
      await waiter.end().catch(() => {});
      await sql('drop table if exists unrelated_jobs');
    }
  });

  it('fails with its deliberate break: without SKIP LOCKED B waits for A', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(concurrencyClaimTest, db, { system, broken: true, events });
    expect(result.verdict).toBe('fail');
    // Postgres itself showed B waiting on A's row lock.
    expect(Number(observed(events, 'lock_waits_seen'))).toBeGreaterThan(0);
    expect(result.reason).toMatch(/B got its lock only after A released/);
  });

  it('fails when the claim policy no longer covers UPDATE (FOR UPDATE then sees no rows)', async () => {
    await sql('drop policy pending_transactions_tenant_isolation on pending_transactions');
    await sql(`create policy claims_read_only on pending_transactions for select using (tenant_id = nullif(current_setting('app.tenant_id', true), ''))`);
    try {
      const result = await runOne(concurrencyClaimTest, db, { system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/A claimed nothing/);
    } finally {
      await sql('drop policy claims_read_only on pending_transactions');
      await sql(
        `create policy pending_transactions_tenant_isolation on pending_transactions for all to public using (tenant_id = nullif(current_setting('app.tenant_id', true), '')) with check (tenant_id = nullif(current_setting('app.tenant_id', true), ''))`,
      );
    }
  });
});

describe("concurrency_claim_test's start: A first, B once the database shows A holding its row", () => {
  const tag = 'sor-drills-test-claimer';
  /** A drill context of just what the start uses; `aState` is what the supervisor says of worker-a. */
  async function startContext(aState: 'running' | 'exited') {
    const profile = await withPgClient(db.url, (client) => resolveProfile(client, referenceProfile, 'reference', false));
    const seen: Record<string, string> = {};
    const ctx = {
      url: db.url,
      profile,
      signal: undefined,
      operator: { request: async (_ask: unknown, perform: () => Promise<void>) => perform() },
      observe: (label: string, value: unknown) => void (seen[label] = String(value)),
      system: { supervisor: () => ({ get: () => ({ state: aState }) }) },
    } as unknown as DrillContext;
    return { ctx, seen };
  }

  it('starts B only once a session of the tool server holds a claimed row, and says which', async () => {
    const { ctx, seen } = await startContext('running');
    const claimer = await connect(db.url, { applicationName: tag });
    const started: string[] = [];
    try {
      const outcome = await startAThenB(ctx, {
        tag,
        toolServer: 'the test claimer',
        timeoutMs: 10_000,
        start: async (worker) => {
          started.push(worker.process);
          if (worker.process !== 'worker-a') return;
          // "A's claim": a row locked FOR UPDATE in an open transaction, on a session of the tag.
          await claimer.query('begin');
          await claimer.query(`select id from pending_transactions where tenant_id = 'alice' order by id limit 1 for update skip locked`);
        },
      });
      expect(outcome).toMatchObject({ bStarted: true, aHeld: true });
      expect(started).toEqual(['worker-a', 'worker-b']);
      expect(seen['worker-a holds its row']).toMatch(/^yes: session pid \d+ of the test claimer holds RowShareLock on pending_transactions/);
    } finally {
      await claimer.query('rollback').catch(() => {});
      await claimer.end();
    }
  });

  it('a session that only read the table holds no row: B is not started, and the drill could not determine', async () => {
    const { ctx, seen } = await startContext('running');
    const reader = await connect(db.url, { applicationName: tag });
    const started: string[] = [];
    try {
      const outcome = await startAThenB(ctx, {
        tag,
        toolServer: 'the test claimer',
        timeoutMs: 300,
        start: async (worker) => {
          started.push(worker.process);
          await reader.query('begin');
          await reader.query(`select id from pending_transactions where tenant_id = 'alice' order by id limit 1`);
        },
      });
      expect(outcome).toEqual({
        bStarted: false,
        reason:
          "worker-a's claim held no row of pending_transactions within 0.3 s (no session of the test claimer held a lock on it), so worker-b was not started: there was no race to look at",
      });
      expect(started).toEqual(['worker-a']);
      expect(seen['worker-a holds its row']).toBe(outcome.bStarted ? undefined : outcome.reason);
    } finally {
      await reader.query('rollback').catch(() => {});
      await reader.end();
    }
  });

  it('an A that ended before any row lock was seen does not stop B: the claims are the verdict\u2019s to read', async () => {
    const { ctx } = await startContext('exited');
    const started: string[] = [];
    const outcome = await startAThenB(ctx, { tag, toolServer: 'the test claimer', timeoutMs: 10_000, start: async (worker) => void started.push(worker.process) });
    expect(outcome).toMatchObject({ bStarted: true, aHeld: false });
    expect(started).toEqual(['worker-a', 'worker-b']);
  });
});

describe('concurrency_claim_test verdict, on claims the reference never shows', () => {
  const claim = (worker: string, transaction: string, times: { started: string; locked: string; released: string }) => ({
    worker,
    status: 'completed',
    error_code: null,
    error: null,
    transaction_id: transaction,
    started_at: times.started,
    finished_at: times.released,
    locked_at: times.locked,
    released_at: times.released,
  });
  const verdictOf = (claims: ReturnType<typeof claim>[], lockWaits = 0) =>
    concurrencyClaimTest.verdict({} as DrillContext, { pending: [], workerNames: ['a', 'b'], claims, lockWaits });

  it('could not determine when B asked only after A had released: the claims never overlapped', () => {
    const result = verdictOf([
      claim('a', 'T-1', { started: '2026-01-01T00:00:00.000Z', locked: '2026-01-01T00:00:00.010Z', released: '2026-01-01T00:00:01.000Z' }),
      claim('b', 'T-2', { started: '2026-01-01T00:00:01.200Z', locked: '2026-01-01T00:00:01.210Z', released: '2026-01-01T00:00:02.000Z' }),
    ]);
    expect(result.verdict).toBe('could-not-determine');
  });

  it('fails when B asked while A held its row and got a lock only after A released it', () => {
    const result = verdictOf([
      claim('a', 'T-1', { started: '2026-01-01T00:00:00.000Z', locked: '2026-01-01T00:00:00.010Z', released: '2026-01-01T00:00:01.000Z' }),
      claim('b', 'T-2', { started: '2026-01-01T00:00:00.500Z', locked: '2026-01-01T00:00:01.010Z', released: '2026-01-01T00:00:02.000Z' }),
    ]);
    expect(result.verdict).toBe('fail');
  });

  it('could not determine when B locked before A, though B is started only once A holds its row', () => {
    const result = verdictOf([
      claim('a', 'T-2', { started: '2026-01-01T00:00:00.000Z', locked: '2026-01-01T00:00:00.600Z', released: '2026-01-01T00:00:01.000Z' }),
      claim('b', 'T-1', { started: '2026-01-01T00:00:00.100Z', locked: '2026-01-01T00:00:00.110Z', released: '2026-01-01T00:00:01.500Z' }),
    ]);
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toBe('could not determine: B locked T-1 before A locked T-2, though B was started only after A held its row');
  });

  it('passes when B locked its row while A still held its own', () => {
    const result = verdictOf([
      claim('a', 'T-1', { started: '2026-01-01T00:00:00.000Z', locked: '2026-01-01T00:00:00.010Z', released: '2026-01-01T00:00:01.000Z' }),
      claim('b', 'T-2', { started: '2026-01-01T00:00:00.500Z', locked: '2026-01-01T00:00:00.510Z', released: '2026-01-01T00:00:01.500Z' }),
    ]);
    expect(result.verdict).toBe('pass');
    // A is the first of the Worker names, whatever the claims say: here "a".
    expect(result.evidence).toMatch(/^Worker A claimed pending_transaction T-1\. Worker B skipped T-1 and claimed T-2\. .* \(Worker A is a, Worker B b; B locked its row 10 ms after asking, while A held T-1; 0 lock waits seen\)\.$/);
  });
});

describe('evidence fragments, built from what was observed', () => {
  it('the idempotency drill says what the second write answered', () => {
    const answer = (inserted: unknown) => ({ isError: false, text: '', value: { inserted } });
    expect([writeOutcome(answer(false)), writeOutcome(answer(true)), writeOutcome(undefined)]).toEqual(['a no-op', 'a new row', 'not reported']);
  });

  it('the resume drill says whether the completed turns are continuous', () => {
    expect(timeline([1, 2, 3, 4, 5], 5)).toBe('continuous timeline');
    expect(timeline([1, 2, 4], 5)).toBe('timeline missing turns 3 and 5');
  });

  it('the race drill counts duplicates and names the lock errors by SQLSTATE', () => {
    expect([duplicateProcessing(['T-1', 'T-2']), duplicateProcessing(['T-1', 'T-1'])]).toEqual([
      'No duplicate processing',
      '1 transaction processed twice',
    ]);
    expect([lockErrors([]), lockErrors(['55P03', '40P01'])]).toEqual(['No lock errors raised', 'Lock errors raised (55P03, 40P01)']);
  });
});
