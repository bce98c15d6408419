// Drill 9, forensics_drill (Lesson 9, forensics). A real run fails: a pending
// refund of -12.50 is claimed and written by a Worker, the database refuses the
// expense (check expenses_amount_positive, 23514) and the tool server journals
// the run as failed. Then, from the database alone and scoped to that run_id, the
// four forensic queries (the runs row; tool_calls joined to turns and runs; the
// outbox grouped by status; agent_events ordered by id) and the six-line report
// (report.ts). Without the run's agent_events the report cannot be built, and the
// drill says so.
import type { RunRow } from '../../reconciler/actions.js';
import path from 'node:path';
import { errorMessage, inTransaction, sqlState, withPgClient } from '../../postgres/pg.js';
import { writeFileAtomic } from '../../util/fs.js';
import { drillTenantStep, toolServerStep, type TenantState, type ToolServerState } from '../common-steps.js';
import { withEvidence } from '../evidence.js';
import { insertPending } from '../inputs.js';
import { CouldNotDetermine } from '../runner.js';
import { query } from '../sql.js';
import { need, type Drill, type DrillContext } from '../types.js';
import {
  buildReport,
  forensicQueries,
  renderReport,
  type CallRow,
  type EventRow,
  type ForensicReport,
  type SideEffects,
} from './report.js';
import { failingInput, runWorkerToExit, type WorkerOutcome } from './failing-run.js';
import { forensicsVerdict } from './verdict.js';

export interface State extends TenantState, ToolServerState {
  /** How the failing Worker ended, and what it said. */
  outcome?: WorkerOutcome;
  /** The oracle's folder of the failed run, where the report file goes. */
  evidenceFolder?: string;
  /** The run under investigation, as the journal names it. */
  runId?: string;
  /** The rows of the four queries (query 1's single row). */
  run?: RunRow;
  calls: CallRow[];
  outbox: Array<{ status: string; n: number }>;
  events: EventRow[];
  report?: ForensicReport;
}

async function asTenant<T extends Record<string, unknown>>(
  ctx: DrillContext,
  tenant: string,
  sql: string,
  params: unknown[],
): Promise<T[]> {
  ctx.showSql(sql);
  return withPgClient(ctx.url, (client) =>
    inTransaction(client, async () => {
      // expenses and pending_transactions force row-level security: read inside the tenant's context.
      await client.query(`select set_config('app.tenant_id', $1, true)`, [tenant]);
      return (await client.query<T>(sql, params)).rows;
    }),
  );
}

/** The run's side effects beside the four queries: expenses by its write calls' keys, claims by its Worker. */
async function readSideEffects(ctx: DrillContext, run: RunRow, calls: CallRow[], outbox: SideEffects['outbox']): Promise<SideEffects> {
  const keys = calls
    .filter((call) => call.tool === 'write' && typeof call.arguments?.idempotency_key === 'string')
    .map((call) => String(call.arguments.idempotency_key));
  const expenses = await asTenant<{ idempotency_key: string }>(
    ctx,
    run.tenant_id,
    'select idempotency_key from expenses where tenant_id = $1 and idempotency_key = any($2) order by idempotency_key',
    [run.tenant_id, keys],
  );
  const claims = await asTenant<{ id: string; status: string; locked_until: string | null }>(
    ctx,
    run.tenant_id,
    // Indented as it always was: the console, the bundle and the tests see this text verbatim.
    `select id, status, to_json(locked_until) #>> '{}' as locked_until
               from pending_transactions where claimed_by = $1 or processed_by = $1 order by id`,
    [run.worker],
  );
  return { expenses: expenses.map((row) => row.idempotency_key), outbox, claims };
}

