// The idempotency, race and outbox drills through a profile: on the other Reconciler
// (fixtures/other-reconciler: users, uuid keys, app.current_user_id, numeric amounts,
// outbox_messages with a jsonb payload, tool_calls reached through turns) each passes
// through the fixture's profile, and each fails when its mechanism is taken out of
// that database (and the mechanism is put back afterwards).
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { addedRows } from '../helpers/diff-rows.js';
import { leftRunning, runOne, type TestSystem } from '../helpers/drills.js';
import { useOtherTarget, type OtherRoles } from '../helpers/other-reconciler.js';
import { idempotencyRetryTest } from '../../src/drills/idempotency-retry-test.js';
import { concurrencyClaimTest } from '../../src/drills/concurrency-claim-test/index.js';
import { outboxRelayRetryTest } from '../../src/drills/outbox-relay-retry-test/index.js';
import { ident, withPgClient } from '../../src/postgres/pg.js';
import type { ProfileInUse } from '../../src/postgres/profile/index.js';
import type { RunnerEvent } from '../../src/drills/types.js';

let db: TestDatabase;
let system: TestSystem;
let profile: ProfileInUse;
let roles: OtherRoles;
useOtherTarget((target) => ({ db, system, profile, roles } = target));

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The seed's pending transactions as they stand: no drill may claim or mark them. */
async function seedPending(): Promise<unknown[]> {
  const { rows } = await sql(
    `select id, status, claimed_by, lease_expires_at, done_at from pending_transactions where external_ref like 'BANK-%' order by id`,
  );
  return rows;
}

describe('idempotency_retry_test through the other profile', () => {
  it('passes: one expenses row (numeric amount) for two writes with the same key, the second a no-op', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(idempotencyRetryTest, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(
      'Two invocations with the same idempotency key produced one expenses row. Second insert was a no-op. Row count delta: +1.',
    );
    expect(result.evidenceDirs).toHaveLength(1);
    const tenant = observed(events, 'tenant')!;
    expect(tenant).toMatch(uuid);
    // The drill's tenant is a users row, made with the fixture's required email.
    const { rows: users } = await sql(`select email, display_name from users where id = $1`, [tenant]);
    expect(users).toEqual([{ email: expect.stringMatching(/@sor-drills\.invalid$/), display_name: 'Drill tenant for idempotency_retry_test' }]);
    const { rows } = await sql(`select idempotency_key, amount::text as amount from expenses where user_id = $1`, [tenant]);
    expect(rows).toEqual([{ idempotency_key: `${tenant}:retry-1`, amount: '42.00' }]);
  });

  it('fails while the unique key expenses_idempotency_key_key is dropped from the target, and the key is put back', async () => {
    await sql('alter table expenses drop constraint expenses_idempotency_key_key');
    try {
      const result = await runOne(idempotencyRetryTest, db, { system, profile });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/42P10|no unique or exclusion constraint/);
      const { rows } = await sql(`select 1 from pg_constraint where conname = 'expenses_idempotency_key_key'`);
      expect(rows).toHaveLength(0);
    } finally {
      await sql('alter table expenses add constraint expenses_idempotency_key_key unique (idempotency_key)');
    }
  });
});

