// Drill 9, forensics_drill (Lesson 9, forensics). A real run fails: a pending
// refund of -12.50 is claimed and written by a Worker, the database refuses the
// expense (check expenses_amount_positive, 23514) and the tool server journals
// the run as failed. Then, from the database alone and scoped to that run_id, the
// four forensic queries (the runs row; tool_calls joined to turns and runs; the
// outbox grouped by status; agent_events ordered by id) and the six-line report:
// run, timeline, failed step, side effects, root cause in one sentence taken
// from the failing call's error, and the recommended next action. Without the
// run's agent_events the report cannot be built, and the drill says so.
import type { RunRow } from '../reconciler/actions.js';
import path from 'node:path';
import { startWorker, jsonLines } from '../reconciler/launch.js';
import { errorMessage, inTransaction, sqlState, withPgClient } from '../postgres/pg.js';
import { writeFileAtomic } from '../util/fs.js';
import { withEvidence } from './evidence.js';
import { createDrillTenant, insertPending, type DrillTenant } from './inputs.js';
import { CouldNotDetermine } from './runner.js';
import { countWord, query } from './sql.js';
import type { Drill, DrillContext } from './types.js';

/** The input that makes the run fail: a refund, which the expenses check refuses. */
export const failingInput = { amount_cents: -1250, description: 'Refund: returned monitor' } as const;

const workerExitTimeoutMs = 30_000;

// The four queries, each scoped to one run_id.
export const forensicQueries = {
  run: `select id, tenant_id, worker, status, total_turns, error,
       to_json(started_at) #>> '{}' as started_at, to_json(finished_at) #>> '{}' as finished_at
  from runs
 where id = $1`,
  calls: `select c.turn_no, t.status as turn_status, c.call_no, c.tool, c.status, c.arguments,
       c.error, c.error_code, to_json(c.started_at) #>> '{}' as started_at,
       to_json(c.finished_at) #>> '{}' as finished_at, c.duration_ms, r.status as run_status
  from tool_calls c
  join turns t on t.id = c.turn_id
  join runs r on r.id = c.run_id
 where c.run_id = $1
 order by c.turn_no, c.call_no, c.id`,
  outbox: `select status, count(*)::int as n
  from outbox
 where run_id = $1
 group by status
 order by status`,
  events: `select id::text as id, turn_no, event_type, detail, to_json(created_at) #>> '{}' as created_at
  from agent_events
 where run_id = $1
 order by id`,
} as const;

/** The runs row, as the tool server's journal reads it too. */
export type { RunRow };

export interface CallRow {
  turn_no: number;
  turn_status: string;
  call_no: number;
  tool: string;
  status: string;
  arguments: Record<string, unknown>;
  error: string | null;
  error_code: string | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  run_status: string;
}

export interface EventRow {
  id: string;
  turn_no: number | null;
  event_type: string;
  detail: Record<string, unknown>;
  created_at: string;
}

export interface SideEffects {
  /** Expenses rows of the run's write calls (by their idempotency keys). */
  expenses: string[];
  outbox: Array<{ status: string; n: number }>;
  /** Pending transactions the run's Worker claimed or processed. */
  claims: Array<{ id: string; status: string; locked_until: string | null }>;
}

interface WorkerOutcome {
  exitCode: number | null;
  signal: string | null;
  runId: string | undefined;
  /** The Worker's own call_failed line, if it printed one. */
  failed: { turn?: unknown; call?: unknown; tool?: unknown; error?: unknown; error_code?: unknown } | undefined;
}

export interface ForensicReport {
  /** The six lines, null where the rows to fill one are missing. */
  lines: Array<string | null>;
  /** Why the report cannot be built, when it cannot. */
  missing: string[];
  nextAction: string | undefined;
}

const time = (iso: string | null) => (iso ? (/T(\d\d:\d\d:\d\d(?:\.\d+)?)/.exec(iso)?.[1] ?? iso) : 'never');

