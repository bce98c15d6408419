// The append-only drill when a statement ends in a SQLSTATE that is neither the
// grant's 42501 nor the trigger's P0001: the statement was stopped before either
// layer answered, so the drill could not look. That is could-not-determine naming
// the SQLSTATE and what to do, never a fail blaming the habit, and never a pass.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOne } from '../helpers/drills.js';
import { appendOnlyEventTest, lockTimeout } from '../../src/drills/append-only-event-test.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { delay } from '../../src/util/wait.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.dispose();
});

const sql = (text: string) => withPgClient(db.url, (client) => client.query(text));

/** The value each observation of the run recorded, by label. */
function observations(events: RunnerEvent[]): Map<string, { value: string; ok?: boolean }> {
  const seen = new Map<string, { value: string; ok?: boolean }>();
  for (const event of events) if (event.type === 'observation') seen.set(event.label, { value: event.value, ok: event.ok });
  return seen;
}

/** The SQLSTATE an attempt observation recorded (undefined when the statement was not refused). */
function codeOf(events: RunnerEvent[], label: string): string | undefined {
  const observation = observations(events).get(label);
  if (!observation) throw new Error(`no observation ${label}`);
  return (JSON.parse(observation.value) as { code?: string }).code;
}

/**
 * Watches for a statement of this database waiting on a lock far longer than the
 * drill's own lock timeout, and then releases the lock. A drill without a lock
 * timeout would otherwise wait for ever; this way its statements go through, the
 * drill answers, and the test fails on the verdict instead of hanging.
 */
async function releaseWhenStuck(finished: () => boolean, release: () => Promise<void>): Promise<void> {
  await withPgClient(db.url, async (watcher) => {
    while (!finished()) {
      const { rows } = await watcher.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and now() - query_start > interval '10 seconds'`,
      );
      if ((rows[0]?.n ?? 0) > 0) {
        await release();
        return;
      }
      await delay(100);
    }
  });
}

describe('append_only_event_test on SQLSTATEs that are neither layer', () => {
  it('a lock held by another session: the statements time out with 55P03 and the drill could not determine', async () => {
    const events: RunnerEvent[] = [];
    let releasedEarly = false;
    const before = await sql(`select md5(string_agg(id::text || ':' || xmin::text, ',' order by id)) as h from agent_events`);
    const versionsBefore = before.rows[0].h;
    // SHARE conflicts with the ROW EXCLUSIVE lock UPDATE and DELETE take while they are
    // parsed, and with TRUNCATE's ACCESS EXCLUSIVE, but not with the plain reads of the
    // drill's other steps and of the oracle's snapshots.
    const result = await withPgClient(db.url, async (holder) => {
      await holder.query('begin');
      await holder.query('lock table agent_events in share mode');
      let released = false;
      const release = async () => {
        if (released) return;
        released = true;
        await holder.query('rollback');
      };
      let finished = false;
      const watching = releaseWhenStuck(
        () => finished,
        async () => {
          releasedEarly = true;
          await release();
        },
      );
      try {
        return await runOne(appendOnlyEventTest, db, { events });
      } finally {
        finished = true;
        await watching;
        await release();
      }
    });
    expect(result.verdict, result.reason).toBe('could-not-determine');
    // No statement of the drill waited on the lock past its own timeout.
    expect(releasedEarly).toBe(false);
    expect(result.reason).toMatch(/^could not determine: /);
    expect(result.reason).toContain('55P03');
    expect(result.reason).toContain('another session holds a lock on agent_events');
    // The statements that waited: both of the owner's row statements and its TRUNCATE, and
    // the Worker's UPDATE and DELETE (their lock is taken before privileges are checked).
    expect(codeOf(events, 'worker_update')).toBe('55P03');
    expect(codeOf(events, 'worker_delete')).toBe('55P03');
    expect(codeOf(events, 'owner_update')).toBe('55P03');
    expect(codeOf(events, 'owner_truncate')).toBe('55P03');
    // TRUNCATE checks the privilege before it asks for its lock: the grant still answered.
    expect(codeOf(events, 'worker_truncate')).toBe('42501');
    // Each attempt ran under the drill's own lock timeout, so it could not hang.
    const statements = events.flatMap((event) => (event.type === 'sql' ? [event.sql] : []));
    expect(statements.filter((text) => text === `set local lock_timeout = '${lockTimeout}'`)).toHaveLength(6);
    // Nothing was changed, and the drill passes again once the lock is gone.
    const { rows } = await sql(`select md5(string_agg(id::text || ':' || xmin::text, ',' order by id)) as h from agent_events`);
    expect(rows[0].h).toBe(versionsBefore);
    const again = await runOne(appendOnlyEventTest, db);
    expect(again.verdict, again.reason).toBe('pass');
  });

  it('a serialization failure (40001) raised before the trigger answers is could-not-determine, not a refusal', async () => {
    // A trigger that fires first (triggers fire in name order) and fails the owner's
    // UPDATE with 40001, as a conflicting serializable transaction would.
    await sql(`create function sor_test_conflict() returns trigger language plpgsql as $$
                 begin raise exception 'could not serialize access' using errcode = '40001'; end $$`);
    await sql(`create trigger a_sor_test_conflict before update on agent_events for each row execute function sor_test_conflict()`);
    try {
      const events: RunnerEvent[] = [];
      const result = await runOne(appendOnlyEventTest, db, { events });
      expect(result.verdict, result.reason).toBe('could-not-determine');
      expect(result.reason).toContain('UPDATE as owner reconciler_owner failed with 40001');
      expect(result.reason).toContain('serialization failure');
      expect(codeOf(events, 'owner_update')).toBe('40001');
      // The other statements were answered by their layers as usual.
      expect(codeOf(events, 'worker_update')).toBe('42501');
      expect(codeOf(events, 'owner_delete')).toBe('P0001');
      expect(observations(events).get('owner_update')?.ok).toBe(false);
    } finally {
      await sql('drop trigger a_sor_test_conflict on agent_events');
      await sql('drop function sor_test_conflict()');
    }
  });

  it('a proven failure outweighs a statement that could not be looked at: still fail', async () => {
    // The owner's UPDATE ends in 40001, and the Worker role may UPDATE: the grant is gone,
    // which the Worker's UPDATE proves (the trigger answered it instead of the grant).
    await sql(`create function sor_test_conflict() returns trigger language plpgsql as $$
                 begin raise exception 'could not serialize access' using errcode = '40001'; end $$`);
    await sql(`create trigger a_sor_test_conflict before delete on agent_events for each row execute function sor_test_conflict()`);
    await sql('grant update on agent_events to worker_write');
    try {
      const result = await runOne(appendOnlyEventTest, db);
      expect(result.verdict).toBe('fail');
      expect(result.reason).toContain(`as worker_write: UPDATE refused by the trigger (P0001)`);
    } finally {
      await sql('revoke update on agent_events from worker_write');
      await sql('drop trigger a_sor_test_conflict on agent_events');
      await sql('drop function sor_test_conflict()');
    }
  });
});
