// Drill 5, outbox_relay_retry_test, against real processes (tool server, relay,
// email service) and a real Postgres: green on the reference system, red with its
// deliberate break (no idempotency key: two deliveries), red when the target itself
// takes away what the relay needs, and the target is left as it was sabotaged. The
// relay claims only the drill tenant's rows: a pending row of the target's own is
// neither sent nor marked.
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { addedRows, removedRows } from '../helpers/diff-rows.js';
import { leftRunning, runOne, useDrillTarget, type TestSystem } from '../helpers/drills.js';
import { outboxRelayRetryTest } from '../../src/drills/outbox-relay-retry-test/index.js';
import { withPgClient } from '../../src/postgres/pg.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import type { DrillSystem } from '../../src/drills/processes.js';
import { jsonLines, type EmailReport, type EmailService } from '../../src/reconciler/launch.js';

let db: TestDatabase;
let system: TestSystem;
useDrillTarget((target) => ({ db, system } = target));

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

/** The relay's JSON lines (over all its starts in this file), of one event or all. */
const relayLines = (event?: string) => jsonLines(system.supervisor(), 'relay').filter((line) => !event || line.event === event);

/**
 * The system the drill runs on, except that the email service's report is read just
 * before the drill stops it: the receiving side's own count of what it was sent.
 */
function reportAtEmailStop(inner: TestSystem): { system: DrillSystem; report(): EmailReport | undefined } {
  let email: EmailService | undefined;
  let report: EmailReport | undefined;
  const system: DrillSystem = {
    ...inner,
    async emailService() {
      email = await inner.emailService();
      return email;
    },
    async stop(name) {
      if (email && name === email.name && inner.list().some((process) => process.name === name && process.state === 'running')) {
        report = await email.report();
      }
      await inner.stop(name);
    },
  };
  return { system, report: () => report };
}

/** The drill's own outbox row, read back after the run. */
async function drillRow(events: RunnerEvent[]) {
  const observed = events.find((event) => event.type === 'observation' && event.label === 'dedup_key');
  expect(observed, 'the drill observed its dedup_key').toBeDefined();
  const dedupKey = (observed as { value: string }).value;
  const { rows } = await sql(`select id, status, attempts, last_error, dispatched_at from outbox where dedup_key = $1`, [dedupKey]);
  return { dedupKey, row: rows[0] as { id: string; status: string; attempts: number; last_error: string | null; dispatched_at: Date | null } };
}

