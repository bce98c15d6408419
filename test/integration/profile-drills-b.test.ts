// The run-journal resume, append-only and forensics drills through a profile: on
// the other Reconciler (fixtures/other-reconciler: users, uuid keys, runs that end
// 'completed', tool_calls with no run_id and no turn_no, reached through turns and
// numbered by seq, agent_events with a payload column) each passes through the
// fixture's profile, and each fails when its mechanism is taken out of that
// database (put back afterwards).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOne, testSystem, type TestSystem } from '../helpers/drills.js';
import {
  dropOtherRoles,
  installOtherReconciler,
  otherProfile,
  otherRoles,
  useOtherTarget,
  type OtherRoles,
} from '../helpers/other-reconciler.js';
import { appendOnlyEventTest } from '../../src/drills/append-only-event-test.js';
import { narrate } from '../../src/drills/append-only-narrative.js';
import { buildReport, forensicsDrill } from '../../src/drills/forensics-drill/index.js';
import { runJournalResumeDrill } from '../../src/drills/run-journal-resume-drill.js';
import type { DrillResult, RunnerEvent } from '../../src/drills/types.js';
import { isAlive } from '../../src/reconciler/supervisor.js';
import { ident, withPgClient } from '../../src/postgres/pg.js';
import { type Profile, type ProfileInUse, resolveProfile } from '../../src/postgres/profile/index.js';

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

/** The seed's one finished run (fixtures/other-reconciler/seed.sql), with its six agent_events rows. */
const seedRun = '00000000-0000-4000-8000-0000000000e4';
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The fixture's profile with some optional keys left out, as a target that lacks those columns would map it. */
async function without(change: (profile: Profile) => Profile): Promise<ProfileInUse> {
  const inUse = await withPgClient(db.url, (client) => resolveProfile(client, change(profile.profile), 'reduced profile.json', true));
  expect(inUse.problems).toEqual([]);
  return inUse;
}

/** Applies `apply`, runs the drill, and undoes it whatever happened. */
async function sabotaged(run: () => Promise<DrillResult>, apply: string[], undo: string[]): Promise<DrillResult> {
  for (const statement of apply) await sql(statement);
  try {
    return await run();
  } finally {
    for (const statement of undo) await sql(statement);
  }
}

