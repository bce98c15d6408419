// Drill 2, run_journal_resume_drill (Lesson 2, run journal). A Worker runs a
// 5-turn Reconciler run and is killed with SIGKILL in the middle of turn 3. The
// journal must show the crash signature (status running, finished_at null); the
// restarted Worker must read runs, turns and tool_calls, resume from the last
// incomplete turn, finish the run, and not execute a completed call again.
// Every table, column and status value comes from the profile: tool_calls reach
// their run and turn number through turns (a target's tool_calls may have neither),
// and without a finished_at column the crash signature is the status alone.
//
// When the profile declares the operator's own Worker (processes.worker), the drill
// drives theirs (and their tool server when declared) instead: it cannot make their
// Worker stall, so it stops the Worker side at the journal gate (journal-gate.ts), a
// lock on tool_calls that lets their writes through one at a time until the journal
// shows turn 3 started and not finished, then SIGKILLs the Worker and the tool server
// there, however fast their turns are. The verdict then reads the resume from the
// journal alone (their Worker's output follows no contract).
import type { ProfileNames } from '../postgres/profile/index.js';
import { empty, type Identifier, raw, sql, type Sql } from '../postgres/sql.js';
import { jsonLines, startWorker, type WorkerOptions } from '../reconciler/launch.js';
import type { Supervisor } from '../reconciler/supervisor.js';
import { waitFor, WaitTimeout } from '../util/wait.js';
import { toolServerStep, type TenantState, type ToolServerState } from './common-steps.js';
import { withEvidence } from './evidence.js';
import { createDrillTenant, insertPending, sampleTransactions } from './inputs.js';
import { afterTheKill, describeDrive, driveToMidTurn, JournalGate, killWorkerSide } from './journal-gate.js';
import { drivesTheirWorker, hasOperator, operatorCommand, portOpen, sessionTag, startOperatorToolServer, startOperatorWorker, whose } from './operator-side.js';
import { CouldNotDetermine } from './runner.js';
import { countWord, query, shownSql } from './sql.js';
import { need, type Drill, type DrillContext } from './types.js';

const turns = 5;
const crashTurn = 3;
const worker = 'worker';

