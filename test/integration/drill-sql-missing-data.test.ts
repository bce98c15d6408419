// A target with the reference names but without the rows a drill needs to look at
// (no event row to aim a change at, no run to replay) says nothing about a habit: each such drill is could-not-determine naming
// what is missing, never a fail. The same drills still fail when the mechanism is
// missing, in drills-sql.test.ts and drills-processes.test.ts. The append-only drill
// first makes the missing run itself with the reference Worker when it can: it stays
// could-not-determine only when the Worker side cannot start or its run writes no event.
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { runOne, useDrillTarget, type TestSystem } from '../helpers/drills.js';
import { scratchDir } from '../helpers/scratch.js';
import { appendOnlyEventTest } from '../../src/drills/append-only-event-test.js';
import { createDrillSystem } from '../../src/drills/processes.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { defaultRoles } from '../../src/postgres/roles.js';

let db: TestDatabase;
let system: TestSystem;
useDrillTarget((target) => ({ db, system } = target));

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

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

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

const tenantCount = async () => (await sql('select count(*)::int as n from tenants')).rows[0].n as number;

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

  it('append-only: an empty agent_events: the drill makes a run with the reference Worker, aims the changes at its events and replays it', async () => {
    await asOwnerWithoutTriggers(['delete from agent_events']);
    const events: RunnerEvent[] = [];
    const result = await runOne(appendOnlyEventTest, db, { system, events });
    expect(result.verdict, result.reason).toBe('pass');
    const replayed = observed(events, 'replay_run')!;
    expect(replayed).toMatch(/^\S+ \(made by the drill with the reference Worker\)$/);
    const runId = replayed.split(' ')[0]!;
    // Not the seed's R-44, though its runs row is there: the table held no event of it.
    expect(runId).not.toBe('R-44');
    expect(result.evidence).toMatch(
      new RegExp(`Replayed run ${runId} that the drill made with the reference Worker, from \\w+ event rows\\. Narrative reconstructed`),
    );
    expect(result.evidence).toMatch(/^UPDATE on agent_events raised permission error \(42501, grant\) as worker_write and trigger exception \(P0001\)/);
    // The attempts aimed at a row of that run, in a tenant of the drill's own.
    const { rows } = await sql('select e.run_id, r.tenant_id from agent_events e join runs r on r.id = e.run_id where e.id = $1', [
      observed(events, 'target_id'),
    ]);
    expect(rows).toEqual([{ run_id: runId, tenant_id: expect.stringMatching(/^drill-append-/) }]);
    expect(result.notes[0]).toMatch(new RegExp(`^Run ${runId} started for tenant drill-append-\\S+ on worker reconciler-append-\\w+`));
  });

  it('append-only: an empty agent_events and no Worker side is could-not-determine, naming why, and writes no tenant', async () => {
    await asOwnerWithoutTriggers(['delete from agent_events']);
    const tenants = await tenantCount();
    // noProcesses: its tool server refuses to start.
    const result = await runOne(appendOnlyEventTest, db);
    expect(result.verdict, result.reason).toBe('could-not-determine');
    expect(result.reason).toBe(
      'could not determine: agent_events holds no row to attempt a change on or replay, ' +
        'and the reference Worker could not make a run: this drill was not expected to start a process',
    );
    expect(await tenantCount()).toBe(tenants);
  });

  it('append-only: an empty agent_events and no login to act as the worker role is could-not-determine, naming the login', async () => {
    await asOwnerWithoutTriggers(['delete from agent_events']);
    const login = new URL(db.url);
    login.username = 'sor_no_such_login';
    const noLogin = createDrillSystem({ url: db.url, roles: defaultRoles, logDir: scratchDir('processes-'), workerUrl: async () => login.href });
    try {
      const result = await runOne(appendOnlyEventTest, db, { system: noLogin });
      expect(result.verdict, result.reason).toBe('could-not-determine');
      expect(result.reason).toMatch(
        /^could not determine: agent_events holds no row to attempt a change on or replay, and the reference Worker could not make a run: the Worker side cannot log in to act as worker_write: .*sor_no_such_login/,
      );
    } finally {
      await noLogin.stopAll();
    }
  });

  it("append-only: an empty agent_events that the Worker's run writes no row into is could-not-determine, saying so", async () => {
    await asOwnerWithoutTriggers(['delete from agent_events']);
    await sql(`create function sor_swallow_event() returns trigger language plpgsql as $$ begin return null; end $$`);
    await sql(`create trigger sor_swallow_event before insert on agent_events for each row execute function sor_swallow_event()`);
    try {
      const result = await runOne(appendOnlyEventTest, db, { system });
      expect(result.verdict, result.reason).toBe('could-not-determine');
      expect(result.reason).toMatch(
        /^could not determine: agent_events holds no row to attempt a change on: the reference Worker's run \S+, which the drill made, wrote no event row \(see the tool server's log\)$/,
      );
    } finally {
      await sql('drop trigger if exists sor_swallow_event on agent_events');
      await sql('drop function if exists sor_swallow_event()');
    }
  });
});
