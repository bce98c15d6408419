// The forensics drill's four queries, each scoped to one run_id, the shapes of
// their rows, and the six-line report built from those rows alone: run, timeline,
// failed step, side effects, root cause in one sentence taken from the failing
// call's error, and the recommended next action.
//
// The queries go through the profile's names. A column the target does not have
// is left out of the select, so its key is absent from the row (undefined), which
// the report tells from a recorded NULL: it says less, and never "never" for a
// time it cannot see.
import type { ProfileNames } from '../../postgres/profile/index.js';
import { empty, type Identifier, raw, sql, type Sql } from '../../postgres/sql.js';

/** `, <column> as <alias>` when the profile names the column; nothing otherwise (the row then lacks the key). */
function optional(table: string | undefined, column: Identifier | undefined, alias: string, wrap: (column: Sql) => Sql = (c) => c): Sql {
  if (!column) return empty;
  const ref = table ? sql`${raw(table)}.${column}` : sql`${column}`;
  return sql`, ${wrap(ref)} as ${raw(alias)}`;
}

/** A timestamp as ISO text, as the journal reads it. */
const iso = (column: Sql) => sql`to_json(${column}) #>> '{}'`;

export interface ForensicQueries {
  run: Sql;
  calls: Sql;
  /** Undefined when the outbox has no run column: its rows cannot be scoped to one run. */
  outbox: Sql | undefined;
  events: Sql;
}

/**
 * The four queries, each scoped to one run: `run` is bound as a value (pass
 * raw('$1') to show them). tool_calls reach their run through turns, which every
 * target has; the call's turn number is the turn's.
 */
export function forensicQueries(n: ProfileNames, run: unknown): ForensicQueries {
  const r = n.runs;
  const t = n.turns;
  const c = n.tool_calls;
  const o = n.outbox;
  const e = n.events;
  const runColumns = sql`${r.key}::text as id, ${r.tenant}::text as tenant_id${optional(undefined, r.worker, 'worker')}, ${r.status} as status${optional(
    undefined,
    r.total_turns,
    'total_turns',
  )}${optional(undefined, r.error, 'error')}${optional(undefined, r.started_at, 'started_at', iso)}${optional(undefined, r.finished_at, 'finished_at', iso)}`;
  const callColumns = sql`t.${t.number} as turn_no, t.${t.status} as turn_status, c.${c.number} as call_no, c.${c.tool} as tool, c.${c.status} as status, c.${c.arguments} as arguments${optional(
    'c',
    c.error,
    'error',
  )}${optional('c', c.error_code, 'error_code')}${optional('c', c.started_at, 'started_at', iso)}${optional('c', c.finished_at, 'finished_at', iso)}${optional(
    'c',
    c.duration_ms,
    'duration_ms',
  )}, r.${r.status} as run_status`;
  const turn = e.turn_number ? sql`e.${e.turn_number}` : sql`null::int`;
  return {
    run: sql`select ${runColumns}
  from ${r.table}
 where ${r.key} = ${run}`,
    calls: sql`select ${callColumns}
  from ${c.table} c
  join ${t.table} t on t.${t.key} = c.${c.turn}
  join ${r.table} r on r.${r.key} = t.${t.run}
 where t.${t.run} = ${run}
 order by t.${t.number}, c.${c.number}, c.${c.key}`,
    outbox: o.run
      ? sql`select ${o.status} as status, count(*)::int as n
  from ${o.table}
 where ${o.run} = ${run}
 group by ${o.status}
 order by ${o.status}`
      : undefined,
    // Qualified: a bare key in ORDER BY would name the text alias `id`, and order 10 before 9.
    events: sql`select e.${e.key}::text as id, ${turn} as turn_no, e.${e.type} as event_type, e.${e.payload} as detail${optional('e', e.created_at, 'created_at', iso)}
  from ${e.table} e
 where e.${e.run} = ${run}
 order by e.${e.key}`,
  };
}