interface CallRow {
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
function callsQuery(n: ProfileNames, runId: unknown): Sql {
  const c = n.tool_calls;
  const t = n.turns;
  const started = c.started_at ? sql`c.${c.started_at}, ` : empty;
  return sql`select c.${c.key}::text as id, t.${t.number} as turn_no, c.${c.number} as call_no, c.${c.tool} as tool, c.${c.status} as status
               from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn}
              where t.${t.run} = ${runId}
              order by t.${t.number}, c.${c.number}, ${started}c.${c.key}`;
}

/** The runs row's status, and its finished_at when the target records one. */
function runSignature(n: ProfileNames, runId: unknown): Sql {
  const r = n.runs;
  const finished = r.finished_at ? sql`, ${r.finished_at}::text as finished_at` : empty;
  return sql`select ${r.status} as status${finished} from ${r.table} where ${r.key} = ${runId}`;
}

async function calls(ctx: DrillContext, runId: string): Promise<CallRow[]> {
  return query<CallRow>(ctx, callsQuery(ctx.profile.names, runId));
}

/** The privileges the Worker's journal needs on each table (the tool server writes it as the worker role). */
function journalPrivileges(n: ProfileNames): Array<readonly [{ table: Identifier; tableName: string }, string]> {
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
async function missingJournalPrivileges(ctx: DrillContext, role: string): Promise<string[]> {
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
interface FailedCall {
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
async function endedBeforeTheKill(ctx: DrillContext): Promise<string | undefined> {
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
interface RestartLine {
  event: string;
  run_id?: string;
  from_turn?: number;
}

/** The application_name of the reference tool server's sessions (src/reconciler/tool-server.ts). */
const referenceToolServerTag = 'sor-tool-server';
/** How long the operator's Worker side may take to reach turn 3, and to finish after the restart. */
const operatorTimeoutMs = 60_000;

/** The operator's Worker side as this drill drives it: their Worker, and their tool server or the reference one. */
interface OperatorSide {
  /** Evidence names: "the operator's Worker `node worker.mjs`", "the reference tool server". */
  worker: string;
  toolServer: string;
  /** Whether the tool server is the operator's (else the reference one, killed and restarted the same way). */
  theirToolServer: boolean;
  /** The application_name its sessions carry: whose writes the gate watches. */
  tag: string;
  gate?: JournalGate;
  /** Transactions the gate let through before the freeze. */
  passes?: number;
  /** The tool server's pid and how it ended at the kill. */
  toolServerPid?: number;
  toolServerKilledBy?: string;
  /** Runs of the drill tenant at the kill. */
  runsAtCrash: string[];
  /** Runs of the drill tenant begun after the restart. */
  newRuns: Array<{ id: string; status: string }>;
}

/**
 * Whose Worker side the drill drives: undefined for the reference one; the operator's
 * Worker when the profile declares one (with their tool server when declared too).
 */
function operatorSide(ctx: DrillContext): OperatorSide | undefined {
  if (!drivesTheirWorker(ctx, { drive: 'drive', breakName: 'resume off', breakOf: 'reference Worker' })) return undefined;
  const theirToolServer = hasOperator(ctx.profile, 'tool_server');
  return {
    worker: whose('Worker', operatorCommand(ctx.profile, 'worker')),
    toolServer: whose('tool server', operatorCommand(ctx.profile, 'tool_server')),
    theirToolServer,
    tag: theirToolServer ? sessionTag('tool-server') : referenceToolServerTag,
    runsAtCrash: [],
    newRuns: [],
  };
}

function ended(sup: Supervisor, name: string): boolean {
  const state = sup.get(name)?.state;
  return state === 'exited' || state === 'killed';
}

/** How a process of the Worker side ended, in a few words with its last line; undefined while it runs. */
function endedHow(sup: Supervisor, name: string, label: string): string | undefined {
  const info = sup.get(name);
  if (!info || !ended(sup, name)) return undefined;
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  return `${label} ${how} (its last line: ${info.recentLines.at(-1) ?? 'no output'}; its log: ${info.logFile})`;
}

/** The run's failed calls as the journal recorded them: tool, turn, call and SQLSTATE. */
async function failedCalls(ctx: DrillContext, tenant: string): Promise<string[]> {
  const n = ctx.profile.names;
  const c = n.tool_calls;
  const t = n.turns;
  const r = n.runs;
  const code = c.error_code ? sql`c.${c.error_code}::text` : sql`null::text`;
  const error = c.error ? sql`c.${c.error}::text` : sql`null::text`;
  const rows = await query<{ tool: string; turn_no: number; call_no: number; code: string | null; error: string | null }>(
    ctx,
    sql`select c.${c.tool}::text as tool, t.${t.number}::int as turn_no, c.${c.number}::int as call_no, ${code} as code, ${error} as error
          from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} join ${r.table} r on r.${r.key} = t.${t.run}
         where r.${r.tenant} = ${tenant} and c.${c.status} = ${c.values.failed}
         order by t.${t.number}, c.${c.number}`,
  );
  return rows.map(
    (row) => `${row.tool} (turn ${row.turn_no}, call ${row.call_no}) failed${row.code ? ` with SQLSTATE ${row.code}` : ''}${row.error ? ` (${row.error})` : ''}`,
  );
}

/** Resolves once a TCP connection to the URL's port is accepted (a restarted tool server listens again). */
async function untilListening(sup: Supervisor, name: string, url: string, signal: AbortSignal): Promise<void> {
  const port = Number(new URL(url).port);
  const open = () => portOpen(port);
  try {
    await waitFor(
      `the restarted tool server to listen on port ${port}`,
      async () => {
        const how = endedHow(sup, name, 'the restarted tool server');
        if (how) throw new CouldNotDetermine(`${how} before it listened again on port ${port}`);
        return open();
      },
      { timeoutMs: 20_000, intervalMs: 25, signal },
    );
  } catch (error) {
    if (!(error instanceof WaitTimeout)) throw error;
    throw new CouldNotDetermine(`the restarted tool server did not listen again on port ${port} (the same environment): ${error.message}`, { cause: error });
  }
}

interface State extends TenantState, ToolServerState {
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

function list(numbers: number[]): string {
  if (numbers.length <= 1) return numbers.join('');
  return `${numbers.slice(0, -1).join(', ')} and ${numbers.at(-1)}`;
}

const referenceToolServer = toolServerStep<State>({
  why: 'The Worker reaches the database only through the MCP tool server, which journals every call.',
});

/** The operator's tool server, started and listening; a start that fails says so (it is not the resume's fault). */
async function startTheirToolServer(ctx: DrillContext, state: State, side: OperatorSide): Promise<void> {
  await ctx.system.stop('tool-server');
  let server;
  try {
    server = await startOperatorToolServer(ctx.system.supervisor(), ctx.profile, { databaseUrl: await ctx.system.workerUrl(), processName: 'tool-server' });
  } catch (error) {
    if (error instanceof CouldNotDetermine) throw error;
    throw new CouldNotDetermine(`${side.toolServer} did not start: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    ctx.defer(() => ctx.system.stop('tool-server'));
  }
  state.tools = server;
  ctx.observe('tool_server', `${server.whose} at ${server.url.replace(/\/mcp$/, '')}`);
}

/** The gate shut first, then their Worker started: from its first call on, each journal write waits at the gate. */
async function startTheirWorker(ctx: DrillContext, state: State, side: OperatorSide): Promise<void> {
  const tenant = need(state.tenant, 'the drill tenant');
  const tools = need(state.tools, 'the tool server');
  const sup = ctx.system.supervisor();
  const gate = await JournalGate.take({ url: ctx.url, names: ctx.profile.names, tenant: tenant.id, sessionTag: side.tag });
  side.gate = gate;
  ctx.defer(() => gate.close());
  ctx.showSql(`lock table ${shownSql(ctx.profile.names.tool_calls.table.toString())} in share mode`);
  ctx.observe('journal_gate', `${ctx.profile.names.tool_calls.tableName} locked in SHARE mode; writes of sessions with application_name ${side.tag} pass one at a time`);
  await ctx.system.stop(worker);
  await startOperatorWorker(sup, ctx.profile, { name: tenant.worker, processName: worker, tenant: tenant.id, tools, turns });
  ctx.defer(() => ctx.system.stop(worker));
  state.workerPid = sup.get(worker)?.pid;
  ctx.observe('worker', `${side.worker} as ${tenant.worker}`);
  ctx.observe('worker_pid', state.workerPid);
}

/**
 * Drives their Worker side through the gate to the freeze (turn 3 started, a call of
 * it completed, its next write waiting), kills the Worker and the tool server there,
 * cancels the write in flight, opens the gate and checks that nothing landed since.
 */
async function killTheirWorkerSide(ctx: DrillContext, state: State, side: OperatorSide): Promise<void> {
  const sup = ctx.system.supervisor();
  const gate = need(side.gate, 'the journal gate');
  const tenant = need(state.tenant, 'the drill tenant');
  const toolServer = need(state.tools, 'the tool server').name;
  const drive = await driveToMidTurn(gate, {
    turn: crashTurn,
    timeoutMs: operatorTimeoutMs,
    signal: ctx.signal,
    ended: () => endedHow(sup, worker, side.worker) ?? endedHow(sup, toolServer, side.toolServer),
  });
  side.passes = gate.passes;
  ctx.observe('gate_passes', gate.passes);
  if (drive.kind !== 'frozen') {
    // Nothing of the resume could be looked at: say what stopped the Worker side, and what the journal recorded.
    const failed = await failedCalls(ctx, tenant.id);
    const missing = await missingJournalPrivileges(ctx, ctx.roles.worker);
    ctx.observe('worker_call_failed', failed.length > 0 ? failed : 'none', failed.length === 0);
    ctx.observe('journal_privileges_missing', missing, missing.length === 0);
    const calls = failed.length > 0 ? `; the journal records ${failed.join(', ')}` : '';
    const grants = missing.length > 0 ? `; ${ctx.roles.worker} lacks ${missing.join(', ')}: the run journal cannot be written` : '';
    throw new CouldNotDetermine(`${describeDrive(drive, crashTurn, gate.options)}${calls}${grants}`);
  }
  state.runId = drive.run;
  side.runsAtCrash = drive.journal.runs.map((run) => run.id);
  ctx.observe('run_id', drive.run);
  ctx.observe('frozen_at', `${drive.point}; waiting at the gate: ${drive.waiting.map((waiter) => `pid ${waiter.pid} (${waiter.query})`).join(', ')}`);
  side.toolServerPid = sup.get(toolServer)?.pid;
  await ctx.operator.request(
    {
      kind: 'kill',
      process: worker,
      prompt: `The Worker side is frozen in turn ${crashTurn} of ${turns} (its next journal write waits at the gate): kill the Worker (SIGKILL)`,
    },
    () => killWorkerSide(sup, worker, toolServer),
  );
  // The tool server holds the write in flight: it goes too, whoever killed the Worker.
  await sup.kill(toolServer, 'SIGKILL');
  const info = sup.get(worker);
  state.killedBy = info?.signal ?? `exit ${info?.exitCode}`;
  ctx.observe('killed_by', state.killedBy, info?.signal === 'SIGKILL');
  const server = sup.get(toolServer);
  side.toolServerKilledBy = server?.signal ?? `exit ${server?.exitCode}`;
  ctx.observe('tool_server_killed_by', side.toolServerKilledBy, server?.signal === 'SIGKILL');
  const after = await afterTheKill(gate, drive.journal);
  ctx.observe('canceled_at_gate', after.canceled.map((pid) => `pid ${pid}`));
  if (after.cancelRefused) ctx.observe('cancel_refused', after.cancelRefused, false);
  if (after.leftover.length > 0) ctx.observe('sessions_left', after.leftover.map((session) => `pid ${session.pid} (${session.query})`), false);
  ctx.observe('landed_after_kill', after.landed, after.landed.length === 0);
  if (after.landed.length > 0) {
    const refused = after.cancelRefused ? `; cancelling the waiting session was refused (${after.cancelRefused})` : '';
    const left = after.leftover.length > 0 ? `; sessions of the tool server still connected: ${after.leftover.map((session) => `pid ${session.pid}`).join(', ')}` : '';
    throw new CouldNotDetermine(
      `a write of the Worker side landed after the kill at ${drive.point} (${after.landed.join('; ')})${refused}${left}: ` +
        `the stop was not clean, so turn ${crashTurn} may not have been interrupted where the journal said`,
    );
  }
  state.callsAtCrash = await calls(ctx, drive.run);
  state.crashPoint = drive.point;
  ctx.observe('crash_point', state.crashPoint);
}

/** The tool server restarted by the drill (same command, environment and port), then the Worker by the operator. */
async function restartTheirWorkerSide(ctx: DrillContext, state: State, side: OperatorSide, log: (text: string) => void): Promise<number> {
  const sup = ctx.system.supervisor();
  const tools = need(state.tools, 'the tool server');
  try {
    await sup.restart(tools.name);
  } catch (error) {
    throw new CouldNotDetermine(`${side.toolServer} could not be restarted: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  await untilListening(sup, tools.name, tools.url, ctx.signal);
  log(`tool server restarted: pid ${String(sup.get(tools.name)?.pid)}`);
  await ctx.operator.request({ kind: 'restart', process: worker, prompt: 'The crash signature is in the journal: restart the Worker' }, async () => {
    await sup.restart(worker);
  });
  let exit;
  try {
    exit = await waitFor('the restarted Worker to finish', () => (ended(sup, worker) ? sup.get(worker) : undefined), {
      timeoutMs: operatorTimeoutMs,
      intervalMs: 50,
      signal: ctx.signal,
    });
  } catch (error) {
    if (!(error instanceof WaitTimeout)) throw error;
    const last = sup.get(worker)?.recentLines.at(-1) ?? 'no output';
    throw new CouldNotDetermine(`${side.worker} did not finish within ${operatorTimeoutMs / 1000} s of its restart (its last line: ${last})`, { cause: error });
  }
  log(`worker exited: code ${exit.exitCode ?? 'none'}, signal ${exit.signal ?? 'none'}`);
  ctx.observe('worker_exit', exit.exitCode ?? exit.signal, exit.exitCode === 0);
  return exit.exitCode ?? 1;
}

/** The verdict on their Worker side, from the journal alone. */
function theirVerdict(ctx: DrillContext, state: State, side: OperatorSide) {
  const reasons: string[] = [];
  const runId = String(state.runId);
  if (state.killedBy !== 'SIGKILL') reasons.push(`${side.worker} was not killed by SIGKILL (${String(state.killedBy)})`);
  if (!state.crashSignatureSeen) reasons.push(`no crash signature after the kill (${String(state.crashSignature)})`);
  if (side.newRuns.length > 0) {
    reasons.push(
      `the restarted Worker left crashed run ${runId.slice(0, 8)} ${String(state.runStatus)} and began ${side.newRuns.length === 1 ? 'a new run' : 'new runs'} ` +
        side.newRuns.map((run) => `${run.id.slice(0, 8)} (${run.status})`).join(', '),
    );
  }
  const redone = state.redoneEarlierTurns;
  if (redone.length > 0) reasons.push(`turns before the crash were re-executed: ${redone.join(', ')}`);
  const repeated = state.repeatedCrashTurnCalls;
  if (repeated.length > 0) reasons.push(`completed calls of the crashed turn ran again: ${repeated.join(', ')}`);
  if (!state.runFinished) {
    reasons.push(`run ${runId.slice(0, 8)} ended ${String(state.runStatus)}, not ${ctx.profile.names.runs.values.finished}`);
  }
  if (reasons.length > 0) {
    const reason = reasons.join('; ');
    return { verdict: 'fail' as const, evidence: reason, reason };
  }
  const from = Math.min(...state.newCalls.map((call) => call.turn_no));
  const earlier = state.completedBeforeCrash.filter((turn) => turn < from);
  const total = state.totalTurns ?? state.turnsCompleted;
  const completed = ctx.profile.names.tool_calls.values.completed;
  const kept = state.callsAtCrash.filter((call) => call.turn_no === (state.incompleteTurn ?? crashTurn) && call.status === completed);
  const keptLine = kept.length > 0 ? `; turn ${kept[0]!.turn_no}'s completed ${kept.map((call) => `call ${call.call_no} (${call.tool})`).join(', ')} not repeated` : '';
  const resumedFrom = Number.isFinite(from) ? `from turn ${from} ` : '';
  return {
    verdict: 'pass' as const,
    evidence:
      `Run resumed ${resumedFrom}of ${total} by ${side.worker}. Turns ${list(earlier)} were not re-executed${keptLine}. ` +
      `Journal shows ${timeline(state.completedTurns, total)} after one crash ` +
      `(${side.worker} pid ${String(state.workerPid)} and ${side.toolServer} pid ${String(side.toolServerPid)}, which held the write in flight, ` +
      `killed by ${String(state.killedBy)} at ${String(state.crashPoint)} while its next write to ${ctx.profile.names.tool_calls.tableName} ` +
      `waited at the journal gate, after ${String(side.passes)} writes let through).`,
  };
}

export const runJournalResumeDrill: Drill<State> = {
  number: 2,
  key: 'run_journal_resume_drill',
  title: 'Run journal crash and resume',
  lesson: 2,
  habit: 'a run journal the Worker resumes from',
  tables: ['runs', 'turns', 'tool_calls', 'expenses', 'outbox'],
  needs: ['tenants', 'expenses', 'pending_transactions', 'outbox', 'runs', 'turns', 'tool_calls', 'agent_events'],
  breakDescription: 'the Worker restarted with resume off: it ignores the crashed run and redoes its turns in a new run',
  fix: "journal every run, turn and tool call, and on start resume the crashed run (status 'running', finished_at null) from its last incomplete turn, reusing the recorded results of completed calls",
  init: () => ({
    crashSignatureSeen: false,
    runFinished: false,
    callsAtCrash: [],
    completedBeforeCrash: [],
    newCalls: [],
    redoneEarlierTurns: [],
    repeatedCrashTurnCalls: [],
    turnsCompleted: 0,
    completedTurns: [],
    resumes: 0,
  }),
  steps: [
    {
      id: 'inputs',
      title: `Make a tenant with ${turns} pending transactions`,
      why: 'The run needs work of its own: one pending transaction per turn, for a tenant no other drill touches.',
      async run(ctx, state) {
        state.operator = operatorSide(ctx);
        const tenant = await createDrillTenant(ctx, 'resume');
        state.tenant = tenant;
        const ids = await insertPending(ctx, tenant.id, sampleTransactions.slice(0, turns));
        ctx.observe('pending', ids);
      },
    },
    {
      ...referenceToolServer,
      async run(ctx, state) {
        if (state.operator?.theirToolServer) return startTheirToolServer(ctx, state, state.operator);
        return referenceToolServer.run(ctx, state);
      },
    },
    {
      id: 'start',
      title: `Start the Worker on a ${turns}-turn run`,
      why: 'Each turn claims a transaction, writes its expense and queues an email: three journaled tool calls.',
      async run(ctx, state) {
        if (state.operator) return startTheirWorker(ctx, state, state.operator);
        const tenant = need(state.tenant, 'the drill tenant');
        const tools = need(state.tools, 'the tool server');
        const sup = ctx.system.supervisor();
        const options: WorkerOptions = {
          name: tenant.worker,
          processName: worker,
          tenant: tenant.id,
          tools,
          pace_ms: ctx.options.paceMs,
          turns,
          resume: !ctx.broken,
        };
        state.workerOptions = options;
        // It stalls after turn 3's claim (as behind a slow model call) until it is killed,
        // so the kill lands mid-turn however long the operator takes.
        await startWorker(sup, { ...options, pauseAfter: `${crashTurn}.1` });
        ctx.defer(() => ctx.system.stop(worker));
        const started = await sup.waitForEvent(worker, 'run_started', { timeoutMs: 15_000 });
        state.runId = String(started.run_id);
        state.workerPid = sup.get(worker)?.pid;
        ctx.observe('run_id', state.runId);
        ctx.observe('worker_pid', state.workerPid);
      },
    },
    {
      id: 'kill',
      title: `Kill the Worker in the middle of turn ${crashTurn}`,
      why: 'SIGKILL gives the Worker no chance to clean up: exactly what a crash, an OOM kill or a lost node does.',
      operator: 'kill',
      async run(ctx, state) {
        if (state.operator) return killTheirWorkerSide(ctx, state, state.operator);
        const sup = ctx.system.supervisor();
        const runId = need(state.runId, 'the run id');
        // Turn 3 has begun once its claim completed; the write and queue are still to come.
        try {
          await sup.waitForEvent(worker, 'paused', {
            timeoutMs: 60_000,
            match: (line) => line.run_id === runId && line.turn === crashTurn && line.call === 1,
          });
        } catch (error) {
          const early = await endedBeforeTheKill(ctx);
          throw early ? new Error(early, { cause: error }) : error;
        }
        await ctx.operator.request(
          { kind: 'kill', process: worker, prompt: `The Worker is in turn ${crashTurn} of ${turns}: kill it (SIGKILL)` },
          () => ctx.system.kill(worker, 'SIGKILL'),
        );
        const info = sup.get(worker);
        state.killedBy = info?.signal ?? `exit ${info?.exitCode}`;
        ctx.observe('killed_by', state.killedBy, info?.signal === 'SIGKILL');
        const journal = await calls(ctx, runId);
        const last = journal.at(-1);
        state.callsAtCrash = journal;
        state.crashPoint = last ? `turn ${last.turn_no} call ${last.call_no} (${last.tool}, ${last.status})` : 'no call journaled';
        ctx.observe('crash_point', state.crashPoint);
      },
    },
    {
      id: 'signature',
      title: 'Read the crash signature from the journal',
      why: "A run whose process died is still status 'running' with finished_at null: that is how a restarted Worker finds it.",
      sql: (n) => [
        shownSql(runSignature(n, raw('$1'))),
        shownSql(sql`select ${n.turns.number}, ${n.turns.status} from ${n.turns.table} where ${n.turns.run} = ${raw('$1')} order by ${n.turns.number}`),
      ],
      async run(ctx, state) {
        const n = ctx.profile.names;
        const t = n.turns;
        const runId = need(state.runId, 'the run id');
        const [run] = await query<{ status: string; finished_at?: string | null }>(ctx, runSignature(n, runId));
        const running = run?.status === n.runs.values.running;
        // Without a finished_at column the status alone is the signature: the journal records nothing more.
        const recordsFinish = n.runs.finished_at !== undefined;
        state.crashSignatureSeen = running && (!recordsFinish || run?.finished_at === null);
        state.crashSignature = run
          ? `status=${run.status}, ${recordsFinish ? `finished_at=${run.finished_at ?? 'null'}` : 'finished_at not recorded'}`
          : `no ${n.runs.tableName} row`;
        ctx.observe('crash_signature', state.crashSignature, state.crashSignatureSeen);
        const turnsOf = (completed: boolean) =>
          sql`select ${t.number} as turn_no, ${t.status} as status from ${t.table}
               where ${t.run} = ${runId} and ${t.status} ${raw(completed ? '=' : '<>')} ${t.values.completed}
               order by ${t.number}`;
        const open = await query<{ turn_no: number; status: string }>(ctx, turnsOf(false));
        const completed = await query<{ turn_no: number }>(ctx, turnsOf(true));
        state.completedBeforeCrash = completed.map((row) => row.turn_no);
        state.incompleteTurn = open[0]?.turn_no ?? null;
        ctx.observe('completed_before_crash', state.completedBeforeCrash);
        ctx.observe('incomplete_turn', state.incompleteTurn, open.length > 0);
      },
    },
    {
      id: 'restart',
      title: 'Restart the Worker',
      why: 'On start the Worker reads runs, turns and tool_calls, finds the crashed run and resumes it from its last incomplete turn.',
      operator: 'restart',
      async run(ctx, state) {
        const sup = ctx.system.supervisor();
        const tenant = need(state.tenant, 'the drill tenant');
        const runId = need(state.runId, 'the run id');
        const theirs = state.operator;
        const options = theirs ? undefined : need(state.workerOptions, 'the Worker options');
        const n = ctx.profile.names;
        const { runs, turns: turnNames, expenses } = n;
        await withEvidence(
          ctx,
          {
            label: `restart the Worker and let run ${runId} finish`,
            tables: [
              { name: runs.tableName, filter: { [runs.key.name]: runId }, key: [runs.key.name] },
              { name: turnNames.tableName, filter: { [turnNames.run.name]: runId }, key: [turnNames.run.name, turnNames.number.name] },
              { name: expenses.tableName, filter: { [expenses.tenant.name]: tenant.id }, key: [...n.profile.expenses.idempotency_key] },
            ],
            expect: [
              `${runs.tableName}:~{${runs.key.name}="${runId}",${runs.status.name}="${runs.values.running}"}->{${runs.status.name}="${runs.values.finished}"}`,
            ],
          },
          async (log) => {
            if (theirs) return restartTheirWorkerSide(ctx, state, theirs, log);
            const since = sup.cursor(worker);
            // The same Worker, started again (without the stall: a restarted Worker just runs).
            await ctx.operator.request(
              { kind: 'restart', process: worker, prompt: 'The crash signature is in the journal: restart the Worker' },
              async () => {
                await startWorker(sup, options!);
              },
            );
            const resumed = await sup
              .waitForLine(worker, (line) => line.includes('"event":"run_resumed"') || line.includes('"event":"run_started"'), {
                timeoutMs: 15_000,
                since,
              })
              .catch(() => undefined);
            log(`worker after restart: ${resumed ?? 'no start line'}`);
            state.restartLine = resumed ? (JSON.parse(resumed) as RestartLine) : undefined;
            const exit = await sup.waitForExit(worker);
            log(`worker exited: code ${exit.exitCode ?? 'none'}, signal ${exit.signal ?? 'none'}`);
            ctx.observe('worker_exit', exit.exitCode ?? exit.signal, exit.exitCode === 0);
            return exit.exitCode ?? 1;
          },
        );
        const line = state.restartLine;
        if (!theirs) {
          ctx.observe(
            'restart_event',
            line ? `${line.event}${line.from_turn ? ` from turn ${line.from_turn}` : ''} (run ${String(line.run_id)})` : 'none',
            line?.event === 'run_resumed' && line.run_id === runId,
          );
        }
        // New: every call the journal did not hold at the kill (keys may be uuids: no order to compare).
        const atCrash = new Set(state.callsAtCrash.map((call) => call.id));
        const after = await calls(ctx, runId);
        state.newCalls = after.filter((call) => !atCrash.has(call.id));
        if (theirs) {
          // Their Worker's output follows no contract: whether it resumed is read from the journal.
          const r = n.runs;
          const rows = await query<{ id: string; status: string }>(
            ctx,
            sql`select ${r.key}::text as id, ${r.status}::text as status from ${r.table} where ${r.tenant} = ${tenant.id} order by ${r.key}`,
          );
          theirs.newRuns = rows.filter((row) => !theirs.runsAtCrash.includes(row.id));
          ctx.observe('calls_after_restart', state.newCalls.map((call) => `turn ${call.turn_no} call ${call.call_no} (${call.tool}, ${call.status})`));
          ctx.observe('runs_begun_after_restart', theirs.newRuns.map((run) => `${run.id} (${run.status})`), theirs.newRuns.length === 0);
        }
      },
    },
    {
      id: 'journal',
      title: 'Check the journal after the restart',
      why: 'Turns completed before the crash must have no new tool calls, and a call completed before the crash must not appear twice.',
      sql: (n) => [
        shownSql(
          sql`select t.${n.turns.number}, c.${n.tool_calls.number}, count(*) from ${n.tool_calls.table} c join ${n.turns.table} t on t.${n.turns.key} = c.${n.tool_calls.turn} where t.${n.turns.run} = ${raw('$1')} group by 1, 2`,
        ),
        shownSql(runSignature(n, raw('$1'))),
      ],
      async run(ctx, state) {
        const n = ctx.profile.names;
        const r = n.runs;
        const t = n.turns;
        const runId = need(state.runId, 'the run id');
        const before = state.callsAtCrash;
        const fresh = state.newCalls;
        const crashTurnSeen = state.incompleteTurn ?? crashTurn;
        const redone = fresh.filter((call) => call.turn_no < crashTurnSeen);
        state.redoneEarlierTurns = redone.map((call) => `turn ${call.turn_no} call ${call.call_no} (${call.tool})`);
        ctx.observe('redone_earlier_turns', state.redoneEarlierTurns, redone.length === 0);
        const completedInCrashTurn = before.filter(
          (call) => call.turn_no === crashTurnSeen && call.status === n.tool_calls.values.completed,
        );
        const repeated = completedInCrashTurn.filter((call) =>
          fresh.some((again) => again.turn_no === call.turn_no && again.call_no === call.call_no),
        );
        state.repeatedCrashTurnCalls = repeated.map((call) => `call ${call.call_no} (${call.tool})`);
        ctx.observe('repeated_crash_turn_calls', state.repeatedCrashTurnCalls, repeated.length === 0);
        const total = r.total_turns ? sql`, r.${r.total_turns} as total_turns` : empty;
        const [run] = await query<{ status: string; total_turns?: number | null; completed: number[] }>(
          ctx,
          sql`select r.${r.status} as status${total},
                     array(select t.${t.number} from ${t.table} t
                            where t.${t.run} = r.${r.key} and t.${t.status} = ${t.values.completed} order by t.${t.number}) as completed
                from ${r.table} r where r.${r.key} = ${runId}`,
        );
        state.runFinished = run?.status === r.values.finished;
        // Without a total_turns column the run's length is the one the drill asked the Worker for.
        const planned = run?.total_turns ?? turns;
        const of = run && run.total_turns === undefined ? `${planned} planned` : String(planned);
        ctx.observe('run_after', run ? `status=${run.status}, ${run.completed.length} of ${of} turns completed` : 'missing', state.runFinished);
        state.turnsCompleted = run?.completed.length ?? 0;
        state.completedTurns = run?.completed ?? [];
        state.totalTurns = run?.total_turns ?? (run ? planned : undefined);
        state.runStatus = run?.status;
        if (state.operator) return;
        state.resumes = jsonLines(ctx.system.supervisor(), worker).filter(
          (line) => line.event === 'run_resumed' && line.run_id === runId,
        ).length;
        ctx.observe('resumes', state.resumes);
      },
    },
  ],
  verdict(ctx, state) {
    if (state.operator) return theirVerdict(ctx, state, state.operator);
    const reasons: string[] = [];
    if (state.killedBy !== 'SIGKILL') reasons.push(`the Worker was not killed by SIGKILL (${String(state.killedBy)})`);
    if (!state.crashSignatureSeen) {
      reasons.push(`no crash signature after the kill (${String(state.crashSignature)})`);
    }
    const line = state.restartLine;
    const runId = String(state.runId);
    if (line?.event !== 'run_resumed' || line.run_id !== runId) {
      reasons.push(
        line?.event === 'run_started'
          ? `the restarted Worker ignored crashed run ${runId.slice(0, 8)} and began a new run ${String(line.run_id).slice(0, 8)} at turn 1`
          : 'the restarted Worker did not resume the run',
      );
    }
    const redone = state.redoneEarlierTurns;
    if (redone.length > 0) reasons.push(`turns before the crash were re-executed: ${redone.join(', ')}`);
    const repeated = state.repeatedCrashTurnCalls;
    if (repeated.length > 0) reasons.push(`completed calls of the crashed turn ran again: ${repeated.join(', ')}`);
    if (!state.runFinished) {
      reasons.push(`run ${runId.slice(0, 8)} ended ${String(state.runStatus)}, not ${ctx.profile.names.runs.values.finished}`);
    }
    if (reasons.length > 0) {
      const reason = reasons.join('; ');
      return { verdict: 'fail', evidence: reason, reason };
    }
    const from = Number(line?.from_turn);
    const earlier = state.completedBeforeCrash.filter((turn) => turn < from);
    const total = state.totalTurns ?? state.turnsCompleted;
    return {
      verdict: 'pass',
      evidence:
        `Run resumed from turn ${from} of ${total}. Turns ${list(earlier)} were not re-executed. ` +
        `Journal shows ${timeline(state.completedTurns, total)} with ${countWord(state.resumes)} gap${state.resumes === 1 ? '' : 's'} closed ` +
        `(Worker pid ${String(state.workerPid)} killed by ${String(state.killedBy)} at ${String(state.crashPoint)}).`,
    };
  },
};
