// The run journal as drill 2 reads it (src/drills/run-journal-resume-drill.ts): its
// plan (turns, the crash turn, the Worker's name), the run's calls through turns,
// the crash signature, the resume latency (on the database's clock), the journal
// privileges the Worker role needs, and the drill's state.
import type { ProfileNames } from '../postgres/profile/index.js';
import { errorMessage, sqlState } from '../postgres/pg.js';
import { empty, type Identifier, sql, type Sql } from '../postgres/sql.js';
import { jsonLines, type WorkerOptions } from '../reconciler/launch.js';
import { type TenantState, type ToolServerState } from './common-steps.js';
import { query } from './sql.js';
import type { DrillContext } from './types.js';
import type { OperatorSide } from './run-journal-their-side.js';

export const turns = 5;
export const crashTurn = 3;
export const worker = 'worker';

export interface CallRow {
  id: string;
  turn_no: number;
  call_no: number;
  tool: string;
  status: string;
}

/**
 * The run's tool calls, each with its turn's number, reached through turns. In the
 * order they were made: by turn and call number, then (a call made again after a
 * crash) by when it started, when the target records that.
 */
export function callsQuery(n: ProfileNames, runId: unknown): Sql {
  const c = n.tool_calls;
  const t = n.turns;
  const started = c.started_at ? sql`c.${c.started_at}, ` : empty;
  return sql`select c.${c.key}::text as id, t.${t.number} as turn_no, c.${c.number} as call_no, c.${c.tool} as tool, c.${c.status} as status
               from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn}
              where t.${t.run} = ${runId}
              order by t.${t.number}, c.${c.number}, ${started}c.${c.key}`;
}

/** The runs row's status, and its finished_at when the target records one. */
export function runSignature(n: ProfileNames, runId: unknown): Sql {
  const r = n.runs;
  const finished = r.finished_at ? sql`, ${r.finished_at}::text as finished_at` : empty;
  return sql`select ${r.status} as status${finished} from ${r.table} where ${r.key} = ${runId}`;
}

export async function calls(ctx: DrillContext, runId: string): Promise<CallRow[]> {
  return query<CallRow>(ctx, callsQuery(ctx.profile.names, runId));
}

/**
 * The database's clock now, as text that keeps its microseconds. clock_timestamp(),
 * not now(): the restart is timed on the clock the journal's started_at is written
 * with (the reference tool server writes clock_timestamp(), a default of now() is
 * the same clock), never on Node's, which may disagree with the server's.
 */
export async function databaseClock(ctx: DrillContext): Promise<string> {
  const [row] = await query<{ at: string }>(ctx, sql`select clock_timestamp()::text as at`);
  if (!row) throw new Error('select clock_timestamp() returned no row');
  return row.at;
}

/** How long after the restart the Worker resumed, or why that was not recorded. */
export type ResumeLatency = { ms: number; call: string; startedAt: string } | { unrecorded: string };

/**
 * The restart (the database's clock read just before the Worker was spawned) to the
 * started_at of the run's first tool call journaled after it (a call the journal did
 * not hold at the kill), both on the database's clock.
 */