/** The runs row. A key the target has no column for is absent (undefined); a recorded NULL is null. */
export interface RunRow {
  id: string;
  tenant_id: string;
  worker?: string | null;
  status: string;
  total_turns?: number | null;
  error?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
}

export interface CallRow {
  turn_no: number;
  turn_status: string;
  call_no: number;
  tool: string;
  status: string;
  arguments: Record<string, unknown>;
  error?: string | null;
  error_code?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  duration_ms?: number | null;
  run_status: string;
}

export interface EventRow {
  id: string;
  turn_no: number | null;
  event_type: string;
  detail: Record<string, unknown>;
  created_at?: string | null;
}

export interface ClaimRow {
  id: string;
  status: string;
  /** Absent when the target records no lease. */
  locked_until?: string | null;
}

export interface SideEffects {
  /** Expenses rows of the run's write calls (by their idempotency keys). */
  expenses: string[];
  /** The run's outbox rows by status; null when the outbox has no run column. */
  outbox: Array<{ status: string; n: number }> | null;
  /** Pending transactions the run's Worker claimed or processed; null when the target records no claimant. */
  claims: ClaimRow[] | null;
}

/** The tables the report names and the target's status values it reads. */
export interface ReportNames {
  expenses: string;
  tool_calls: string;
  events: string;
  /** tool_calls' value for a failed call. */
  callFailed: string;
  /** pending_transactions' value for a claimed row. */
  claimed: string;
}

export const referenceReportNames: ReportNames = {
  expenses: 'expenses',
  tool_calls: 'tool_calls',
  events: 'agent_events',
  callFailed: 'failed',
  claimed: 'claimed',
};

/** The report's names for a profile. */
export function reportNames(n: ProfileNames): ReportNames {
  return {
    expenses: n.expenses.tableName,
    tool_calls: n.tool_calls.tableName,
    events: n.events.tableName,
    callFailed: n.tool_calls.values.failed,
    claimed: n.pending_transactions.values.claimed,
  };
}

export interface ForensicReport {
  /** The six lines, null where the rows to fill one are missing. */
  lines: Array<string | null>;
  /** Why the report cannot be built, when it cannot. */
  missing: string[];
  nextAction: string | undefined;
}

const time = (iso: string | null | undefined) => (iso ? (/T(\d\d:\d\d:\d\d(?:\.\d+)?)/.exec(iso)?.[1] ?? iso) : 'never');