describe('append_only_event_test through the other profile', () => {
  const run = (events?: RunnerEvent[]) => runOne(appendOnlyEventTest, db, { system, profile, events });
  const rowTrigger =
    'create trigger agent_events_append_only before update or delete on agent_events for each row execute function forbid_agent_event_changes()';
  const truncateTrigger =
    'create trigger agent_events_no_truncate before truncate on agent_events for each statement execute function forbid_agent_event_changes()';

  it("passes: refused by the grant and the triggers, and the seed's finished run replayed from its events", async () => {
    const events: RunnerEvent[] = [];
    const result = await run(events);
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(
      `UPDATE on agent_events raised permission error (42501, grant) as ${roles.worker_write} and trigger exception (P0001) ` +
        `as owner ${roles.worker_admin}; DELETE and TRUNCATE refused the same way. ` +
        `Replayed run ${seedRun} from six event rows. Narrative reconstructed without consulting the snapshot.`,
    );
    // The attempts went through the profile's names: the key column id, the payload column.
    const update = events.find((event) => event.type === 'sql' && event.sql.startsWith('update agent_events'));
    expect(update?.type === 'sql' && update.sql).toMatch(/"payload" = "payload"/);
    // The fixture's own payloads are narrated, never failed on: known shapes told, unknown ones as they are.
    expect(result.notes).toHaveLength(6);
    expect(result.notes[0]).toBe(`Run ${seedRun} started on worker worker-1.`);
    expect(result.notes[1]).toBe('It called claim ({"external_ref":"BANK-090"}).');
    expect(result.notes.at(-1)).toBe('Event run_completed in turn -: {"status":"completed"}.');
  });

  it('fails when the row trigger agent_events_append_only is dropped', async () => {
    const result = await sabotaged(run, ['drop trigger agent_events_append_only on agent_events'], [rowTrigger]);
    expect(result.verdict).toBe('fail');
    expect(result.reason).toContain(`as owner ${roles.worker_admin}: UPDATE LANDED (1 row), DELETE LANDED (1 row)`);
    expect(result.reason).toContain('no unconditional BEFORE ROW trigger covers UPDATE on agent_events');
  });

  it('fails when the truncate trigger agent_events_no_truncate is dropped', async () => {
    const result = await sabotaged(run, ['drop trigger agent_events_no_truncate on agent_events'], [truncateTrigger]);
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/TRUNCATE LANDED \(table truncated\)/);
    expect(result.reason).toContain('no unconditional BEFORE STATEMENT trigger covers TRUNCATE on agent_events');
    const { rows } = await sql('select count(*)::int as n from agent_events where run_id = $1', [seedRun]);
    expect(rows[0].n).toBe(6);
  });

  it('fails when UPDATE is granted to the Worker role, though the trigger still refuses it', async () => {
    const worker = ident(roles.worker_write);
    const result = await sabotaged(run, [`grant update on agent_events to ${worker}`], [`revoke update on agent_events from ${worker}`]);
    expect(result.verdict).toBe('fail');
    expect(result.reason).toContain(`as ${roles.worker_write}: UPDATE refused by the trigger (P0001)`);
    expect(result.reason).toContain(`${roles.worker_write} holds UPDATE on agent_events`);
  });

  it('makes a run with the reference Worker when the target holds no finished run with events, and replays it', async () => {
    // The seed's run no longer counts as finished: no run of the target can be replayed.
    const events: RunnerEvent[] = [];
    const result = await sabotaged(
      () => run(events),
      [`update runs set status = 'failed' where id = '${seedRun}'`],
      [`update runs set status = 'completed' where id = '${seedRun}'`],
    );
    expect(result.verdict, result.reason).toBe('pass');
    const replayed = observed(events, 'replay_run')!;
    expect(replayed).toMatch(/made by the drill with the reference Worker/);
    const runId = replayed.split(' ')[0]!;
    expect(runId).toMatch(uuid);
    expect(runId).not.toBe(seedRun);
    expect(result.evidence).toMatch(new RegExp(`Replayed run ${runId} that the drill made with the reference Worker, from \\w+ event rows\\.`));
    // The attempts aimed at that run's events, not at the seed's.
    const { rows: target } = await sql('select run_id::text as run from agent_events where id = $1', [observed(events, 'target_id')]);
    expect(target).toEqual([{ run: runId }]);
    // The tool server journaled the run in the fixture's own tables.
    const { rows } = await sql(`select status from runs where id = $1`, [runId]);
    expect(rows).toEqual([{ status: 'completed' }]);
    expect(result.notes[0]).toMatch(new RegExp(`^Run ${runId} started for tenant [0-9a-f-]{36} on worker reconciler-append-\\w+, planning 1 turns\\.$`));
  });
});