/** What to do next, from the failing call's SQLSTATE. Every retry keeps the run's idempotency keys. */
export function nextAction(code: string | null, detail: { constraint?: string; input?: string }): { line: string; short: string } {
  const cls = code?.slice(0, 2);
  if (cls === '23') {
    const what = [detail.input, detail.constraint ? `refused by ${detail.constraint}` : undefined].filter(Boolean).join(', ');
    return {
      line: `fix the input${what ? ` (${what})` : ''} and retry with same idempotency keys`,
      short: 'fix the input, then retry with same idempotency keys',
    };
  }
  if (code === '42501') {
    return {
      line: "grant the Worker role the privilege it was refused, then retry with same idempotency keys",
      short: 'grant the missing privilege, then retry with same idempotency keys',
    };
  }
  if (code && (['40001', '40P01', '55P03'].includes(code) || cls === '08' || cls === '57')) {
    return { line: 'retry with same idempotency keys (the failure was transient)', short: 'retry with same idempotency keys' };
  }
  return {
    line: `investigate SQLSTATE ${code ?? 'unknown'} in the failing call's error, then retry with same idempotency keys`,
    short: 'investigate, then retry with same idempotency keys',
  };
}

/** The six-line report from the four queries' rows (and the side effects read beside them). */
export function buildReport(run: RunRow | undefined, calls: CallRow[], events: EventRow[], effects: SideEffects | undefined): ForensicReport {
  const missing: string[] = [];
  if (!run) missing.push('no runs row for the run');
  if (calls.length === 0) missing.push('no tool_calls rows for the run');
  if (events.length === 0) missing.push('no agent_events rows for the run');
  const failedCall = calls.find((call) => call.status === 'failed');
  if (run && !failedCall) missing.push(`no failed tool call (run status ${run.status})`);
  const toolFailed = events.find((event) => event.event_type === 'tool_failed');
  const runFailed = events.find((event) => event.event_type === 'run_failed');
  if (events.length > 0 && !toolFailed) missing.push('no tool_failed event');
  if (events.length > 0 && !runFailed) missing.push('no run_failed event');
  if (failedCall && toolFailed && (toolFailed.detail.error_code ?? null) !== failedCall.error_code) {
    missing.push(
      `the tool_failed event says SQLSTATE ${String(toolFailed.detail.error_code)}, the tool call ${String(failedCall.error_code)}`,
    );
  }

  const runLine = run
    ? `Run: ${run.id} for tenant ${run.tenant_id} on worker ${run.worker}, status ${run.status}, ` +
      `started ${run.started_at}, finished ${run.finished_at ?? 'never'} (${run.total_turns} turn${run.total_turns === 1 ? '' : 's'} planned).`
    : null;

  let timeline: string | null = null;
  if (calls.length > 0 && events.length > 0) {
    const turns = new Map<number, CallRow[]>();
    for (const call of calls) turns.set(call.turn_no, [...(turns.get(call.turn_no) ?? []), call]);
    const parts = [...turns.entries()].map(
      ([turn, rows]) =>
        `turn ${turn} (${rows[0]!.turn_status}): ` +
        rows
          .map((call) => `call ${call.call_no} ${call.tool} ${call.status} ${time(call.started_at)}-${time(call.finished_at)} (${call.duration_ms ?? '?'} ms)`)
          .join(', '),
    );
    const trail = events.map((event) => {
      const tool = event.detail.tool === undefined ? '' : ` ${String(event.detail.tool)}`;
      return `${event.event_type}${tool} ${time(event.created_at)}`;
    });
    timeline = `Timeline: ${parts.join('; ')}; events by id: ${trail.join(', ')}.`;
  }

  const failedStep = failedCall
    ? `Failed step: turn ${failedCall.turn_no}, call ${failedCall.call_no}, tool ${failedCall.tool}, SQLSTATE ${failedCall.error_code ?? 'none'}.`
    : null;

  let sideEffects: string | null = null;
  if (effects && run) {
    const outbox = effects.outbox.length > 0 ? effects.outbox.map((row) => `${row.n} ${row.status}`).join(', ') : 'no rows';
    const claims =
      effects.claims.length > 0
        ? effects.claims
            .map((claim) => `${claim.id} ${claim.status}${claim.status === 'claimed' ? ` (lease until ${claim.locked_until ?? '?'})` : ''}`)
            .join(', ')
        : 'none';
    sideEffects =
      `Side effects: ${effects.expenses.length} expenses row${effects.expenses.length === 1 ? '' : 's'} written, ` +
      `outbox ${outbox}, claims by ${run.worker}: ${claims}.`;
  }

  let rootCause: string | null = null;
  let next: { line: string; short: string } | undefined;
  if (failedCall?.error) {
    const args = failedCall.arguments ?? {};
    const subject =
      typeof args.transaction_id === 'string'
        ? `pending transaction ${args.transaction_id}${typeof args.amount_cents === 'number' ? ` (amount_cents ${args.amount_cents})` : ''}`
        : `its input`;
    const error = failedCall.error.replace(/\s+/g, ' ').replace(/[.\s]+$/, '');
    rootCause = `Root cause: the ${failedCall.tool} of ${subject} was refused by the database with SQLSTATE ${failedCall.error_code ?? 'unknown'}: ${error}.`;
    const constraint = /constraint "([^"]+)"/.exec(failedCall.error)?.[1];
    next = nextAction(failedCall.error_code, {
      constraint,
      input: typeof args.transaction_id === 'string' && typeof args.amount_cents === 'number'
        ? `${args.transaction_id} has amount_cents ${args.amount_cents}`
        : undefined,
    });
    const keys = calls
      .filter((call) => typeof call.arguments?.idempotency_key === 'string')
      .map((call) => String(call.arguments.idempotency_key));
    next = { ...next, line: `${next.line}${keys.length > 0 ? ` (${[...new Set(keys)].join(', ')})` : ''}` };
  }
  const nextLine = next ? `Recommended next action: ${next.line}.` : null;

  // The timeline needs the run's events: they are its own account, in order.
  const lines = [runLine, timeline, failedStep, sideEffects, rootCause, nextLine];
  return { lines, missing, nextAction: next?.short };
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

