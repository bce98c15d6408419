// The outbox relay and the email service as real processes: a blip (503, then a
// reset connection) leaves the row pending with its retry metadata and the retry
// dispatches it; a relay SIGKILLed between the send and its commit re-sends after
// a restart and the email service still counts one delivery for the key; without
// the key (the deliberate break) it counts two; and two relays over the same rows
// send each row once, the second skipping the row the first holds.
//
// A relay claims only the rows of the tenant it is started for: a due row of another
// tenant is never sent nor touched, and a relay started without a tenant refuses to run.
//
// Each test relays only rows of its own (keys with a fresh suffix, tenant alice): rows an
// earlier test left pending are parked first, and every relay a test starts is stopped after it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, queryRows, type TestDatabase } from '../helpers/db.js';
import { isAlive, Supervisor } from '../../src/reconciler/supervisor.js';
import { parseJsonLine } from '../../src/reconciler/json-lines.js';
import {
  createWorkerLogin,
  releaseHolds,
  startEmailService,
  startRelay,
  type EmailService,
  type RelayOptions,
  type WorkerLogin,
} from '../../src/reconciler/launch.js';
import { waitFor } from '../../src/util/wait.js';

let db: TestDatabase;
let login: WorkerLogin;
let logDir: string;
let sup: Supervisor;
let email: EmailService;
/** This test's dedup_key suffix: its rows and the email service's counts for them are its own. */
let suffix: string;
/** The relays this test started (stopped after it). */
const relays = new Set<string>();

const query = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => queryRows<T>(db.url, sql, params);

/** The one row a query returns. */
const one = async <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => (await query<T>(sql, params))[0]!;

const key = (label: string) => `relay:${label}:${suffix}`;

/** The tenant every relay of these tests is scoped to, unless a test says otherwise. */
const relayTenant = 'alice';