describe('outbox_relay_retry_test', () => {
  it('passes: blip, retry, kill between send and commit, re-send; one delivery; evidence from what was observed', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(outboxRelayRetryTest, db, { system, events });
    expect(result.verdict, result.reason).toBe('pass');
    const { row } = await drillRow(events);
    expect(row).toMatchObject({ status: 'dispatched', attempts: 2, last_error: expect.stringMatching(/send failed: /) });
    expect(row.dispatched_at).not.toBeNull();
    const killed = events.find((event) => event.type === 'observation' && event.label === 'relay_killed') as { value: string };
    const pid = /^pid (\d+) by SIGKILL$/.exec(killed.value)?.[1];
    expect(pid, killed.value).toBeDefined();
    expect(result.evidence).toBe(
      `Relay failed once, retried once, dispatched once: the blip left ${row.id} pending with attempts 1, last_error and ` +
        `next_attempt_at set; the relay was killed (pid ${pid} by SIGKILL) after the retry's send and before its commit, ` +
        'the row still read pending, and the restarted relay re-sent it once. ' +
        `Outbox row ${row.id} ended in dispatched (attempts 2). ` +
        'Email service received exactly one delivery for this dedup_key (3 requests).',
    );
    expect(row.id).toMatch(/^O-4\d\d$/);
    expect(result.evidenceDirs).toHaveLength(1);
    // The oracle's diff keeps the row's natural key (O-4xx): pending before, dispatched after, its id on both sides.
    const [folder] = result.evidenceDirs;
    expect((await removedRows(folder!)).filter((line) => line.id === row.id)).toEqual([expect.objectContaining({ id: row.id, status: 'pending' })]);
    expect((await addedRows(folder!)).filter((line) => line.id === row.id)).toEqual([expect.objectContaining({ id: row.id, status: 'dispatched', attempts: 2 })]);
    // The relay was killed, then a new relay process took over.
    const restarted = events.find((event) => event.type === 'observation' && event.label === 'relay_restarted') as { value: string };
    expect(restarted.value).toMatch(/^pid \d+$/);
    expect(restarted.value).not.toBe(`pid ${pid}`);
    expect(leftRunning(system)).toEqual([]);
  });

  it("leaves another tenant's pending, due outbox row untouched, and its email is never sent", async () => {
    // A row of the target's own, pending and due before the drill's: an unscoped relay claims it first.
    const { rows: inserted } = await sql(
      `insert into outbox (tenant_id, dedup_key, recipient, subject, body, next_attempt_at)
       values ('alice', 'staging-pending:' || gen_random_uuid(), 'a@alice.example', 'A real pending email', 'body', now() - interval '1 hour')
       returning id, dedup_key`,
    );
    const alice = inserted[0] as { id: string; dedup_key: string };
    const aliceRow = async () =>
      (
        await sql(
          `select status, attempts, last_error, next_attempt_at::text, dispatched_at::text from outbox where id = $1`,
          [alice.id],
        )
      ).rows[0];
    try {
      const before = await aliceRow();
      expect(before).toMatchObject({ status: 'pending', attempts: 0, dispatched_at: null });
      const watched = reportAtEmailStop(system);
      const relayStartsBefore = relayLines('relay_started').length;
      const events: RunnerEvent[] = [];
      const result = await runOne(outboxRelayRetryTest, db, { system: watched.system, events });
      const tenant = (events.find((event) => event.type === 'observation' && event.label === 'tenant') as { value: string }).value;
      const report = watched.report();
      // One comparison, so a relay that touched the row shows the row, the sends and the verdict together.
      expect(
        {
          verdict: result.verdict,
          aliceRow: await aliceRow(),
          emailRequestsForAlicesKey: report?.by_dedup_key[alice.dedup_key]?.requests ?? 0,
          relayLinesAboutAlicesRow: relayLines().filter((line) => line.outbox_id === alice.id),
          relayStartsScopedTo: relayLines('relay_started').slice(relayStartsBefore).map((line) => line.tenant),
        },
        result.reason,
      ).toEqual({
        verdict: 'pass',
        aliceRow: before,
        emailRequestsForAlicesKey: 0,
        relayLinesAboutAlicesRow: [],
        relayStartsScopedTo: [tenant, tenant],
      });
      expect(report, 'the email service was stopped through the system, its report read first').toBeDefined();
    } finally {
      await sql(`delete from outbox where id = $1`, [alice.id]);
    }
  });

  it('fails with its deliberate break (no idempotency key): two deliveries for the dedup_key', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(outboxRelayRetryTest, db, { system, broken: true, events });
    expect(result.verdict).toBe('fail');
    const { dedupKey, row } = await drillRow(events);
    expect(result.reason).toContain(
      `email service received 2 deliveries for dedup_key ${dedupKey} in 3 requests (0 of them carried the dedup_key as the Idempotency-Key)`,
    );
    expect(result.reason).toMatch(/the re-send after the kill was delivered again/);
    // The break is in the relay, not the table: the row still ends dispatched.
    expect(row.status).toBe('dispatched');
  });

  it('fails when the target revokes UPDATE on outbox from the worker role (no retry metadata can be recorded), and leaves it revoked', async () => {
    await sql('revoke update on outbox from worker_write');
    try {
      const result = await runOne(outboxRelayRetryTest, db, { system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/^Start the relay; its first send hits a network blip: .*permission denied for table outbox/);
      const { rows } = await sql(`select has_table_privilege('worker_write', 'outbox', 'UPDATE') as can`);
      expect(rows[0].can).toBe(false);
    } finally {
      await sql('grant update on outbox to worker_write');
    }
  });

  it('fails when the target drops the unique key on dedup_key, and leaves it dropped', async () => {
    await sql('alter table outbox drop constraint outbox_dedup_key');
    try {
      const result = await runOne(outboxRelayRetryTest, db, { system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/^Queue an email through the tool server: the queue tool failed: .*(42P10|no unique or exclusion constraint)/);
      const { rows } = await sql(`select 1 from pg_constraint where conname = 'outbox_dedup_key'`);
      expect(rows).toHaveLength(0);
    } finally {
      await sql('alter table outbox add constraint outbox_dedup_key unique (dedup_key)');
    }
  });
});
