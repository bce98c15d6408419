// Drill 9, forensics_drill (Lesson 9, forensics). A real run fails: a pending
// refund of -12.50 is claimed and written by a Worker, the database refuses the
// expense (check expenses_amount_positive, 23514) and the tool server journals
// the run as failed. Then, from the database alone and scoped to that run_id, the
// four forensic queries (the runs row; tool_calls joined to turns and runs; the
// outbox grouped by status; agent_events ordered by id) and the six-line report
// (report.ts). Without the run's agent_events the report cannot be built, and the
// drill says so. Every name comes from the profile (the reference names above); a
// column the target does not have makes the report say less, never guess.
import path from 'node:path';
import type { ProfileNames } from '../../postgres/profile/index.js';
import { errorMessage, inTransaction, sqlState, withPgClient } from '../../postgres/pg.js';
import { empty, join, raw, sql, type Sql } from '../../postgres/sql.js';
import { writeFileAtomic } from '../../util/fs.js';
import { drillTenantStep, toolServerStep, type TenantState, type ToolServerState } from '../common-steps.js';
import { naturalKeys, withEvidence } from '../evidence.js';
import { insertPending } from '../inputs.js';
import { CouldNotDetermine } from '../runner.js';
import { query, shownSql } from '../sql.js';
import { need, type Drill, type DrillContext } from '../types.js';
import {
  buildReport,
  forensicQueries,
  renderReport,
  reportNames,
  type CallRow,
  type ClaimRow,
  type EventRow,
  type ForensicReport,
  type RunRow,
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
  /** Null when the outbox has no run column (its rows cannot be scoped to the run). */
  outbox: Array<{ status: string; n: number }> | null;
  events: EventRow[];
  report?: ForensicReport;
}

/** Runs a query inside the tenant's context: expenses and pending_transactions force row-level security. */
async function asTenant<T extends Record<string, unknown>>(ctx: DrillContext, tenant: string, statement: Sql): Promise<T[]> {
  ctx.showSql(shownSql(statement));
  return withPgClient(ctx.url, (client) =>
    inTransaction(client, async () => {
      await client.query(sql`select set_config(${ctx.profile.names.setting}, ${tenant}, true)`);
      return (await client.query<T>(statement)).rows;
    }),
  );
}

/** The run's expenses by its write calls' idempotency keys. */
function expensesByKeys(n: ProfileNames, tenant: unknown, keys: unknown): Sql {
  const x = n.expenses;
  return sql`select ${x.idempotencyKey} as idempotency_key from ${x.table}
              where ${x.tenant} = ${tenant} and ${x.idempotencyKey} = any(${keys}) order by ${x.idempotencyKey}`;
}

/** The pending transactions a Worker claimed or processed; undefined when the target records neither. */
function claimsBy(n: ProfileNames, worker: unknown): Sql | undefined {
  const p = n.pending_transactions;
  const by = [p.claimed_by, p.processed_by].flatMap((column) => (column ? [sql`${column} = ${worker}`] : []));
  if (by.length === 0) return undefined;
  const lease = p.lease_until ? sql`, to_json(${p.lease_until}) #>> '{}' as locked_until` : empty;
  return sql`select p.${p.key}::text as id, ${p.status} as status${lease}
               from ${p.table} p where ${join(by, ' or ')} order by p.${p.key}`;
}

/** The run's side effects beside the four queries: expenses by its write calls' keys, claims by its Worker. */
async function readSideEffects(ctx: DrillContext, run: RunRow, calls: CallRow[], outbox: SideEffects['outbox']): Promise<SideEffects> {
  const n = ctx.profile.names;
  const keys = calls
    .filter((call) => call.tool === 'write' && typeof call.arguments?.idempotency_key === 'string')
    .map((call) => String(call.arguments.idempotency_key));
  const expenses = await asTenant<{ idempotency_key: string }>(ctx, run.tenant_id, expensesByKeys(n, run.tenant_id, keys));
  // Without a worker on the run, or a claimant column on pending_transactions, whose claims they were is not recorded.
  const claimsQuery = typeof run.worker === 'string' ? claimsBy(n, run.worker) : undefined;
  const claims = claimsQuery ? await asTenant<ClaimRow & Record<string, unknown>>(ctx, run.tenant_id, claimsQuery) : null;
  return { expenses: expenses.map((row) => row.idempotency_key), outbox, claims };
}

