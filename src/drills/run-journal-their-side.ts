// Drill 2 on the operator's own Worker side (the profile's processes.worker): their
// tool server and Worker started, stopped mid-turn 3 at the journal gate
// (journal-gate.ts) and SIGKILLed there, restarted, and the resume read from the
// journal alone (their Worker's output follows no contract).
import { sql } from '../postgres/sql.js';
import type { Supervisor } from '../reconciler/supervisor.js';
import { waitFor, WaitTimeout } from '../util/wait.js';
import { afterTheKill, describeDrive, driveToMidTurn, JournalGate, killWorkerSide } from './journal-gate.js';
import { drivesTheirWorker, hasOperator, operatorCommand, portOpen, sessionTag, startOperatorToolServer, startOperatorWorker, whose } from './operator-side.js';
import { CouldNotDetermine } from './runner.js';
import { query, shownSql } from './sql.js';
import { need, type DrillContext } from './types.js';
import { calls, crashTurn, databaseClock, list, missingJournalPrivileges, resumedAfter, type State, timeline, turns, worker } from './run-journal-reads.js';

/** The application_name of the reference tool server's sessions (src/reconciler/tool-server.ts). */
const referenceToolServerTag = 'sor-tool-server';
/** How long the operator's Worker side may take to reach turn 3, and to finish after the restart. */
const operatorTimeoutMs = 60_000;

/** The operator's Worker side as this drill drives it: their Worker, and their tool server or the reference one. */
export interface OperatorSide {
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
export function operatorSide(ctx: DrillContext): OperatorSide | undefined {
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


/** The operator's tool server, started and listening; a start that fails says so (it is not the resume's fault). */
export async function startTheirToolServer(ctx: DrillContext, state: State, side: OperatorSide): Promise<void> {
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
export async function startTheirWorker(ctx: DrillContext, state: State, side: OperatorSide): Promise<void> {
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
export async function killTheirWorkerSide(ctx: DrillContext, state: State, side: OperatorSide): Promise<void> {
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
export async function restartTheirWorkerSide(ctx: DrillContext, state: State, side: OperatorSide, log: (text: string) => void): Promise<number> {
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
    // The restart's moment, read on the database's clock just before the spawn (the tool server is already listening again).
    state.restartedAt = await databaseClock(ctx);
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
export function theirVerdict(ctx: DrillContext, state: State, side: OperatorSide) {
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
      `waited at the journal gate, after ${String(side.passes)} writes let through; ${resumedAfter(state.resumeLatency)}).`,
  };
}