export const forensicsDrill: Drill<State> = {
  number: 9,
  key: 'forensics_drill',
  title: 'Forensics',
  lesson: 9,
  habit: 'forensics by run_id (journal and events)',
  tables: ['runs', 'tool_calls', 'agent_events', 'outbox'],
  needs: ['tenants', 'expenses', 'pending_transactions', 'outbox', 'runs', 'turns', 'tool_calls', 'agent_events'],
  breakDescription: 'the tool server writes no agent_events rows: the failed run has no event trail and the report cannot be built',
  fix:
    'journal every tool call (runs, turns, tool_calls with error and SQLSTATE) and append its agent_events rows ' +
    '(tool_called, tool_failed, run_failed) in the same transaction as the call’s outcome, so any failed run can be rebuilt by run_id',
  init: () => ({ calls: [], outbox: [], events: [] }),
  steps: [
    drillTenantStep('forensics', 'The failing run works on a tenant of its own, so its rows and its failure disturb no other drill.'),
    {
      id: 'input',
      title: 'Queue a refund the expenses table will refuse',
      why: 'A real failure, not a simulated one: pending_transactions accepts a negative amount, expenses (check amount_cents > 0) does not.',
      async run(ctx, state) {
        const tenant = need(state.tenant, 'the drill tenant');
        let id: string | undefined;
        try {
          [id] = await insertPending(ctx, tenant.id, [failingInput]);
        } catch (error) {
          if (sqlState(error) !== '23514') throw error;
          throw new CouldNotDetermine(
            `pending_transactions itself refuses an amount of ${failingInput.amount_cents} cents (${errorMessage(error)}), so no run can be made to fail on it`,
          );
        }
        ctx.observe('pending_transaction', `${id} amount_cents ${failingInput.amount_cents}`);
      },
    },
    toolServerStep({
      why: 'The tool server journals every call of the run: runs, turns, tool_calls and agent_events.',
      breaks: { noEvents: true },
    }),
    {
      id: 'failed-run',
      title: 'Run a Worker until its run fails',
      why: 'The Worker claims the refund and writes it; the database refuses the write and the run is journaled as failed.',
      async run(ctx, state) {
        const tenant = need(state.tenant, 'the drill tenant');
        const tools = need(state.tools, 'the tool server');
        let outcome: WorkerOutcome | undefined;
        const result = await withEvidence(
          ctx,
          {
            label: `Worker ${tenant.worker} runs one turn on a refund of ${failingInput.amount_cents} cents`,
            tables: [
              { name: 'runs', filter: { tenant_id: tenant.id } },
              { name: 'agent_events', filter: { tenant_id: tenant.id } },
              { name: 'outbox', filter: { tenant_id: tenant.id } },
              { name: 'expenses', filter: { tenant_id: tenant.id } },
            ],
            expect: [
              `runs:+{tenant_id=${JSON.stringify(tenant.id)},status=failed}`,
              'agent_events:+{event_type=tool_failed}',
              'agent_events:+{event_type=run_failed}',
              'expenses:+0',
              'outbox:+0',
            ],
          },
          async (log) => {
            outcome = await runWorkerToExit(ctx, tenant, tools, log);
            // The action did what it set out to do when the Worker reports a failed call (exit 1).
            return outcome.exitCode === 1 ? 0 : 1;
          },
        );
        state.evidenceFolder = result.folder;
        if (!outcome) throw new Error('the Worker was not run');
        ctx.observe('worker_exit', outcome.signal ?? outcome.exitCode, outcome.exitCode === 1);
        ctx.observe('worker_run_id', outcome.runId ?? 'none');
        if (outcome.failed) {
          ctx.observe(
            'worker_call_failed',
            `turn ${String(outcome.failed.turn)} call ${String(outcome.failed.call)} ${String(outcome.failed.tool)}: ` +
              `${String(outcome.failed.error)}${outcome.failed.error_code ? ` [${String(outcome.failed.error_code)}]` : ''}`,
          );
        }
        state.outcome = outcome;
      },
    },
    {
      id: 'q1-run',
      title: 'Query 1: the runs row',
      why: 'Every investigation starts from one run_id: who ran it, for whom, how it ended and when.',
      sql: [forensicQueries.run],
      async run(ctx, state) {
        const tenant = need(state.tenant, 'the drill tenant');
        const outcome = need(state.outcome, 'the Worker outcome');
        // The run is found by the Worker's name in the journal; the Worker's own line says which it started.
        const found = await query<{ id: string }>(
          ctx,
          'select id from runs where worker = $1 order by started_at desc, id desc limit 1',
          [tenant.worker],
        );
        const runId = found[0]?.id ?? outcome.runId;
        ctx.observe('run_id', runId ?? 'none', found[0] !== undefined);
        state.runId = runId;
        const rows = runId ? await query<RunRow & Record<string, unknown>>(ctx, forensicQueries.run, [runId]) : [];
        state.run = rows[0];
        ctx.observe('q1_runs_row', rows[0] ? `status ${rows[0].status}, error ${rows[0].error ?? 'none'}` : 'no row', rows.length === 1);
      },
    },
    {
      id: 'q2-calls',
      title: 'Query 2: tool_calls joined to turns and runs',
      why: 'The calls in order, with their status, timings, error and SQLSTATE, show where the run stopped.',
      sql: [forensicQueries.calls],
      async run(ctx, state) {
        const rows = state.runId ? await query<CallRow & Record<string, unknown>>(ctx, forensicQueries.calls, [state.runId]) : [];
        state.calls = rows;
        ctx.observe(
          'q2_tool_calls',
          rows.map((row) => `${row.turn_no}.${row.call_no} ${row.tool} ${row.status}${row.error_code ? ` ${row.error_code}` : ''}`).join(', ') || 'no rows',
          rows.length > 0,
        );
      },
    },
    {
      id: 'q3-outbox',
      title: 'Query 3: the run’s outbox grouped by status',
      why: 'What the run promised to tell the outside world, and whether it was sent, decides what must be undone or resent.',
      sql: [forensicQueries.outbox],
      async run(ctx, state) {
        const rows = state.runId ? await query<{ status: string; n: number }>(ctx, forensicQueries.outbox, [state.runId]) : [];
        state.outbox = rows;
        ctx.observe('q3_outbox', rows.map((row) => `${row.n} ${row.status}`).join(', ') || 'no rows');
      },
    },
    {
      id: 'q4-events',
      title: 'Query 4: the run’s agent_events ordered by id',
      why: 'The append-only events are the run’s own account of what happened, in order.',
      sql: [forensicQueries.events],
      async run(ctx, state) {
        const rows = state.runId ? await query<EventRow & Record<string, unknown>>(ctx, forensicQueries.events, [state.runId]) : [];
        state.events = rows;
        ctx.observe('q4_agent_events', rows.map((row) => row.event_type).join(', ') || 'no rows', rows.length > 0);
      },
    },
    {
      id: 'report',
      title: 'Fill the six-line report',
      why: 'Run, timeline, failed step, side effects, root cause, next action: each line from the rows above, none from memory.',
      sql: [
        'select idempotency_key from expenses where tenant_id = $1 and idempotency_key = any($2)',
        'select id, status, locked_until from pending_transactions where claimed_by = $1 or processed_by = $1',
      ],
      async run(ctx, state) {
        const { run, calls, outbox, events } = state;
        const effects = run ? await readSideEffects(ctx, run, calls, outbox) : undefined;
        const report = buildReport(run, calls, events, effects);
        const populated = report.lines.filter((line) => line !== null).length;
        for (const [index, line] of report.lines.entries()) {
          ctx.observe(`report_line_${index + 1}`, line ?? '(cannot be filled)', line !== null);
          if (line) ctx.notes.push(line);
        }
        ctx.observe('report_populated', populated, populated === 6 && report.missing.length === 0);
        if (report.missing.length > 0) ctx.observe('report_missing', report.missing, false);
        state.report = report;
        if (state.evidenceFolder) {
          const file = path.join(state.evidenceFolder, 'forensic-report.md');
          await writeFileAtomic(
            file,
            renderReport(
              state.runId,
              [
                ['Query 1: the runs row', forensicQueries.run, run ? [run] : []],
                ['Query 2: tool_calls joined to turns and runs', forensicQueries.calls, calls],
                ['Query 3: outbox grouped by status', forensicQueries.outbox, outbox],
                ['Query 4: agent_events ordered by id', forensicQueries.events, events],
                ['Side effects of the run', 'expenses by the run’s idempotency keys; pending_transactions by the run’s worker', effects ?? null],
              ],
              report,
            ),
          );
          ctx.observe('report_file', file);
        }
      },
    },
  ],
  verdict: forensicsVerdict,
};