/** Queues one outbox row as the tool server would, and returns its id. */
async function enqueue(dedupKey: string, tenant = relayTenant, dueAgo = '0 seconds'): Promise<string> {
  const [row] = await query<{ id: string }>(
    `insert into outbox (tenant_id, dedup_key, recipient, subject, body, next_attempt_at)
     values ($2, $1, 'finance@' || $2 || '.example', 'Relay test', 'body', now() - $3::interval) returning id`,
    [dedupKey, tenant, dueAgo],
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

const relay = (options: Partial<RelayOptions> = {}) => {
  const name = options.processName ?? 'relay';
  relays.add(name);
  return startRelay(sup, {
    databaseUrl: login.url,
    tenant: relayTenant,
    emailUrl: email.url,
    pollMs: 25,
    backoffMs: 150,
    processName: name,
    ...options,
  });
};

/** A relay's JSON lines of one event, over all its starts. */
const relayEvents = (name: string, event: string) =>
  (sup.get(name)?.recentLines ?? []).map(parseJsonLine).filter((line) => line?.event === event);

beforeAll(async () => {
  db = await createTestDatabase();
  login = await createWorkerLogin(db.url);
  logDir = await mkdtemp(path.join(tmpdir(), 'sor-reconciler-relay-'));
  sup = new Supervisor({ logDir });
  email = await startEmailService(sup);
});

beforeEach(async () => {
  suffix = randomBytes(3).toString('hex');
  // Rows an earlier test (or the seed) left pending would be relayed first: park them.
  await query(`update outbox set status = 'failed' where status = 'pending'`);
});

afterEach(async () => {
  for (const name of relays) await sup.stop(name);
  relays.clear();
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
    const dedupKey = key('blip-503');
    const id = await enqueue(dedupKey);
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
    expect(report.by_dedup_key[dedupKey]).toEqual({ requests: 2, deliveries: 1 });
  });

  it('between the failure and the retry the row is pending with its retry metadata (reset connection)', async () => {
    await email.failNext(1, 'reset');
    await relay({ backoffMs: 60_000 });
    const id = await enqueue(key('blip-reset'));
    await sup.waitForEvent('relay', 'send_failed', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    const row = await outboxRow(id);
    expect(row).toMatchObject({ status: 'pending', attempts: 1, dispatched_at: null, last_error: expect.stringMatching(/send failed: /) });
    const { ahead } = await one<{ ahead: boolean }>(`select next_attempt_at > now() + interval '50 seconds' as ahead from outbox where id = $1`, [id]);
    expect(ahead).toBe(true);
  });

  it('a relay killed after the send and before its commit re-sends after restart: one delivery for the key', async () => {
    await relay({ pauseAfterSendMs: 30_000 });
    const dedupKey = key('kill-after-send');
    const id = await enqueue(dedupKey);
    await sup.waitForEvent('relay', 'sent_pausing', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    await sup.kill('relay');
    // The claiming transaction died with the relay: the row is still pending, untouched.
    expect(await outboxRow(id)).toMatchObject({ status: 'pending', attempts: 0, dispatched_at: null });

    await relay();
    await sup.waitForEvent('relay', 'dispatched', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    expect(await outboxRow(id)).toMatchObject({ status: 'dispatched', attempts: 1 });
    const report = await email.report();
    expect(report.by_dedup_key[dedupKey]).toEqual({ requests: 2, deliveries: 1 });
    expect(report.by_idempotency_key[dedupKey]).toMatchObject({ requests: 2, deliveries: 1 });
  });

  it('without the idempotency key (the deliberate break) the same re-send is a second delivery', async () => {
    await relay({ pauseAfterSendMs: 30_000, noKey: true });
    const dedupKey = key('no-key');
    const id = await enqueue(dedupKey);
    await sup.waitForEvent('relay', 'sent_pausing', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    await sup.kill('relay');
    await relay({ noKey: true });
    await sup.waitForEvent('relay', 'dispatched', { timeoutMs: 10_000, match: (line) => line.outbox_id === id });
    const report = await email.report();
    expect(report.by_dedup_key[dedupKey]).toEqual({ requests: 2, deliveries: 2 });
    expect(report.by_idempotency_key[dedupKey]).toBeUndefined();
  });
});

describe('tenant scope', () => {
  it("claims only its tenant's rows: bob's row, due first, is neither sent nor touched", async () => {
    // Bob's row is due an hour earlier: a relay claiming by due time alone takes it before alice's.
    const bobKey = key('other-tenant');
    const bobId = await enqueue(bobKey, 'bob', '1 hour');
    const aliceId = await enqueue(key('own-tenant'));
    const bobBefore = await outboxRow(bobId);
    await relay();
    const started = await sup.waitForEvent('relay', 'relay_started', { timeoutMs: 10_000 });
    expect(started.tenant).toBe(relayTenant);
    await sup.waitForEvent('relay', 'dispatched', { timeoutMs: 10_000, match: (line) => line.outbox_id === aliceId });
    await sup.stop('relay');
    const report = await email.report();
    expect({
      bobRow: await outboxRow(bobId),
      bobSends: report.by_dedup_key[bobKey]?.requests ?? 0,
      relayLinesAboutBob: (sup.get('relay')?.recentLines ?? []).map(parseJsonLine).filter((line) => line?.outbox_id === bobId),
    }).toEqual({ bobRow: bobBefore, bobSends: 0, relayLinesAboutBob: [] });
  });

  it('refuses to start without a tenant, claiming nothing', async () => {
    const id = await enqueue(key('no-tenant'));
    await expect(relay({ tenant: '' })).rejects.toThrow(/SOR_TENANT is not set/);
    expect(await outboxRow(id)).toMatchObject({ status: 'pending', attempts: 0, dispatched_at: null });
  });
});

describe('two relays at once', () => {
  const rows = 5;

  /** The test's rows dispatched so far, and relay sessions Postgres shows waiting on a lock. */
  async function progress(ids: string[]) {
    return one<{ dispatched: string[]; waiting: number }>(
      `select array(select id from outbox where id = any($1::text[]) and status = 'dispatched' order by id) as dispatched,
              (select count(*)::int from pg_stat_activity
                where datname = current_database() and application_name = 'sor-outbox-relay' and wait_event_type = 'Lock') as waiting`,
      [ids],
    );
  }

  it('over the same pending rows: B skips the row A holds and sends the rest, and every row is sent and dispatched once', async () => {
    const keys = Array.from({ length: rows }, (_, index) => key(`pair-${index + 1}`));
    const ids: string[] = [];
    for (const dedupKey of keys) ids.push(await enqueue(dedupKey));

    // A claims the first due row and holds it (locked, not yet sent) until it is released.
    await relay({ processName: 'relay-a', claimHoldMs: 60_000 });
    const held = await sup.waitForEvent('relay-a', 'claim_held', { timeoutMs: 10_000 });
    const heldId = String(held.outbox_id);
    expect(heldId).toBe(ids[0]);
    const others = ids.filter((id) => id !== heldId);

    // B, over the same rows while A holds its claim: with SKIP LOCKED it sends every other
    // row; a claim that waits for locked rows would show B waiting on A's lock instead.
    await relay({ processName: 'relay-b' });
    const whileHeld = await waitFor(
      'relay B to send the rows A does not hold, or to wait on a lock',
      async () => {
        const now = await progress(ids);
        return (now.waiting > 0 || others.every((id) => now.dispatched.includes(id))) && now;
      },
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    // Soft: the counts after A's release are checked too, whatever happened while it held.
    expect.soft({ dispatchedWhileAHeld: whileHeld.dispatched, relaysWaitingOnALock: whileHeld.waiting }).toEqual({
      dispatchedWhileAHeld: others,
      relaysWaitingOnALock: 0,
    });
    expect.soft(await outboxRow(heldId)).toMatchObject({ status: 'pending', attempts: 0 });
    expect(relayEvents('relay-a', 'claim_hold_ended')).toEqual([]);

    // Let A go: it sends its row. Then A stops (a later claim of A's would be held again)
    // and B relays whatever is left; what is still pending then, the assertion below names.
    expect(await releaseHolds(sup, 'relay-a')).toBe(1);
    await sup.waitForEvent('relay-a', 'dispatched', { timeoutMs: 10_000, match: (line) => line.outbox_id === heldId });
    await sup.stop('relay-a');
    await waitFor('every row to be dispatched', async () => (await progress(ids)).dispatched.length === ids.length, {
      timeoutMs: 10_000,
    }).catch(() => undefined);
    await sup.stop('relay-b');

    // One send per row (the email service's own counts), each row dispatched once, by one relay.
    const report = await email.report();
    const dispatchedBy = (name: string) => relayEvents(name, 'dispatched').map((line) => String(line!.outbox_id)).sort();
    expect({
      sends: Object.fromEntries(keys.map((dedupKey) => [dedupKey, report.by_idempotency_key[dedupKey]?.requests ?? 0])),
      deliveries: Object.fromEntries(keys.map((dedupKey) => [dedupKey, report.by_dedup_key[dedupKey]?.deliveries ?? 0])),
      rows: await query(`select id, status, attempts from outbox where id = any($1::text[]) order by id`, [ids]),
      dispatchedBy: { a: dispatchedBy('relay-a'), b: dispatchedBy('relay-b') },
    }).toEqual({
      sends: Object.fromEntries(keys.map((dedupKey) => [dedupKey, 1])),
      deliveries: Object.fromEntries(keys.map((dedupKey) => [dedupKey, 1])),
      rows: ids.map((id) => ({ id, status: 'dispatched', attempts: 1 })),
      dispatchedBy: { a: [heldId], b: others },
    });
  });
});