/** What to do next, from the failing call's SQLSTATE. Every retry keeps the run's idempotency keys. */
export function nextAction(code: string | null | undefined, detail: { constraint?: string; input?: string }): { line: string; short: string } {
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

/** "started X, finished Y": each part only when the target records it. */
function runTimes(run: RunRow): string {
  const parts = [
    run.started_at === undefined ? undefined : `started ${run.started_at ?? 'never'}`,
    run.finished_at === undefined ? undefined : `finished ${run.finished_at ?? 'never'}`,
  ].filter((part): part is string => part !== undefined);
  return parts.length > 0 ? `, ${parts.join(', ')}` : '';
}

/** One call in the timeline: its times and duration as far as the target records them. */
function callTimes(call: CallRow): string {
  const span = call.started_at === undefined && call.finished_at === undefined ? '' : ` ${time(call.started_at)}-${time(call.finished_at)}`;
  const duration = call.duration_ms === undefined ? '' : ` (${call.duration_ms ?? '?'} ms)`;
  return `${span}${duration}`;
}

/** The six-line report from the four queries' rows (and the side effects read beside them). */
export function buildReport(
  run: RunRow | undefined,
  calls: CallRow[],
  events: EventRow[],
  effects: SideEffects | undefined,
  names: ReportNames = referenceReportNames,
): ForensicReport {
  const missing: string[] = [];
  if (!run) missing.push('no runs row for the run');
  if (calls.length === 0) missing.push(`no ${names.tool_calls} rows for the run`);
  if (events.length === 0) missing.push(`no ${names.events} rows for the run`);
  const failedCall = calls.find((call) => call.status === names.callFailed);
  if (run && !failedCall) missing.push(`no failed tool call (run status ${run.status})`);
  const toolFailed = events.find((event) => event.event_type === 'tool_failed');
  const runFailed = events.find((event) => event.event_type === 'run_failed');
  if (events.length > 0 && !toolFailed) missing.push('no tool_failed event');
  if (events.length > 0 && !runFailed) missing.push('no run_failed event');
  // The call's SQLSTATE can be held against the event's only when the target records it.
  if (failedCall && toolFailed && failedCall.error_code !== undefined && (toolFailed.detail?.error_code ?? null) !== failedCall.error_code) {
    missing.push(
      `the tool_failed event says SQLSTATE ${String(toolFailed.detail?.error_code)}, the tool call ${String(failedCall.error_code)}`,
    );
  }

  const runLine = run
    ? `Run: ${run.id} for tenant ${run.tenant_id}${run.worker === undefined ? '' : ` on worker ${run.worker}`}, status ${run.status}` +
      `${runTimes(run)}` +
      `${run.total_turns === undefined ? '' : ` (${run.total_turns} turn${run.total_turns === 1 ? '' : 's'} planned)`}.`
    : null;

  let timeline: string | null = null;
  if (calls.length > 0 && events.length > 0) {
    const turns = new Map<number, CallRow[]>();
    for (const call of calls) turns.set(call.turn_no, [...(turns.get(call.turn_no) ?? []), call]);
    const parts = [...turns.entries()].map(
      ([turn, rows]) =>
        `turn ${turn} (${rows[0]!.turn_status}): ` + rows.map((call) => `call ${call.call_no} ${call.tool} ${call.status}${callTimes(call)}`).join(', '),
    );
    const trail = events.map((event) => {
      const tool = event.detail?.tool === undefined ? '' : ` ${String(event.detail.tool)}`;
      return `${event.event_type}${tool}${event.created_at === undefined ? '' : ` ${time(event.created_at)}`}`;
    });
    timeline = `Timeline: ${parts.join('; ')}; events by id: ${trail.join(', ')}.`;
  }

  const failedStep = failedCall
    ? `Failed step: turn ${failedCall.turn_no}, call ${failedCall.call_no}, tool ${failedCall.tool}` +
      `${failedCall.error_code === undefined ? ' (SQLSTATE not recorded)' : `, SQLSTATE ${failedCall.error_code ?? 'none'}`}.`
    : null;

  let sideEffects: string | null = null;
  if (effects && run) {
    const outbox =
      effects.outbox === null
        ? 'not scoped to the run (no run column)'
        : effects.outbox.length > 0
          ? effects.outbox.map((row) => `${row.n} ${row.status}`).join(', ')
          : 'no rows';
    const lease = (claim: ClaimRow) =>
      claim.status === names.claimed && claim.locked_until !== undefined ? ` (lease until ${claim.locked_until ?? '?'})` : '';
    const claims =
      effects.claims === null
        ? 'not recorded'
        : effects.claims.length > 0
          ? effects.claims.map((claim) => `${claim.id} ${claim.status}${lease(claim)}`).join(', ')
          : 'none';
    sideEffects =
      `Side effects: ${effects.expenses.length} ${names.expenses} row${effects.expenses.length === 1 ? '' : 's'} written, ` +
      `outbox ${outbox}, claims by ${run.worker ?? 'the run’s worker'}: ${claims}.`;
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
    const code = failedCall.error_code === undefined ? 'not recorded' : (failedCall.error_code ?? 'unknown');
    rootCause = `Root cause: the ${failedCall.tool} of ${subject} was refused by the database with SQLSTATE ${code}: ${error}.`;
    const constraint = /constraint "([^"]+)"/.exec(failedCall.error)?.[1];
    next = nextAction(failedCall.error_code, {
      constraint,
      input:
        typeof args.transaction_id === 'string' && typeof args.amount_cents === 'number'
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