describe('concurrency_claim_test through the other profile', () => {
  it('passes: A takes one of the drill tenant\u2019s rows and holds it, B takes the other without waiting', async () => {
    const before = await seedPending();
    const events: RunnerEvent[] = [];
    const result = await runOne(concurrencyClaimTest, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    const pending = JSON.parse(observed(events, 'pending') ?? '[]') as string[];
    expect(pending).toHaveLength(2);
    for (const id of pending) expect(id).toMatch(uuid);
    const match = /^Worker A claimed pending_transaction (\S+)\. Worker B skipped \1 and claimed (\S+)\. No duplicate processing\. No lock errors raised/.exec(
      result.evidence,
    );
    expect(match, result.evidence).not.toBeNull();
    expect([match![1], match![2]].sort()).toEqual([...pending].sort());
    expect(Number(observed(events, 'lock_waits_seen'))).toBe(0);
    expect(await seedPending()).toEqual(before);
    // One name per Worker, here too: A is worker-a, and worker-a is what its row's claimed_by says.
    expect(result.evidence).toContain(' (Worker A is worker-a, Worker B worker-b; ');
    const { rows: claimed } = await sql(`select id::text as id, claimed_by from pending_transactions where id = any($1::uuid[]) order by id`, [[match![1], match![2]]]);
    expect(Object.fromEntries(claimed.map((row) => [row.id, row.claimed_by]))).toEqual({ [match![1]!]: 'worker-a', [match![2]!]: 'worker-b' });
    // The uuid id is a surrogate key: it stays volatile in the diff, where external_ref names the row.
    const rows = (await addedRows(result.evidenceDirs[0]!)).filter((row) => 'external_ref' in row);
    expect(rows.map((row) => row.claimed_by).sort()).toEqual(['worker-a', 'worker-b']);
    for (const row of rows) expect(row).not.toHaveProperty('id');
  });

  it('fails when the claim policy no longer covers UPDATE (FOR UPDATE then sees no rows), and the policy is put back', async () => {
    const by = `user_id = nullif(current_setting('app.current_user_id', true), '')::uuid`;
    await sql('drop policy pending_transactions_by_user on pending_transactions');
    await sql(`create policy claims_read_only on pending_transactions for select using (${by})`);
    try {
      const result = await runOne(concurrencyClaimTest, db, { system, profile });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/A claimed nothing/);
    } finally {
      await sql('drop policy claims_read_only on pending_transactions');
      await sql(`create policy pending_transactions_by_user on pending_transactions using (${by}) with check (${by})`);
    }
  });
});

describe('outbox_relay_retry_test through the other profile', () => {
  /** The drill's own outbox_messages row, read back after the run. */
  async function drillRow(events: RunnerEvent[]) {
    const dedupKey = observed(events, 'dedup_key');
    expect(dedupKey, 'the drill observed its dedup_key').toBeDefined();
    const { rows } = await sql(
      `select id::text, status, attempt_count, last_error, sent_at, payload from outbox_messages where dedup_key = $1`,
      [dedupKey],
    );
    return { dedupKey: dedupKey!, row: rows[0] as { id: string; status: string; attempt_count: number; last_error: string | null; sent_at: Date | null; payload: Record<string, unknown> } };
  }

  it('passes: blip, retry, kill between send and commit, re-send; the row ends sent; one delivery', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(outboxRelayRetryTest, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    const { row } = await drillRow(events);
    expect(row).toMatchObject({ status: 'sent', attempt_count: 2, last_error: expect.stringMatching(/send failed: /) });
    expect(row.id).toMatch(uuid);
    expect(row.sent_at).not.toBeNull();
    expect(row.payload).toMatchObject({ subject: 'Expense recorded (outbox drill)' });
    const pid = /^pid (\d+) by SIGKILL$/.exec(observed(events, 'relay_killed') ?? '')?.[1];
    expect(pid).toBeDefined();
    expect(result.evidence).toBe(
      `Relay failed once, retried once, dispatched once: the blip left ${row.id} pending with attempt_count 1, last_error and ` +
        `available_at set; the relay was killed (pid ${pid} by SIGKILL) after the retry's send and before its commit, ` +
        'the row still read pending, and the restarted relay re-sent it once. ' +
        `Outbox row ${row.id} ended in sent (attempt_count 2). ` +
        'Email service received exactly one delivery for this dedup_key (3 requests).',
    );
    expect(leftRunning(system)).toEqual([]);
  });

  it('fails when the target revokes UPDATE on outbox_messages from the worker role, and the grant is put back', async () => {
    await sql(`revoke update on outbox_messages from ${ident(roles.worker_write)}`);
    try {
      const result = await runOne(outboxRelayRetryTest, db, { system, profile });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/^Start the relay; its first send hits a network blip: .*permission denied for table outbox_messages/);
    } finally {
      await sql(`grant update on outbox_messages to ${ident(roles.worker_write)}`);
    }
  });

  it('fails when the dedup key outbox_messages_dedup_key_key is dropped, and the key is put back', async () => {
    await sql('alter table outbox_messages drop constraint outbox_messages_dedup_key_key');
    try {
      const result = await runOne(outboxRelayRetryTest, db, { system, profile });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/^Queue an email through the tool server: the queue tool failed: .*(42P10|no unique or exclusion constraint)/);
    } finally {
      await sql('alter table outbox_messages add constraint outbox_messages_dedup_key_key unique (dedup_key)');
    }
  });
});