export async function resumeLatency(ctx: DrillContext, runId: string, atCrash: CallRow[], restartedAt: string | undefined): Promise<ResumeLatency> {
  const c = ctx.profile.names.tool_calls;
  const t = ctx.profile.names.turns;
  if (!c.started_at) return { unrecorded: `the profile maps no started_at for ${c.tableName}` };
  if (!restartedAt) return { unrecorded: 'the restart was not timed' };
  const known = atCrash.map((call) => call.id);
  let rows;
  try {
    rows = await query<{ turn_no: number; call_no: number; tool: string; started_at: string | null; ms: number | null }>(
      ctx,
      sql`select t.${t.number} as turn_no, c.${c.number} as call_no, c.${c.tool} as tool, c.${c.started_at}::text as started_at,
                 (extract(epoch from (c.${c.started_at} - ${restartedAt}::timestamptz)) * 1000)::float8 as ms
            from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn}
           where t.${t.run} = ${runId} and not (c.${c.key}::text = any(${known}::text[]))
           order by c.${c.started_at} nulls last, c.${c.key}
           limit 1`,
    );
  } catch (error) {
    const code = sqlState(error);
    return { unrecorded: `${c.tableName}.${c.started_at.name} could not be read as a time${code ? ` (SQLSTATE ${code})` : ''}: ${errorMessage(error)}` };
  }
  const [first] = rows;
  if (!first) return { unrecorded: `no call of the run was journaled after the restart` };
  const call = `turn ${first.turn_no} call ${first.call_no} (${first.tool})`;
  if (first.ms === null || first.started_at === null) return { unrecorded: `${call}, the first call after the restart, has no ${c.started_at.name}` };
  if (first.ms < 0) {
    return { unrecorded: `${call}, the first call after the restart, has ${c.started_at.name} ${first.started_at}, ${Math.round(-first.ms)} ms before the restart on the database's clock` };
  }
  return { ms: first.ms, call, startedAt: first.started_at };
}

/** The latency as the evidence line appends it. */
export function resumedAfter(latency: ResumeLatency | undefined): string {
  if (!latency) return 'resume latency not recorded: the restart was not timed';
  return 'ms' in latency ? `resumed ${Math.round(latency.ms)} ms after the restart` : `resume latency not recorded: ${latency.unrecorded}`;
}

/** The privileges the Worker's journal needs on each table (the tool server writes it as the worker role). */
export function journalPrivileges(n: ProfileNames): Array<readonly [{ table: Identifier; tableName: string }, string]> {
  return [
    [n.runs, 'INSERT'],
    [n.runs, 'UPDATE'],
    [n.turns, 'INSERT'],
    [n.turns, 'UPDATE'],
    [n.tool_calls, 'INSERT'],
    [n.tool_calls, 'UPDATE'],
    [n.events, 'INSERT'],
  ];
}

/** `<PRIVILEGE> on <table>` for each journal privilege the role lacks (a missing table counts as lacking it). */
export async function missingJournalPrivileges(ctx: DrillContext, role: string): Promise<string[]> {
  const wanted = journalPrivileges(ctx.profile.names);
  // Each table by its quoted, schema-qualified name (what to_regclass reads) and by its own name (what the line says).
  const rows = await query<{ missing: string }>(
    ctx,
    sql`select p.privilege || ' on ' || p.shown as missing
          from unnest(${wanted.map(([part]) => part.table.toString())}::text[], ${wanted.map(([part]) => part.tableName)}::text[],
                      ${wanted.map(([, privilege]) => privilege)}::text[]) with ordinality as p(table_name, shown, privilege, n)
         where to_regclass(p.table_name) is null or not has_table_privilege(${role}, to_regclass(p.table_name), p.privilege)
         order by p.n`,
  );
  return rows.map((row) => row.missing);
}

/** The Worker's call that failed, as its call_failed line said. */
export interface FailedCall {
  turn: number;
  call: number;
  tool: string;
  sqlstate: string | null;
  error: string;
}

/**
 * Why the Worker ended before it could be killed mid-turn: the call that failed
 * (its SQLSTATE) and the journal privileges the worker role lacks, observed and
 * said in one line. Undefined while the Worker still runs (then the wait timed out).
 */
