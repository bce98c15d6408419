// The forensics drill's four queries, each scoped to one run_id, the shapes of
// their rows, and the six-line report built from those rows alone: run, timeline,
// failed step, side effects, root cause in one sentence taken from the failing
// call's error, and the recommended next action.
import type { RunRow } from '../../reconciler/actions.js';

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

/** The report file beside the oracle evidence: each query with its rows, then the six lines. */
export function renderReport(runId: string | undefined, sections: Array<[string, string, unknown]>, report: ForensicReport): string {
  const out: string[] = [`# Forensic report for run ${runId ?? '(none)'}`, ''];
  for (const [title, sql, rows] of sections) {
    out.push(`## ${title}`, '', '```sql', sql, '```', '', '```json', JSON.stringify(rows, null, 2), '```', '');
  }
  out.push('## Six-line report', '');
  for (const [index, line] of report.lines.entries()) out.push(`${index + 1}. ${line ?? '(cannot be filled)'}`);
  if (report.missing.length > 0) out.push('', `Cannot be built: ${report.missing.join('; ')}.`);
  return `${out.join('\n')}\n`;
}