/** The run the journal holds for the drill's Worker: by its name, or by the drill's own tenant when runs record no worker. */
function runOfWorker(n: ProfileNames, tenant: { id: string; worker: string }): Sql {
  const r = n.runs;
  const where = r.worker ? sql`${r.worker} = ${tenant.worker}` : sql`${r.tenant} = ${tenant.id}`;
  // Qualified: a bare key in ORDER BY would name the text alias `id`.
  const order = r.started_at ? sql`r.${r.started_at} desc, r.${r.key} desc` : sql`r.${r.key} desc`;
  return sql`select r.${r.key}::text as id from ${r.table} r where ${where} order by ${order} limit 1`;
}

/** The four queries as shown before they run (the run id a parameter). */
const shownQueries = (n: ProfileNames) => forensicQueries(n, raw('$1'));

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
    drillTenantStep('forensics', 'The failing run works on a tenant of its own, so its rows and its failure disturb no other drill.', {
      look: 'tenant is a fresh drill-forensics tenant that will hold the one failing run, so every row the four queries return later belongs to this run.',
      mistake: 'Staging a failure on a shared tenant. Its other runs and outbox rows then mix into the investigation, and the side-effects line can blame rows this run never wrote.',
    }),
    {
      id: 'input',
      title: 'Queue a refund the expenses table will refuse',
      why: 'A real failure, not a simulated one: pending_transactions accepts a negative amount, expenses (a check that the amount is positive) does not.',
      hint: {
        look: 'pending_transaction shows the new id with amount_cents -1250: a refund. pending_transactions accepts it; expenses has a check that amounts are positive, so the write will fail for real.',
        mistake: 'Faking the failure by throwing in a test or killing the process. A fake failure leaves no real error or SQLSTATE, so the root-cause line has nothing true to say; a real constraint refusal (23514) does.',
      },
      async run(ctx, state) {
        const tenant = need(state.tenant, 'the drill tenant');
        let id: string | undefined;
        try {
          [id] = await insertPending(ctx, tenant.id, [failingInput]);
        } catch (error) {
          if (sqlState(error) !== '23514') throw error;
          throw new CouldNotDetermine(
            `${ctx.profile.names.pending_transactions.tableName} itself refuses an amount of ${failingInput.amount_cents} cents (${errorMessage(error)}), so no run can be made to fail on it`,
          );
        }
        ctx.observe('pending_transaction', `${id} amount_cents ${failingInput.amount_cents}`);
      },
    },
    toolServerStep({
      why: 'The tool server journals every call of the run: runs, turns, tool_calls and agent_events.',
      hint: {
        look: "tool_server is the address the failing Worker uses. This server writes the run's journal and its agent_events rows in the same transaction as each call's outcome; query 4 depends on that.",
        mistake: 'Writing events after the transaction, or as a best-effort extra call. When a call fails, its events go missing exactly when they are needed; the deliberate break shows it: no event rows, no report.',
      },
      breaks: { noEvents: true },
    }),
    {
      id: 'failed-run',
      title: 'Run a Worker until its run fails',
      why: 'The Worker claims the refund and writes it; the database refuses the write and the run is journaled as failed.',
      hint: {
        look: "worker_exit should be 1 and worker_call_failed name the write, with the check's error and [23514]. The diff shows a runs row with status failed, tool_failed and run_failed events, and no new expenses or outbox rows.",
        mistake: "Stopping at the Worker's own error output. The Worker's log is its word; the investigation must stand on what the database recorded, which is what the next four queries read.",
      },
      async run(ctx, state) {
        const tenant = need(state.tenant, 'the drill tenant');
        const tools = need(state.tools, 'the tool server');
        const n = ctx.profile.names;
        const { runs, events, outbox, expenses } = n;
        // Without a tenant column the events cannot be scoped to the drill's tenant: the oracle leaves them out
        // (query 4 still reads the run's events by run).
        const eventScope = events.tenant
          ? {
              tables: [{ name: events.tableName, filter: { [events.tenant.name]: tenant.id } }],
              expect: [`${events.tableName}:+{${events.type.name}=tool_failed}`, `${events.tableName}:+{${events.type.name}=run_failed}`],
            }
          : { tables: [], expect: [] };
        let outcome: WorkerOutcome | undefined;
        const result = await withEvidence(
          ctx,
          {
            label: `Worker ${tenant.worker} runs one turn on a refund of ${failingInput.amount_cents} cents`,
            tables: [
              { name: runs.tableName, filter: { [runs.tenant.name]: tenant.id } },
              ...eventScope.tables,
              { name: outbox.tableName, filter: { [outbox.tenant.name]: tenant.id } },
              { name: expenses.tableName, filter: { [expenses.tenant.name]: tenant.id } },
            ],
            expect: [
              `${runs.tableName}:+{${runs.tenant.name}=${JSON.stringify(tenant.id)},${runs.status.name}=${runs.values.failed}}`,
              ...eventScope.expect,
              `${expenses.tableName}:+0`,
              `${outbox.tableName}:+0`,
            ],
            // The failed run's id, the report's run_id, stays in the diff when it is a natural key.
            volatiles: naturalKeys(ctx, ['runs', 'outbox']),
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
      hint: {
        look: "run_id is the run found in the journal by the Worker's name, and q1_runs_row must show status failed with its error. Every query after this one is scoped to this run_id.",
        mistake: 'Starting from the newest rows of each table instead of one run_id. With several Workers the latest tool_calls or events belong to other runs; scope every query to the run.',
      },
      sql: (n) => [shownSql(shownQueries(n).run)],
      async run(ctx, state) {
        const n = ctx.profile.names;
        const tenant = need(state.tenant, 'the drill tenant');
        const outcome = need(state.outcome, 'the Worker outcome');
        // The run is found by the Worker's name in the journal; the Worker's own line says which it started.
        const found = await query<{ id: string }>(ctx, runOfWorker(n, tenant));
        const runId = found[0]?.id ?? outcome.runId;
        ctx.observe('run_id', runId ?? 'none', found[0] !== undefined);
        state.runId = runId;
        const rows = runId ? await query<RunRow & Record<string, unknown>>(ctx, forensicQueries(n, runId).run) : [];
        state.run = rows[0];
        const error = rows[0] && (rows[0].error === undefined ? 'not recorded' : (rows[0].error ?? 'none'));
        ctx.observe('q1_runs_row', rows[0] ? `status ${rows[0].status}, error ${error}` : 'no row', rows.length === 1);
      },
    },
    {
      id: 'q2-calls',
      title: 'Query 2: tool_calls joined to turns and runs',
      why: 'The calls in order, with their status, timings, error and SQLSTATE, show where the run stopped.',
      hint: {
        look: 'q2_tool_calls lists the calls as turn.call tool status, such as 1.1 claim completed, 1.2 write failed 23514. The first failed call is where the run stopped; nothing after it ran.',
        mistake: "Finding a run's calls by time window or a guessed column. A tool_calls row reaches its run through its turn, so the join through turns to runs is what keeps other runs' calls out.",
      },
      sql: (n) => [shownSql(shownQueries(n).calls)],
      async run(ctx, state) {
        const n = ctx.profile.names;
        const rows = state.runId ? await query<CallRow & Record<string, unknown>>(ctx, forensicQueries(n, state.runId).calls) : [];
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
      hint: {
        look: "q3_outbox groups the run's outbox rows by status. Here it should say no rows: the run failed at its write, before its queue call, so nothing was promised to the outside world.",
        mistake: 'Skipping the outbox in a post-mortem. A failed run may already have queued or sent emails: a pending row will still be sent by the relay unless someone acts, and a dispatched one cannot be unsent.',
      },
      sql: (n) => {
        const outbox = shownQueries(n).outbox;
        return outbox ? [shownSql(outbox)] : [];
      },
      async run(ctx, state) {
        const n = ctx.profile.names;
        const outbox = state.runId ? forensicQueries(n, state.runId).outbox : undefined;
        if (state.runId && !outbox) {
          state.outbox = null;
          ctx.observe('q3_outbox', `not scoped to the run: ${n.outbox.tableName} has no run column in the profile (add outbox.run)`);
          return;
        }
        const rows = outbox ? await query<{ status: string; n: number }>(ctx, outbox) : [];
        state.outbox = rows;
        ctx.observe('q3_outbox', rows.map((row) => `${row.n} ${row.status}`).join(', ') || 'no rows');
      },
    },
    {
      id: 'q4-events',
      title: 'Query 4: the run’s agent_events ordered by id',
      why: 'The append-only events are the run’s own account of what happened, in order.',
      hint: {
        look: "q4_agent_events lists the run's event types in id order, such as run_started, tool_called, tool_failed, run_failed. If it says no rows, the event trail is missing and the report cannot be built.",
        mistake: 'Rebuilding the story from the current snapshot of runs and expenses. A snapshot shows where things ended, not the order they happened in; only the event rows, in id order, give the timeline.',
      },
      sql: (n) => [shownSql(shownQueries(n).events)],
      async run(ctx, state) {
        const n = ctx.profile.names;
        const rows = state.runId ? await query<EventRow & Record<string, unknown>>(ctx, forensicQueries(n, state.runId).events) : [];
        state.events = rows;
        ctx.observe('q4_agent_events', rows.map((row) => row.event_type).join(', ') || 'no rows', rows.length > 0);
      },
    },
    {
      id: 'report',
      title: 'Fill the six-line report',
      why: 'Run, timeline, failed step, side effects, root cause, next action: each line from the rows above, none from memory.',
      hint: {
        look: 'report_line_1 to report_line_6 are run, timeline, failed step, side effects, root cause and next action, and report_populated must be 6. The root cause quotes the SQLSTATE; the next action keeps the same idempotency keys.',
        mistake: 'A root cause written from memory, like bad data. One sentence naming the call, the constraint and the SQLSTATE can be checked. And a retry with new idempotency keys could duplicate whatever did land.',
      },
      sql: (n) => {
        const claims = claimsBy(n, raw('$1'));
        return [shownSql(expensesByKeys(n, raw('$1'), raw('$2'))), ...(claims ? [shownSql(claims)] : [])];
      },
      async run(ctx, state) {
        const n = ctx.profile.names;
        const { run, calls, outbox, events } = state;
        const effects = run ? await readSideEffects(ctx, run, calls, outbox) : undefined;
        const report = buildReport(run, calls, events, effects, reportNames(n));
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
          // Each query as it ran, with the run id written in: it can be pasted into psql.
          const queries = forensicQueries(n, state.runId ?? raw('$1'));
          await writeFileAtomic(
            file,
            renderReport(
              state.runId,
              [
                ['Query 1: the runs row', shownSql(queries.run), run ? [run] : []],
                [`Query 2: ${n.tool_calls.tableName} joined to ${n.turns.tableName} and ${n.runs.tableName}`, shownSql(queries.calls), calls],
                [
                  `Query 3: ${n.outbox.tableName} grouped by status`,
                  queries.outbox ? shownSql(queries.outbox) : `-- not run: ${n.outbox.tableName} has no run column in the profile (outbox.run)`,
                  outbox,
                ],
                [`Query 4: ${n.events.tableName} ordered by ${n.events.key.name}`, shownSql(queries.events), events],
                [
                  'Side effects of the run',
                  `${n.expenses.tableName} by the run’s idempotency keys; ${n.pending_transactions.tableName} by the run’s worker`,
                  effects ?? null,
                ],
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