describe('append_only_event_test on the other Reconciler installed without its seed', () => {
  // A learner's schema before any run: an empty agent_events, no user, no run. The drill
  // makes its own run with the reference Worker, aims the changes at it and replays it.
  const bare = otherRoles();
  let bareDb: TestDatabase | undefined;
  let bareSystem: TestSystem | undefined;
  let bareProfile: ProfileInUse;
  beforeAll(async () => {
    bareDb = await createTestDatabase({ empty: true });
    await installOtherReconciler(bareDb.url, bare, { seed: false });
    const profile = await otherProfile(bare);
    bareProfile = await withPgClient(bareDb.url, (client) => resolveProfile(client, profile, 'fixtures/other-reconciler/profile.json', true));
    expect(bareProfile.problems).toEqual([]);
    bareSystem = await testSystem(bareDb, profile);
  });
  afterAll(async () => {
    const pids = bareSystem?.supervisor().startedPids() ?? [];
    await bareSystem?.dispose();
    await bareDb?.dispose();
    if (bareDb) await dropOtherRoles(bareDb.adminUrl, bare);
    expect(pids.filter(isAlive)).toEqual([]);
  });

  it('passes on the empty learner schema, having made its own run with the reference Worker', async () => {
    const bareSql = (text: string, params: unknown[] = []) => withPgClient(bareDb!.url, (client) => client.query(text, params));
    expect((await bareSql('select count(*)::int as n from agent_events')).rows).toEqual([{ n: 0 }]);
    const events: RunnerEvent[] = [];
    const result = await runOne(appendOnlyEventTest, bareDb!, { system: bareSystem, profile: bareProfile, events });
    expect(result.verdict, result.reason).toBe('pass');
    const replayed = observed(events, 'replay_run')!;
    expect(replayed).toMatch(/ \(made by the drill with the reference Worker\)$/);
    const runId = replayed.split(' ')[0]!;
    expect(runId).toMatch(uuid);
    expect(result.evidence).toMatch(
      new RegExp(
        `^UPDATE on agent_events raised permission error \\(42501, grant\\) as ${bare.worker_write} and trigger exception \\(P0001\\) ` +
          `as owner ${bare.worker_admin}; DELETE and TRUNCATE refused the same way\\. ` +
          `Replayed run ${runId} that the drill made with the reference Worker, from \\w+ event rows\\. Narrative reconstructed without consulting the snapshot\\.$`,
      ),
    );
    // Every event row is the drill's run's, and the attempts aimed at one of them.
    const { rows } = await bareSql('select run_id::text as run, count(*)::int as n from agent_events group by run_id');
    expect(rows).toEqual([{ run: runId, n: expect.any(Number) }]);
    expect(rows[0].n).toBeGreaterThan(0);
    const { rows: target } = await bareSql('select run_id::text as run from agent_events where id = $1', [observed(events, 'target_id')]);
    expect(target).toEqual([{ run: runId }]);
    expect(result.notes[0]).toMatch(new RegExp(`^Run ${runId} started for tenant [0-9a-f-]{36} on worker reconciler-append-\\w+, planning 1 turns\\.$`));
  });
});

describe('run_journal_resume_drill through the other profile', () => {
  it('passes: killed mid-turn 3, resumed from turn 3 through turns, seq and the completed status', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(runJournalResumeDrill, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(/^Run resumed from turn 3 of 5\. Turns 1 and 2 were not re-executed\. Journal shows continuous timeline with one gap closed/);
    expect(observed(events, 'crash_signature')).toBe('status=running, finished_at=null');
    const runId = observed(events, 'run_id')!;
    const { rows } = await sql(`select status, ended_at is not null as ended from runs where id = $1`, [runId]);
    expect(rows).toEqual([{ status: 'completed', ended: true }]);
    // Each call of each turn once: the resume re-ran none of them.
    const { rows: calls } = await sql(
      `select t.turn_index, c.seq, count(*)::int as n from tool_calls c join turns t on t.id = c.turn_id
        where t.run_id = $1 group by 1, 2 having count(*) > 1`,
      [runId],
    );
    expect(calls).toEqual([]);
    // The resume latency on the database's clock: the observed restart to the first call journaled after it.
    const latency = / resumed (\d+) ms after the restart\)\.$/.exec(result.evidence);
    expect(latency, result.evidence).not.toBeNull();
    const { rows: first } = await sql(
      `select t.turn_index, c.seq, round(extract(epoch from c.started_at - $2::timestamptz) * 1000)::int as after_restart
         from tool_calls c join turns t on t.id = c.turn_id
        where t.run_id = $1 and c.started_at >= $2::timestamptz order by c.started_at limit 1`,
      [runId, observed(events, 'restarted_at')],
    );
    expect(first[0]).toMatchObject({ turn_index: 3, seq: 2 });
    expect(Number(latency![1])).toBeGreaterThanOrEqual(0);
    expect(Math.abs(Number(latency![1]) - (first[0] as { after_restart: number }).after_restart)).toBeLessThanOrEqual(1);
  });

  it('takes the status alone as the crash signature when the profile maps no finished_at', async () => {
    const reduced = await without((p) => ({
      ...p,
      runs: { ...p.runs, finished_at: undefined },
      tool_calls: { ...p.tool_calls, started_at: undefined },
    }));
    const events: RunnerEvent[] = [];
    const result = await runOne(runJournalResumeDrill, db, { system, profile: reduced, events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(observed(events, 'crash_signature')).toBe('status=running, finished_at not recorded');
    // Without tool_calls.started_at the latency cannot be read from the journal: the line says so.
    expect(result.evidence).toMatch(/; resume latency not recorded: the profile maps no started_at for tool_calls\)\.$/);
  });

  it('fails when INSERT on tool_calls is revoked from the Worker role, naming the refusal', async () => {
    const worker = ident(roles.worker_write);
    const events: RunnerEvent[] = [];
    const result = await sabotaged(
      () => runOne(runJournalResumeDrill, db, { system, profile, events }),
      [`revoke insert on tool_calls from ${worker}`],
      [`grant insert on tool_calls to ${worker}`],
    );
    expect(result.verdict).toBe('fail');
    expect(JSON.parse(observed(events, 'worker_call_failed')!)).toMatchObject({ turn: 1, call: 1, tool: 'claim', sqlstate: '42501' });
    expect(JSON.parse(observed(events, 'journal_privileges_missing')!)).toEqual(['INSERT on tool_calls']);
    expect(result.reason).toContain('failed with SQLSTATE 42501');
    expect(result.reason).toContain(`${roles.worker_write} lacks INSERT on tool_calls: the run journal cannot be written`);
  });
});

