// The outbox relay and the email service as real processes: a blip (503, then a
// reset connection) leaves the row pending with its retry metadata and the retry
// dispatches it; a relay SIGKILLed between the send and its commit re-sends after
// a restart and the email service still counts one delivery for the key; without
// the key (the deliberate break) it counts two.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, queryRows, type TestDatabase } from '../helpers/db.js';
import { isAlive, Supervisor } from '../../src/reconciler/supervisor.js';
import {
  createWorkerLogin,
  startEmailService,
  startRelay,
  type EmailService,
  type RelayOptions,
  type WorkerLogin,
} from '../../src/reconciler/launch.js';

let db: TestDatabase;
let login: WorkerLogin;
let logDir: string;
let sup: Supervisor;
let email: EmailService;

const query = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => queryRows<T>(db.url, sql, params);

/** The one row a query returns. */
const one = async <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => (await query<T>(sql, params))[0]!;

/** Queues one outbox row as the tool server would, and returns its id. */
async function enqueue(dedupKey: string): Promise<string> {
  const [row] = await query<{ id: string }>(
    `insert into outbox (tenant_id, dedup_key, recipient, subject, body)
     values ('alice', $1, 'finance@alice.example', 'Relay test', 'body') returning id`,
    [dedupKey],
  );
  return row!.id;
}

const outboxRow = async (id: string) =>
  (
    await query<{ status: string; attempts: number; last_error: string | null; next_attempt_at: Date; dispatched_at: Date | null }>(
      `select status, attempts, last_error, next_attempt_at, dispatched_at from outbox where id = $1`,
      [id],
    )
  )[0]!;

const relay = (options: Partial<RelayOptions> = {}) =>
  startRelay(sup, { databaseUrl: login.url, emailUrl: email.url, pollMs: 25, backoffMs: 150, ...options });

beforeAll(async () => {
  db = await createTestDatabase();
  login = await createWorkerLogin(db.url);
  logDir = await mkdtemp(path.join(tmpdir(), 'sor-reconciler-relay-'));
  sup = new Supervisor({ logDir });
  email = await startEmailService(sup);
});

afterAll(async () => {
  const pids = sup?.startedPids() ?? [];
  await sup?.close();
  try {
    expect(pids.filter(isAlive)).toEqual([]);
    await login?.drop();
    await db?.dispose();
  } finally {
    if (logDir) await rm(logDir, { recursive: true, force: true });
  }
});

describe('outbox relay', () => {
  it('a failed first send leaves attempts 1, last_error and next_attempt_at; the retry dispatches once', async () => {
    await email.failNext(1, 'status503');
    await relay();
    const id = await enqueue('relay:blip-503');
    const failed = await sup.waitForEvent('relay', 'send_failed', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    expect(failed).toMatchObject({ attempts: 1, error: expect.stringMatching(/HTTP 503/) });
    const dispatched = await sup.waitForEvent('relay', 'dispatched', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    expect(dispatched).toMatchObject({ attempts: 2 });

    const row = await outboxRow(id);
    expect(row).toMatchObject({ status: 'dispatched', attempts: 2, last_error: expect.stringMatching(/HTTP 503/) });
    // The retry waited for next_attempt_at (backoff 150 ms after the failure).
    expect(row.next_attempt_at.toISOString()).toBe(failed.next_attempt_at);
    expect(row.dispatched_at!.getTime()).toBeGreaterThanOrEqual(row.next_attempt_at.getTime());
    const report = await email.report();
    expect(report.by_dedup_key['relay:blip-503']).toEqual({ requests: 2, deliveries: 1 });
  });

  it('between the failure and the retry the row is pending with its retry metadata (reset connection)', async () => {
    await sup.stop('relay');
    await email.failNext(1, 'reset');
    await relay({ backoffMs: 60_000 });
    const id = await enqueue('relay:blip-reset');
    await sup.waitForEvent('relay', 'send_failed', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    const row = await outboxRow(id);
    expect(row).toMatchObject({ status: 'pending', attempts: 1, dispatched_at: null, last_error: expect.stringMatching(/fetch failed/) });
    const { ahead } = await one<{ ahead: boolean }>(`select next_attempt_at > now() + interval '50 seconds' as ahead from outbox where id = $1`, [id]);
    expect(ahead).toBe(true);
    await sup.stop('relay');
    // Let the next test's relay leave this row alone.
    await query(`update outbox set status = 'failed' where id = $1`, [id]);
  });

  it('a relay killed after the send and before its commit re-sends after restart: one delivery for the key', async () => {
    await relay({ pauseAfterSendMs: 30_000 });
    const id = await enqueue('relay:kill-after-send');
    await sup.waitForEvent('relay', 'sent_pausing', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    await sup.kill('relay');
    // The claiming transaction died with the relay: the row is still pending, untouched.
    expect(await outboxRow(id)).toMatchObject({ status: 'pending', attempts: 0, dispatched_at: null });

    await relay();
    await sup.waitForEvent('relay', 'dispatched', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    expect(await outboxRow(id)).toMatchObject({ status: 'dispatched', attempts: 1 });
    const report = await email.report();
    expect(report.by_dedup_key['relay:kill-after-send']).toEqual({ requests: 2, deliveries: 1 });
    expect(report.by_idempotency_key['relay:kill-after-send']).toMatchObject({ requests: 2, deliveries: 1 });
    await sup.stop('relay');
  });

  it('without the idempotency key (the deliberate break) the same re-send is a second delivery', async () => {
    await relay({ pauseAfterSendMs: 30_000, noKey: true });
    const id = await enqueue('relay:no-key');
    await sup.waitForEvent('relay', 'sent_pausing', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    await sup.kill('relay');
    await relay({ noKey: true });
    await sup.waitForEvent('relay', 'dispatched', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    const report = await email.report();
    expect(report.by_dedup_key['relay:no-key']).toEqual({ requests: 2, deliveries: 2 });
    expect(report.by_idempotency_key['relay:no-key']).toBeUndefined();
  });
});
