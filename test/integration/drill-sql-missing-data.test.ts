// A target with the reference names but without the rows a drill needs to look at
// (no event row to aim a change at, no run to replay) says nothing about a habit: each such drill is could-not-determine naming
// what is missing, never a fail. The same drills still fail when the mechanism is
// missing, in drills-sql.test.ts and drills-processes.test.ts.
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { runOne, useDrillTarget } from '../helpers/drills.js';
import { appendOnlyEventTest } from '../../src/drills/append-only-event-test.js';
import { withPgClient } from '../../src/postgres/pg.js';

let db: TestDatabase;
useDrillTarget((target) => ({ db } = target));

/** Runs statements as the superuser with user triggers off: the test's own database, changed on purpose. */
async function asOwnerWithoutTriggers(statements: string[]): Promise<void> {
  await withPgClient(db.url, async (client) => {
    await client.query('begin');
    await client.query('alter table agent_events disable trigger user');
    for (const statement of statements) await client.query(statement);
    await client.query('alter table agent_events enable trigger user');
    await client.query('commit');
  });
}

describe('drills on a target without the rows they need', () => {
  it('append-only: no run R-44 to replay is could-not-determine, though every change was refused', async () => {
    // Another run's event stays, so the changes have a real row to aim at.
    await asOwnerWithoutTriggers([
      `insert into runs (id, tenant_id, worker, status, total_turns, finished_at) values ('R-other', 'alice', 'w', 'finished', 1, now())`,
      `insert into agent_events (run_id, tenant_id, turn_no, event_type) values ('R-other', 'alice', 1, 'run_started')`,
      `delete from agent_events where run_id = 'R-44'`,
    ]);
    const result = await runOne(appendOnlyEventTest, db);
    expect(result.verdict, result.reason).toBe('could-not-determine');
    expect(result.reason).toMatch(/run R-44 has no agent_events rows in the target/);
  });

  it('append-only: an empty agent_events is could-not-determine: an UPDATE of no row proves nothing', async () => {
    await asOwnerWithoutTriggers(['delete from agent_events']);
    const result = await runOne(appendOnlyEventTest, db);
    expect(result.verdict, result.reason).toBe('could-not-determine');
    expect(result.reason).toMatch(/agent_events holds no row to attempt a change on/);
  });
});
