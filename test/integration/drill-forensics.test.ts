// Drill 9, forensics_drill, against real processes (tool server, Worker) and a
// real Postgres: a refund the expenses check refuses makes a real run fail; the
// drill is green when the four run-scoped queries and the six-line report can be
// built, red with its deliberate break (no agent_events), and red when the target
// itself keeps the events from being written, leaving the sabotage in place.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { addedRows } from '../helpers/diff-rows.js';
import { runOne, useDrillTarget, type TestSystem } from '../helpers/drills.js';
import { buildReport, forensicsDrill, nextAction, sentenceCount } from '../../src/drills/forensics-drill/index.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { withPgClient } from '../../src/postgres/pg.js';

let db: TestDatabase;
let system: TestSystem;
useDrillTarget((target) => ({ db, system } = target));

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

describe('forensics_drill', () => {
  it('passes: a real failed run, the four queries by run_id, six lines, evidence from what was observed', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(forensicsDrill, db, { system, events });
    expect(result.verdict, result.reason).toBe('pass');
    const runId = observed(events, 'run_id')!;
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.evidence).toBe(
      `Forensic report assembled for run_id ${runId.slice(0, 4)}.... Six lines populated from 2 tool_calls and 4 agent_events rows. ` +
        'Root cause named in one sentence (write refused with SQLSTATE 23514). ' +
        'Recommended next action: fix the input, then retry with same idempotency keys.',
    );
    // What the database holds for that run agrees with the report.
    const { rows: runs } = await sql(`select status, error from runs where id = $1`, [runId]);
    expect(runs[0].status).toBe('failed');
    expect(runs[0].error).toMatch(/expenses_amount_positive.*\[SQLSTATE 23514\]/);
    const { rows: calls } = await sql(`select tool, status, error_code from tool_calls where run_id = $1 order by turn_no, call_no`, [runId]);
    expect(calls).toEqual([
      { tool: 'claim', status: 'completed', error_code: null },
      { tool: 'write', status: 'failed', error_code: '23514' },
    ]);
    // Six lines, in order, in the notes, each filled from the rows.
    expect(result.notes).toHaveLength(6);
    expect(result.notes.map((line) => line.split(':')[0])).toEqual([
      'Run',
      'Timeline',
      'Failed step',
      'Side effects',
      'Root cause',
      'Recommended next action',
    ]);
    expect(result.notes[0]).toContain(runId);
    expect(result.notes[2]).toBe('Failed step: turn 1, call 2, tool write, SQLSTATE 23514.');
    expect(result.notes[3]).toMatch(/^Side effects: 0 expenses rows written, outbox no rows, claims by reconciler-forensics-\w+: T-\d+ claimed \(lease until /);
    expect(result.notes[4]).toMatch(
      /^Root cause: the write of pending transaction T-\d+ \(amount_cents -1250\) was refused by the database with SQLSTATE 23514: new row for relation "expenses" violates check constraint "expenses_amount_positive"\.$/,
    );
    expect(result.notes[5]).toMatch(/^Recommended next action: fix the input \(T-\d+ has amount_cents -1250, refused by expenses_amount_positive\) and retry with same idempotency keys \(drill-forensics-\w+:T-\d+\)\.$/);
    // The report is in the evidence folder beside the oracle's files.
    expect(result.evidenceDirs).toHaveLength(1);
    const file = path.join(result.evidenceDirs[0]!, 'forensic-report.md');
    expect(existsSync(file)).toBe(true);
    const report = readFileSync(file, 'utf8');
    for (const line of result.notes) expect(report).toContain(line);
    expect(report).toContain('from agent_events');
    // The oracle's diff names the failed run by its key, the run_id the report is scoped by.
    expect((await addedRows(result.evidenceDirs[0]!)).filter((row) => row.id === runId)).toEqual([expect.objectContaining({ id: runId, status: 'failed' })]);
  });

  it('fails with its deliberate break: the run has no agent_events, the report cannot be built', async () => {
    const result = await runOne(forensicsDrill, db, { system, broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/^run [0-9a-f-]{36} has no agent_events rows: the forensic report cannot be built/);
  });

  it('fails when the Worker role may not insert agent_events, and leaves the grant revoked', async () => {
    await sql('revoke insert on agent_events from worker_write');
    try {
      const result = await runOne(forensicsDrill, db, { system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/left no runs row: the journal recorded nothing, the forensic report cannot be built .*permission denied for table agent_events/);
      const { rows } = await sql(`select has_table_privilege('worker_write', 'agent_events', 'insert') as ok`);
      expect(rows[0].ok).toBe(false);
    } finally {
      await sql('grant insert on agent_events to worker_write');
    }
  });

  it('fails when a trigger silently drops the events, and leaves the trigger in place', async () => {
    await sql(`create function sor_swallow_event() returns trigger language plpgsql as $$ begin return null; end $$`);
    await sql(`create trigger sor_swallow_event before insert on agent_events for each row execute function sor_swallow_event()`);
    try {
      const result = await runOne(forensicsDrill, db, { system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/has no agent_events rows: the forensic report cannot be built/);
      const { rows } = await sql(`select 1 from pg_trigger where tgname = 'sor_swallow_event'`);
      expect(rows).toHaveLength(1);
    } finally {
      await sql('drop trigger if exists sor_swallow_event on agent_events');
      await sql('drop function if exists sor_swallow_event()');
    }
  });
});

describe('forensics_drill when no run can be made to fail', () => {
  it('fails when the expenses check is gone (the refund lands as an expense), and leaves it gone', async () => {
    await sql('alter table expenses drop constraint expenses_amount_positive');
    try {
      const result = await runOne(forensicsDrill, db, { system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toBe(
        'no failed run to investigate: the Worker finished its run (exit 0), so the database accepted an expense of -1250 cents',
      );
      const { rows } = await sql(`select 1 from pg_constraint where conname = 'expenses_amount_positive'`);
      expect(rows).toHaveLength(0);
    } finally {
      await sql(`delete from expenses where amount_cents <= 0`);
      await sql('alter table expenses add constraint expenses_amount_positive check (amount_cents > 0)');
    }
  });

  it('could not determine when pending_transactions itself refuses the refund', async () => {
    await sql('alter table pending_transactions add constraint sor_pending_positive check (amount_cents > 0) not valid');
    try {
      const result = await runOne(forensicsDrill, db, { system });
      expect(result.verdict).toBe('could-not-determine');
      expect(result.reason).toMatch(/^could not determine: pending_transactions itself refuses an amount of -1250 cents/);
    } finally {
      await sql('alter table pending_transactions drop constraint sor_pending_positive');
    }
  });
});

describe('the six-line report, on rows the reference never produces', () => {
  const run = {
    id: 'r-1',
    tenant_id: 't',
    worker: 'w',
    status: 'failed',
    total_turns: 1,
    error: 'x',
    started_at: '2026-01-01T00:00:00.000+00:00',
    finished_at: '2026-01-01T00:00:01.000+00:00',
  };
  const failedCall = {
    turn_no: 1,
    turn_status: 'failed',
    call_no: 2,
    tool: 'write',
    status: 'failed',
    arguments: { transaction_id: 'T-1', amount_cents: -5, idempotency_key: 't:T-1' },
    error: 'boom',
    error_code: '23514',
    started_at: '2026-01-01T00:00:00.500+00:00',
    finished_at: '2026-01-01T00:00:00.600+00:00',
    duration_ms: 100,
    run_status: 'failed',
  };
  const effects = { expenses: [], outbox: [], claims: [] };

  it('names the event that is missing when the events disagree with the calls', () => {
    const report = buildReport(run, [failedCall], [
      { id: '1', turn_no: null, event_type: 'run_started', detail: {}, created_at: run.started_at },
      { id: '2', turn_no: 1, event_type: 'tool_failed', detail: { tool: 'write', error_code: '42501' }, created_at: run.finished_at },
    ], effects);
    expect(report.missing).toEqual([
      'no run_failed event',
      'the tool_failed event says SQLSTATE 42501, the tool call 23514',
    ]);
  });

  it('counts the sentences of the root cause, as the evidence says them', () => {
    expect(sentenceCount('the write was refused with SQLSTATE 23514: new row for relation "expenses" violates check constraint.')).toBe(1);
    expect(sentenceCount('The write failed. Then the queue failed.')).toBe(2);
  });

  it('recommends by SQLSTATE class, always keeping the idempotency keys', () => {
    expect(nextAction('23505', {}).short).toBe('fix the input, then retry with same idempotency keys');
    expect(nextAction('40001', {}).short).toBe('retry with same idempotency keys');
    expect(nextAction('42501', {}).short).toBe('grant the missing privilege, then retry with same idempotency keys');
    expect(nextAction(null, {}).line).toMatch(/^investigate SQLSTATE unknown/);
  });
});