export async function endedBeforeTheKill(ctx: DrillContext): Promise<string | undefined> {
  const sup = ctx.system.supervisor();
  const info = sup.get(worker);
  if (!info || info.state === 'running' || info.state === 'starting') return undefined;
  const line = jsonLines(sup, worker).filter((entry) => entry.event === 'call_failed').at(-1);
  const failed: FailedCall | undefined = line && {
    turn: Number(line.turn),
    call: Number(line.call),
    tool: String(line.tool),
    sqlstate: typeof line.error_code === 'string' ? line.error_code : null,
    error: String(line.error),
  };
  const missing = await missingJournalPrivileges(ctx, ctx.roles.worker);
  ctx.observe('worker_call_failed', failed ?? 'none', failed === undefined);
  ctx.observe('journal_privileges_missing', missing, missing.length === 0);
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  const call = failed
    ? `: its ${failed.tool} call (turn ${failed.turn}, call ${failed.call}) failed with SQLSTATE ${failed.sqlstate ?? 'unknown'} ` +
      `(${failed.error.replace(/\s*\[SQLSTATE \w+\]$/, '')})`
    : `: ${info.recentLines.at(-1) ?? 'no output'}`;
  const grants = missing.length > 0 ? `; ${ctx.roles.worker} lacks ${missing.join(', ')}: the run journal cannot be written` : '';
  return `the Worker ${how} before turn ${crashTurn}${call}${grants}`;
}

/** The Worker's first line after the restart: `run_resumed` (the fix) or `run_started` (the break). */
export interface RestartLine {
  event: string;
  run_id?: string;
  from_turn?: number;
}


export interface State extends TenantState, ToolServerState {
  /** The operator's Worker side when the profile declares their Worker; undefined on the reference one. */
  operator?: OperatorSide;
  /** How the Worker was started, so the restart starts the same Worker again (without the stall). */
  workerOptions?: WorkerOptions;
  /** The run the Worker began and was killed in. */
  runId?: string;
  /** The Worker's pid before the kill. */
  workerPid?: number;
  /** How the Worker ended: its signal, or `exit <code>`. */
  killedBy?: string;
  /** The journal's last call at the kill, as `turn N call M (tool, status)`. */
  crashPoint?: string;
  /** tool_calls of the run at the kill. */
  callsAtCrash: CallRow[];
  /** `status=..., finished_at=...` of the runs row after the kill (or 'no runs row'). */
  crashSignature?: string;
  /** Whether that row is the crash signature: status running, and finished_at null when the target records it. */
  crashSignatureSeen: boolean;
  /** Turns completed before the crash. */
  completedBeforeCrash: number[];
  /** The first turn not completed at the crash (null when every turn was). */
  incompleteTurn?: number | null;
  /** What the restarted Worker said it did first; undefined when it said nothing in time. */
  restartLine?: RestartLine;
  /** The restart's moment: the database's clock (clock_timestamp()) read by the drill just before it spawned the Worker again. */
  restartedAt?: string;
  /** From the restart to the first call of the run journaled after it, on the database's clock. */
  resumeLatency?: ResumeLatency;
  /** tool_calls of the run written after the restart. */
  newCalls: CallRow[];
  /** New calls in turns completed before the crash, as `turn N call M (tool)`. */
  redoneEarlierTurns: string[];
  /** Calls completed in the crashed turn that ran again, as `call M (tool)`. */
  repeatedCrashTurnCalls: string[];
  /** Completed turns of the run at the end. */
  turnsCompleted: number;
  /** The completed turns' numbers at the end, in order. */
  completedTurns: number[];
  /** The run's total_turns, as its runs row says (undefined when the target records none). */
  totalTurns?: number;
  /** How many times a restarted Worker said it resumed this run (each closes one gap in the journal). */
  resumes: number;
  /** The run's status at the end (undefined when the row is missing). */
  runStatus?: string;
  /** Whether that status is the profile's finished value. */
  runFinished: boolean;
}

/** The completed turns against 1..total: a continuous timeline, or the turns missing from it. */
export function timeline(completed: number[], total: number): string {
  const missing = Array.from({ length: total }, (_, index) => index + 1).filter((turn) => !completed.includes(turn));
  return missing.length === 0 ? 'continuous timeline' : `timeline missing turn${missing.length === 1 ? '' : 's'} ${list(missing)}`;
}

export function list(numbers: number[]): string {
  if (numbers.length <= 1) return numbers.join('');
  return `${numbers.slice(0, -1).join(', ')} and ${numbers.at(-1)}`;
}