describe('forensics_drill through the other profile', () => {
  const run = (events?: RunnerEvent[]) => runOne(forensicsDrill, db, { system, profile, events });

  it('passes: the refund refused by expenses_amount_check, the four queries and six lines through the names', async () => {
    const events: RunnerEvent[] = [];
    const result = await run(events);
    expect(result.verdict, result.reason).toBe('pass');
    const runId = observed(events, 'run_id')!;
    expect(runId).toMatch(uuid);
    expect(result.evidence).toBe(
      `Forensic report assembled for run_id ${runId.slice(0, 4)}.... Six lines populated from 2 tool_calls and 4 agent_events rows. ` +
        'Root cause named in one sentence (write refused with SQLSTATE 23514). ' +
        'Recommended next action: fix the input, then retry with same idempotency keys.',
    );
    // runs has no total_turns here: the run line says nothing of the plan rather than guess it.
    expect(result.notes[0]).toMatch(new RegExp(`^Run: ${runId} for tenant [0-9a-f-]{36} on worker reconciler-forensics-\\w+, status failed, started .+, finished .+\\.$`));
    expect(result.notes[2]).toBe('Failed step: turn 1, call 2, tool write, SQLSTATE 23514.');
    expect(result.notes[3]).toMatch(/^Side effects: 0 expenses rows written, outbox no rows, claims by reconciler-forensics-\w+: [0-9a-f-]{36} claimed \(lease until /);
    expect(result.notes[4]).toMatch(/violates check constraint "expenses_amount_check"\.$/);
  });

  it('says less when the profile maps fewer columns: no outbox run, no start times, no SQLSTATE', async () => {
    const reduced = await without((p) => ({
      ...p,
      runs: { ...p.runs, started_at: undefined },
      tool_calls: { ...p.tool_calls, started_at: undefined, finished_at: undefined, error_code: undefined },
      outbox: { ...p.outbox, run: undefined },
      events: { ...p.events, created_at: undefined },
    }));
    const result = await runOne(forensicsDrill, db, { system, profile: reduced });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toContain('(write refused with SQLSTATE not recorded)');
    expect(result.notes[0]).toMatch(/^Run: [0-9a-f-]{36} for tenant [0-9a-f-]{36} on worker reconciler-forensics-\w+, status failed, finished .+\.$/);
    expect(result.notes[1]).toMatch(/^Timeline: turn 1 \(failed\): call 1 claim completed, call 2 write failed; events by id: run_started, tool_called claim, tool_failed write, run_failed write\.$/);
    expect(result.notes[2]).toBe('Failed step: turn 1, call 2, tool write (SQLSTATE not recorded).');
    expect(result.notes[3]).toMatch(
      /^Side effects: 0 expenses rows written, outbox not scoped to the run \(no run column\), claims by reconciler-forensics-\w+: [0-9a-f-]{36} claimed \(lease until /,
    );
  });

  it('could not determine when the profile maps no error column: the root cause cannot be read', async () => {
    const reduced = await without((p) => ({ ...p, tool_calls: { ...p.tool_calls, error: undefined } }));
    const result = await runOne(forensicsDrill, db, { system, profile: reduced });
    expect(result.verdict, result.reason).toBe('could-not-determine');
    expect(result.reason).toMatch(/add tool_calls\.error to the profile/);
  });

  it('fails when the Worker role may not insert agent_events', async () => {
    const worker = ident(roles.worker_write);
    const result = await sabotaged(run, [`revoke insert on agent_events from ${worker}`], [`grant insert on agent_events to ${worker}`]);
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/left no runs row: the journal recorded nothing, the forensic report cannot be built .*permission denied for table agent_events/);
  });

  it('fails when a trigger silently drops the events', async () => {
    const result = await sabotaged(
      run,
      [
        `create function sor_swallow_event() returns trigger language plpgsql as $$ begin return null; end $$`,
        `create trigger sor_swallow_event before insert on agent_events for each row execute function sor_swallow_event()`,
      ],
      ['drop trigger if exists sor_swallow_event on agent_events', 'drop function if exists sor_swallow_event()'],
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/has no agent_events rows: the forensic report cannot be built/);
  });

  it('fails when the expenses check is gone (the refund lands as an expense)', async () => {
    const result = await sabotaged(
      run,
      ['alter table expenses drop constraint expenses_amount_check'],
      ['delete from expenses where amount <= 0', 'alter table expenses add constraint expenses_amount_check check (amount > 0)'],
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toBe(
      'no failed run to investigate: the Worker finished its run (exit 0), so the database accepted an expense of -1250 cents',
    );
  });
});

describe('the narrative and the report on rows the reference never writes', () => {
  it('narrates payloads it does not know as they are, never failing on them', () => {
    const story = narrate('run-1', [
      { id: '1', turn_no: null, event_type: 'run_started', detail: 'not an object' },
      { id: '2', turn_no: null, event_type: 'tool_called', detail: { tool: 'write', inserted: true } },
      { id: '3', turn_no: 2, event_type: 'tool_called', detail: null },
      { id: '4', turn_no: null, event_type: 'turn_completed', detail: [1, 2] },
      { id: '5', turn_no: null, event_type: 'custom', detail: { a: 1 } },
    ]);
    expect(story).toEqual([
      'Event run_started in turn -: "not an object".',
      'It called write ({"inserted":true}).',
      'Event tool_called in turn 2: null.',
      'Event turn_completed in turn -: [1,2].',
      'Event custom in turn -: {"a":1}.',
    ]);
  });

  it('reports absent columns as not recorded, never as never', () => {
    const report = buildReport(
      { id: 'r-1', tenant_id: 't', status: 'failed', error: 'x' },
      [{ turn_no: 1, turn_status: 'failed', call_no: 1, tool: 'write', status: 'failed', arguments: {}, error: 'boom', run_status: 'failed' }],
      [
        { id: '1', turn_no: null, event_type: 'tool_failed', detail: { tool: 'write' } },
        { id: '2', turn_no: null, event_type: 'run_failed', detail: {} },
      ],
      { expenses: [], outbox: null, claims: null },
    );
    expect(report.missing).toEqual([]);
    expect(report.lines).toEqual([
      'Run: r-1 for tenant t, status failed.',
      'Timeline: turn 1 (failed): call 1 write failed; events by id: tool_failed write, run_failed.',
      'Failed step: turn 1, call 1, tool write (SQLSTATE not recorded).',
      'Side effects: 0 expenses rows written, outbox not scoped to the run (no run column), claims by the run’s worker: not recorded.',
      'Root cause: the write of its input was refused by the database with SQLSTATE not recorded: boom.',
      'Recommended next action: investigate SQLSTATE unknown in the failing call\'s error, then retry with same idempotency keys.',
    ]);
  });
});
