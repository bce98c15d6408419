// The append-only drill against schemas where one row tried as two roles is refused
// although agent_events is not append-only: a column grant to the Worker role, a
// trigger narrowed by a column list or a WHEN condition. The catalog step must see each
// and the drill fail naming the privilege or the trigger condition; the reference passes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOne } from '../helpers/drills.js';
import { appendOnlyEventTest } from '../../src/drills/append-only-event-test.js';
import type { DrillResult, RunnerEvent } from '../../src/drills/types.js';
import { withPgClient } from '../../src/postgres/pg.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.dispose();
});

const sql = (text: string) => withPgClient(db.url, (client) => client.query(text));

const rowTrigger = (condition = '', events = 'update or delete') =>
  `create trigger agent_events_no_update_delete before ${events} on agent_events for each row ${condition} execute function agent_events_refuse_change()`;
const truncateTrigger = (condition = '') =>
  `create trigger agent_events_no_truncate before truncate on agent_events for each statement ${condition} execute function agent_events_refuse_change()`;
const dropRow = 'drop trigger agent_events_no_update_delete on agent_events';
const dropTruncate = 'drop trigger agent_events_no_truncate on agent_events';

/** Runs the drill with `setup` applied to its database, and `undo` after, whatever happened. */
async function runWith(setup: string[], undo: string[], events?: RunnerEvent[]): Promise<DrillResult> {
  for (const statement of setup) await sql(statement);
  try {
    return await runOne(appendOnlyEventTest, db, { events });
  } finally {
    for (const statement of undo) await sql(statement);
  }
}

describe('append_only_event_test reads the catalog, not only one row as two roles', () => {
  it('passes on the reference schema, with the catalog recorded', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(appendOnlyEventTest, db, { events });
    expect(result.verdict, result.reason).toBe('pass');
    const labels = events.flatMap((event) => (event.type === 'observation' ? [event.label] : []));
    expect(labels).toEqual(expect.arrayContaining(['worker_privileges', 'trigger_catalog', 'trigger_covers_update']));
    // The UPDATE sets every column to itself, not only event_type.
    const update = events.find((event) => event.type === 'sql' && event.sql.startsWith('update agent_events'));
    expect(update?.type === 'sql' && update.sql).toMatch(/"detail" = "detail"/);
  });

  it('with its break the self-assigning UPDATE lands, and is rolled back: every row keeps its version', async () => {
    // xmin changes with any committed UPDATE, even one that sets each column to itself.
    const versions = async () =>
      (await sql(`select md5(string_agg(id || ':' || xmin::text, ',' order by id)) as v from agent_events`)).rows[0].v as string;
    const before = await versions();
    const result = await runOne(appendOnlyEventTest, db, { broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/UPDATE LANDED \(1 row\)/);
    expect(await versions()).toBe(before);
  });

  it('fails when the Worker role holds UPDATE of a column and the row trigger covers only another', async () => {
    const result = await runWith(
      ['grant update (detail) on agent_events to worker_write', dropRow, rowTrigger('', 'update of event_type or delete')],
      ['revoke update (detail) on agent_events from worker_write', dropRow, rowTrigger()],
    );
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toContain('worker_write holds UPDATE on agent_events (detail)');
    expect(result.reason).toContain('agent_events_no_update_delete has a column list (event_type)');
  });

  it('fails on a column grant alone: the triggers stand, but the grant is the Worker\'s to rewrite a column', async () => {
    // The attempt that sets every column is refused (no UPDATE on the others) and the trigger
    // refuses the owner: only the catalog shows the grant of UPDATE (detail).
    const result = await runWith(['grant update (detail) on agent_events to worker_write'], ['revoke update (detail) on agent_events from worker_write']);
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toContain('worker_write holds UPDATE on agent_events (detail)');
    expect(result.reason).not.toContain('no unconditional');
  });

  it('fails when the row trigger covers UPDATE of one column only: the owner can update the others', async () => {
    const result = await runWith([dropRow, rowTrigger('', 'update of event_type or delete')], [dropRow, rowTrigger()]);
    expect(result.verdict, result.reason).toBe('fail');
    // Setting every column to itself makes even this trigger fire, so the catalog is what names the gap.
    expect(result.reason).toContain(
      'no unconditional BEFORE ROW trigger covers UPDATE on agent_events (agent_events_no_update_delete has a column list (event_type))',
    );
    expect(result.reason).not.toContain('DELETE on agent_events');
  });

  it('fails when both triggers fire only for the owner and the Worker role', async () => {
    const when = `when (current_user in ('reconciler_owner', 'worker_write'))`;
    const result = await runWith(
      [dropRow, dropTruncate, rowTrigger(when), truncateTrigger(when)],
      [dropRow, dropTruncate, rowTrigger(), truncateTrigger()],
    );
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toContain('no unconditional BEFORE ROW trigger covers UPDATE on agent_events (agent_events_no_update_delete has a WHEN condition)');
    expect(result.reason).toContain('covers DELETE on agent_events (agent_events_no_update_delete has a WHEN condition)');
    expect(result.reason).toContain(
      'no unconditional BEFORE STATEMENT trigger covers TRUNCATE on agent_events (agent_events_no_truncate has a WHEN condition)',
    );
  });

  it('fails when the row trigger fires only for rows of one run', async () => {
    const result = await runWith([dropRow, rowTrigger(`when (old.run_id = 'R-44')`)], [dropRow, rowTrigger()]);
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toContain('covers UPDATE on agent_events (agent_events_no_update_delete has a WHEN condition)');
    expect(result.reason).not.toContain('TRUNCATE on agent_events');
  });

  it('fails when the truncate trigger is disabled', async () => {
    const result = await runWith(
      ['alter table agent_events disable trigger agent_events_no_truncate'],
      ['alter table agent_events enable trigger agent_events_no_truncate'],
    );
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toContain('covers TRUNCATE on agent_events (agent_events_no_truncate is disabled)');
  });

  it('passes again once every case is undone', async () => {
    const result = await runOne(appendOnlyEventTest, db);
    expect(result.verdict, result.reason).toBe('pass');
  });
});