function renderReport(runId: string | undefined, sections: Array<[string, string, unknown]>, report: ForensicReport): string {
  const out: string[] = [`# Forensic report for run ${runId ?? '(none)'}`, ''];
  for (const [title, sql, rows] of sections) {
    out.push(`## ${title}`, '', '```sql', sql, '```', '', '```json', JSON.stringify(rows, null, 2), '```', '');
  }
  out.push('## Six-line report', '');
  for (const [index, line] of report.lines.entries()) out.push(`${index + 1}. ${line ?? '(cannot be filled)'}`);
  if (report.missing.length > 0) out.push('', `Cannot be built: ${report.missing.join('; ')}.`);
  return `${out.join('\n')}\n`;
}

export const forensicsDrill: Drill = {
  number: 9,
  key: 'forensics_drill',
  title: 'Forensics',
  lesson: 9,
  habit: 'forensics by run_id (journal and events)',
  tables: ['runs', 'tool_calls', 'agent_events', 'outbox'],
  breakDescription: 'the tool server writes no agent_events rows: the failed run has no event trail and the report cannot be built',
  fix:
    'journal every tool call (runs, turns, tool_calls with error and SQLSTATE) and append its agent_events rows ' +
    '(tool_called, tool_failed, run_failed) in the same transaction as the call’s outcome, so any failed run can be rebuilt by run_id',
  steps: [
    {
      id: 'tenant',
      title: 'Make a tenant for this drill',
      why: 'The failing run works on a tenant of its own, so its rows and its failure disturb no other drill.',
      async run(ctx) {
        ctx.observations.set('drill_tenant', await createDrillTenant(ctx, 'forensics'));
      },
    },
    {
      id: 'input',
      title: 'Queue a refund the expenses table will refuse',
      why: 'A real failure, not a simulated one: pending_transactions accepts a negative amount, expenses (check amount_cents > 0) does not.',
      async run(ctx) {
        const tenant = ctx.observations.get('drill_tenant') as DrillTenant;
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
        ctx.observations.set('pending_id', id);
      },
    },
    {
      id: 'tool-server',
      title: 'Start the tool server',
      why: 'The tool server journals every call of the run: runs, turns, tool_calls and agent_events.',
      async run(ctx) {
        const server = await ctx.system.toolServer({ breaks: ctx.broken ? { noEvents: true } : {} });
        ctx.defer(() => ctx.system.stop(server.name));
        ctx.observations.set('tools', server);
        ctx.observe('tool_server', server.url.replace(/\/mcp$/, ''));
      },
    },
    {
      id: 'failed-run',
      title: 'Run a Worker until its run fails',
      why: 'The Worker claims the refund and writes it; the database refuses the write and the run is journaled as failed.',
      async run(ctx) {
        const tenant = ctx.observations.get('drill_tenant') as DrillTenant;
        const tools = ctx.observations.get('tools') as { url: string; token: string };
        const supervisor = ctx.system.supervisor();
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
            await startWorker(supervisor, {
              name: tenant.worker,
              tenant: tenant.id,
              tools,
              pace_ms: Math.min(ctx.options.paceMs, 500),
              turns: 1,
            });
            ctx.defer(() => ctx.system.stop(tenant.worker));
            let timer: NodeJS.Timeout | undefined;
            const exited = await Promise.race([
              supervisor.waitForExit(tenant.worker),
              new Promise<undefined>((resolve) => {
                timer = setTimeout(() => resolve(undefined), workerExitTimeoutMs);
              }),
            ]).finally(() => clearTimeout(timer));
            if (!exited) {
              await ctx.system.stop(tenant.worker);
              throw new Error(`the Worker did not exit within ${workerExitTimeoutMs / 1000} s`);
            }
            const lines = jsonLines(supervisor, tenant.worker);
            const started = lines.find((line) => line.event === 'run_started');
            const failed = lines.find((line) => line.event === 'call_failed');
            outcome = {
              exitCode: exited.exitCode ?? null,
              signal: exited.signal ?? null,
              runId: typeof started?.run_id === 'string' ? started.run_id : undefined,
              failed: failed ? { turn: failed.turn, call: failed.call, tool: failed.tool, error: failed.error, error_code: failed.error_code } : undefined,
            };
            for (const line of exited.recentLines.slice(-10)) log(`worker: ${line}`);
            log(`worker exited with code ${String(outcome.exitCode)}${outcome.signal ? ` (${outcome.signal})` : ''}`);
            // The action did what it set out to do when the Worker reports a failed call (exit 1).
            return outcome.exitCode === 1 ? 0 : 1;
          },
        );
        ctx.observations.set('evidence_folder', result.folder);
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
        ctx.observations.set('worker_outcome', outcome);
      },
    },
    {
      id: 'q1-run',
      title: 'Query 1: the runs row',
      why: 'Every investigation starts from one run_id: who ran it, for whom, how it ended and when.',
      sql: [forensicQueries.run],
      async run(ctx) {
        const tenant = ctx.observations.get('drill_tenant') as DrillTenant;
        const outcome = ctx.observations.get('worker_outcome') as WorkerOutcome;
        // The run is found by the Worker's name in the journal; the Worker's own line says which it started.
        const found = await query<{ id: string }>(
          ctx,
          'select id from runs where worker = $1 order by started_at desc, id desc limit 1',
          [tenant.worker],
        );
        const runId = found[0]?.id ?? outcome.runId;
        ctx.observe('run_id', runId ?? 'none', found[0] !== undefined);
        ctx.observations.set('forensic_run_id', runId);
        const rows = runId ? await query<RunRow & Record<string, unknown>>(ctx, forensicQueries.run, [runId]) : [];
        ctx.observations.set('q_run', rows);
        ctx.observe('q1_runs_row', rows[0] ? `status ${rows[0].status}, error ${rows[0].error ?? 'none'}` : 'no row', rows.length === 1);
      },
    },
    {
      id: 'q2-calls',
      title: 'Query 2: tool_calls joined to turns and runs',
      why: 'The calls in order, with their status, timings, error and SQLSTATE, show where the run stopped.',
      sql: [forensicQueries.calls],
      async run(ctx) {
        const runId = ctx.observations.get('forensic_run_id') as string | undefined;
        const rows = runId ? await query<CallRow & Record<string, unknown>>(ctx, forensicQueries.calls, [runId]) : [];
        ctx.observations.set('q_calls', rows);
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
      async run(ctx) {
        const runId = ctx.observations.get('forensic_run_id') as string | undefined;
        const rows = runId ? await query<{ status: string; n: number }>(ctx, forensicQueries.outbox, [runId]) : [];
        ctx.observations.set('q_outbox', rows);
        ctx.observe('q3_outbox', rows.map((row) => `${row.n} ${row.status}`).join(', ') || 'no rows');
      },
    },
    {
      id: 'q4-events',
      title: 'Query 4: the run’s agent_events ordered by id',
      why: 'The append-only events are the run’s own account of what happened, in order.',
      sql: [forensicQueries.events],
      async run(ctx) {
        const runId = ctx.observations.get('forensic_run_id') as string | undefined;
        const rows = runId ? await query<EventRow & Record<string, unknown>>(ctx, forensicQueries.events, [runId]) : [];
        ctx.observations.set('q_events', rows);
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
      async run(ctx) {
        const runId = ctx.observations.get('forensic_run_id') as string | undefined;
        const run = (ctx.observations.get('q_run') as RunRow[])[0];
        const calls = ctx.observations.get('q_calls') as CallRow[];
        const outbox = ctx.observations.get('q_outbox') as Array<{ status: string; n: number }>;
        const events = ctx.observations.get('q_events') as EventRow[];
        let effects: SideEffects | undefined;
        if (run) {
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
            `select id, status, to_json(locked_until) #>> '{}' as locked_until
               from pending_transactions where claimed_by = $1 or processed_by = $1 order by id`,
            [run.worker],
          );
          effects = { expenses: expenses.map((row) => row.idempotency_key), outbox, claims };
        }
        const report = buildReport(run, calls, events, effects);
        const populated = report.lines.filter((line) => line !== null).length;
        for (const [index, line] of report.lines.entries()) {
          ctx.observe(`report_line_${index + 1}`, line ?? '(cannot be filled)', line !== null);
          if (line) ctx.notes.push(line);
        }
        ctx.observe('report_populated', populated, populated === 6 && report.missing.length === 0);
        if (report.missing.length > 0) ctx.observe('report_missing', report.missing, false);
        ctx.observations.set('report', report);
        const folder = ctx.observations.get('evidence_folder') as string | undefined;
        if (folder) {
          const file = path.join(folder, 'forensic-report.md');
          await writeFileAtomic(
            file,
            renderReport(
              runId,
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
  verdict(ctx) {
    const o = ctx.observations;
    const outcome = o.get('worker_outcome') as WorkerOutcome | undefined;
    const runId = o.get('forensic_run_id') as string | undefined;
    const run = ((o.get('q_run') as RunRow[] | undefined) ?? [])[0];
    const events = (o.get('q_events') as EventRow[] | undefined) ?? [];
    const report = o.get('report') as ForensicReport | undefined;
    const calls = (o.get('q_calls') as CallRow[] | undefined) ?? [];
    const fail = (reason: string) => ({ verdict: 'fail' as const, evidence: reason, reason });

    if (!outcome) return fail('no run was made to investigate');
    const workerSaid = outcome.failed
      ? ` (the Worker's call failed: ${String(outcome.failed.error)})`
      : '';
    if (outcome.exitCode === 0) {
      return fail(
        `no failed run to investigate: the Worker finished its run (exit 0), so the database accepted an expense of ${failingInput.amount_cents} cents`,
      );
    }
    if (!run) {
      return fail(
        `the failed run ${runId ?? '(no run_id)'} left no runs row: the journal recorded nothing, the forensic report cannot be built${workerSaid}`,
      );
    }
    if (run.status !== 'failed') {
      return fail(`run ${run.id} is ${run.status}, not failed (Worker exit ${String(outcome.signal ?? outcome.exitCode)})${workerSaid}`);
    }
    if (events.length === 0) {
      return fail(`run ${run.id} has no agent_events rows: the forensic report cannot be built (no event trail for the timeline or the root cause)`);
    }
    if (!report) return fail(`the report for run ${run.id} was not assembled`);
    const populated = report.lines.filter((line) => line !== null).length;
    if (report.missing.length > 0 || populated !== 6) {
      return fail(
        `the forensic report for run ${run.id} cannot be built: ${report.missing.join('; ') || `${countWord(populated)} of six lines populated`}`,
      );
    }
    const failed = calls.find((call) => call.status === 'failed')!;
    const capital = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);
    return {
      verdict: 'pass',
      evidence:
        `Forensic report assembled for run_id ${run.id.slice(0, 4)}.... ${capital(countWord(populated))} lines populated ` +
        `from ${calls.length} tool_calls and ${events.length} agent_events rows. ` +
        `Root cause named in one sentence (${failed.tool} refused with SQLSTATE ${failed.error_code ?? 'unknown'}). ` +
        `Recommended next action: ${report.nextAction ?? 'none'}.`,
    };
  },
};
