// Drill 5, outbox_relay_retry_test, on the operator's own relay: examples/worker-side's
// relay.mjs against fixtures/other-reconciler, started from the example's profile
// (processes.relay). Green as written, with the evidence naming their relay; red with
// the example's dispatch-before-send bug (the row marked sent before the send: after the
// blip it is not pending, no retry comes, the email is never delivered). Every process
// the drill started is gone when it ends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { leftRunning, runOne, testSystem, type TestSystem } from '../helpers/drills.js';
import { dropOtherRoles, exampleProfile, installOtherReconciler, otherRoles, resolveExample } from '../helpers/other-reconciler.js';
import { outboxRelayRetryTest } from '../../src/drills/outbox-relay-retry-test/index.js';
import { withPgClient } from '../../src/postgres/pg.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { isAlive } from '../../src/reconciler/supervisor.js';

const roles = otherRoles();
let db: TestDatabase;
let system: TestSystem;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await installOtherReconciler(db.url, roles);
  system = await testSystem(db, await exampleProfile(roles));
});

afterAll(async () => {
  const pids = system?.supervisor().startedPids() ?? [];
  await system?.dispose();
  await db?.dispose();
  if (db) await dropOtherRoles(db.adminUrl, roles);
  expect(pids.filter(isAlive)).toEqual([]);
});

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

/** The drill's own outbox_messages row, read back after the run. */
async function drillRow(events: RunnerEvent[]) {
  const dedupKey = observed(events, 'dedup_key');
  expect(dedupKey, 'the drill observed its dedup_key').toBeDefined();
  const { rows } = await withPgClient(db.url, (client) =>
    client.query(`select id::text, status, attempt_count, last_error, sent_at from outbox_messages where dedup_key = $1`, [dedupKey]),
  );
  return rows[0] as { id: string; status: string; attempt_count: number; last_error: string | null; sent_at: Date | null };
}

/** Every process the drill started has ended (its pid no longer runs), but the session's shared tool server. */
function nothingLeftRunning(): void {
  expect(leftRunning(system)).toEqual([]);
  const shared = system.sharedPid();
  expect(system.supervisor().startedPids().filter((pid) => pid !== shared && isAlive(pid))).toEqual([]);
}

/** The relay the supervisor ran was the example's (its relay_started line says which bug it ran with). */
function relayStarts(): Array<Record<string, unknown>> {
  return (system.supervisor().get('relay')?.recentLines ?? []).flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      return parsed.event === 'relay_started' ? [parsed] : [];
    } catch {
      return [];
    }
  });
}

describe("outbox_relay_retry_test on the operator's relay", () => {
  it("passes on examples/worker-side's relay.mjs, naming it: blip, retry held, SIGKILL, restart, one delivery", async () => {
    const profile = await resolveExample(db.url, await exampleProfile(roles));
    const events: RunnerEvent[] = [];
    const result = await runOne(outboxRelayRetryTest, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    const row = await drillRow(events);
    expect(row).toMatchObject({ status: 'sent', attempt_count: 2 });
    expect(row.sent_at).not.toBeNull();
    const pid = /^pid (\d+) by SIGKILL$/.exec(observed(events, 'relay_killed') ?? '')?.[1];
    expect(pid, observed(events, 'relay_killed')).toBeDefined();
    expect(observed(events, 'relay_restarted')).toMatch(/^pid \d+$/);
    expect(observed(events, 'relay_restarted')).not.toBe(`pid ${pid}`);
    expect(observed(events, 'relay_sessions')).toBe('no session with application_name sor-drills-relay left');
    expect(result.evidence).toBe(
      "The operator's relay `node relay.mjs`: the stand-in failed its first send; the blip left " +
        `${row.id} pending with attempt_count 1, last_error and available_at set; the stand-in held its answer to the retry ` +
        `and the relay was killed (pid ${pid} by SIGKILL, its process group) before its commit, the row still read pending, ` +
        `and the restarted relay re-sent it once. Outbox row ${row.id} ended in sent (attempt_count 2). ` +
        'Email stand-in received exactly one delivery for this dedup_key (3 requests).',
    );
    // Both starts were the example's relay, fixed.
    const starts = relayStarts();
    expect(starts).toHaveLength(2);
    for (const start of starts) expect(start).toMatchObject({ bug: null, user_id: observed(events, 'tenant') });
    nothingLeftRunning();
  });

  it('fails on the example relay with EXAMPLE_BUG=dispatch-before-send: not pending after the blip, no retry, never delivered', async () => {
    const profile = await resolveExample(db.url, await exampleProfile(roles, { bug: 'dispatch-before-send', in: 'relay' }));
    const events: RunnerEvent[] = [];
    const result = await runOne(outboxRelayRetryTest, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('fail');
    const row = await drillRow(events);
    expect(row).toMatchObject({ status: 'sent', attempt_count: 1, last_error: null });
    expect(result.reason).toMatch(/^The operator's relay `node relay\.mjs`: /);
    expect(result.reason).toContain(`after the failed first send ${row.id} read status sent, not pending: it was marked dispatched though no send had succeeded`);
    expect(result.reason).toContain(`after the failed first send ${row.id} had no last_error`);
    expect(result.reason).toContain('no retry reached the stand-in');
    expect(result.reason).toMatch(/the email stand-in made 0 deliveries for dedup_key \S+ in 1 requests .*: the email was never delivered/);
    // The relay ran with the bug, and was never killed or restarted: nothing was due again.
    expect(relayStarts().at(-1)).toMatchObject({ bug: 'dispatch-before-send' });
    expect(observed(events, 'relay_killed')).toBeUndefined();
    nothingLeftRunning();
  });
});
