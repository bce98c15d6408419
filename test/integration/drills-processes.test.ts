// The drills that need the Reconciler's processes, against real processes and a
// real Postgres: green on the reference system, red with their deliberate break,
// red when the target itself lacks the mechanism.
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { runOne, useDrillTarget, type TestSystem } from '../helpers/drills.js';
import { idempotencyRetryTest } from '../../src/drills/idempotency-retry-test.js';
import { runJournalResumeDrill } from '../../src/drills/run-journal-resume-drill.js';
import { concurrencyClaimTest } from '../../src/drills/concurrency-claim-test.js';
import { withPgClient } from '../../src/postgres/pg.js';

let db: TestDatabase;
let system: TestSystem;
useDrillTarget((target) => ({ db, system } = target));

const sql = (text: string) => withPgClient(db.url, (client) => client.query(text));

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
    const result = await runOne(runJournalResumeDrill, db, { system });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(/^Run resumed from turn 3 of 5\. Turns 1 and 2 were not re-executed\. Journal shows continuous timeline with one gap closed/);
  });

  it('fails with its deliberate break: resume off redoes the turns in a new run', async () => {
    const result = await runOne(runJournalResumeDrill, db, { system, broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/ignored crashed run \w+ and began a new run \w+ at turn 1/);
  });

  it('fails when the journal cannot be written (INSERT on tool_calls revoked in the target)', async () => {
    await sql('revoke insert on tool_calls from worker_write');
    try {
      const result = await runOne(runJournalResumeDrill, db, { system });
      expect(result.verdict).toBe('fail');
    } finally {
      await sql('grant insert on tool_calls to worker_write');
    }
  });
});

describe('concurrency_claim_test', () => {
  it('passes: A takes T-101 and holds it, B takes T-102 without waiting', async () => {
    const result = await runOne(concurrencyClaimTest, db, { system });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(/^Worker A claimed pending_transaction T-101\. Worker B skipped T-101 and claimed T-102\. No duplicate processing\. No lock errors raised/);
  });

  it('fails with its deliberate break: without SKIP LOCKED B waits for A', async () => {
    const result = await runOne(concurrencyClaimTest, db, { system, broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/B got its lock only after A released|waiting on a lock/);
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
