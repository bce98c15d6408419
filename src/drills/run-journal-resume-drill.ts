// Drill 2, run_journal_resume_drill (Lesson 2, run journal). A Worker runs a
// 5-turn Reconciler run and is killed with SIGKILL in the middle of turn 3. The
// journal must show the crash signature (status running, finished_at null); the
// restarted Worker must read runs, turns and tool_calls, resume from the last
// incomplete turn, finish the run, and not execute a completed call again.
import { jsonLines, startWorker, type WorkerOptions } from '../reconciler/launch.js';
import { toolServerStep, type TenantState, type ToolServerState } from './common-steps.js';
import { withEvidence } from './evidence.js';
import { createDrillTenant, insertPending, sampleTransactions } from './inputs.js';
import { countWord, query } from './sql.js';
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

async function calls(ctx: DrillContext, runId: string): Promise<CallRow[]> {
  return query<CallRow>(
    ctx,
    `select id::text as id, turn_no, call_no, tool, status from tool_calls where run_id = $1 order by tool_calls.id`,
    [runId],
  );
}

/** The privileges the Worker's journal needs on each table (the tool server writes it as the worker role). */
const journalPrivileges = [
  ['runs', 'INSERT'],
  ['runs', 'UPDATE'],
  ['turns', 'INSERT'],
  ['turns', 'UPDATE'],
  ['tool_calls', 'INSERT'],
  ['tool_calls', 'UPDATE'],
  ['agent_events', 'INSERT'],
] as const;

/** `<PRIVILEGE> on <table>` for each journal privilege the role lacks (a missing table counts as lacking it). */
async function missingJournalPrivileges(ctx: DrillContext, role: string): Promise<string[]> {
  const rows = await query<{ missing: string }>(
    ctx,
    `select p.privilege || ' on ' || p.table_name as missing
       from unnest($2::text[], $3::text[]) with ordinality as p(table_name, privilege, n)
      where to_regclass(p.table_name) is null or not has_table_privilege($1, to_regclass(p.table_name), p.privilege)
      order by p.n`,
    [role, journalPrivileges.map(([table]) => table), journalPrivileges.map(([, privilege]) => privilege)],
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

interface State extends TenantState, ToolServerState {
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
  /** The run's total_turns, as its runs row says. */
  totalTurns?: number;
  /** How many times a restarted Worker said it resumed this run (each closes one gap in the journal). */
  resumes: number;
  /** The run's status at the end (undefined when the row is missing). */
  runStatus?: string;
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
        const tenant = await createDrillTenant(ctx, 'resume');
        state.tenant = tenant;
        const ids = await insertPending(ctx, tenant.id, sampleTransactions.slice(0, turns));
        ctx.observe('pending', ids);
      },
    },
    toolServerStep({
      why: 'The Worker reaches the database only through the MCP tool server, which journals every call.',
    }),
    {
      id: 'start',
      title: `Start the Worker on a ${turns}-turn run`,
      why: 'Each turn claims a transaction, writes its expense and queues an email: three journaled tool calls.',
      async run(ctx, state) {
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
      sql: ["select status, finished_at from runs where id = $1", 'select turn_no, status from turns where run_id = $1 order by turn_no'],
      async run(ctx, state) {
        const runId = need(state.runId, 'the run id');
        const [run] = await query<{ status: string; finished_at: string | null }>(
          ctx,
          `select status, finished_at::text from runs where id = $1`,
          [runId],
        );
        const signature = run?.status === 'running' && run.finished_at === null;
        state.crashSignature = run ? `status=${run.status}, finished_at=${run.finished_at ?? 'null'}` : 'no runs row';
        ctx.observe('crash_signature', state.crashSignature, signature);
        const open = await query<{ turn_no: number; status: string }>(
          ctx,
          `select turn_no, status from turns where run_id = $1 and status <> 'completed' order by turn_no`,
          [runId],
        );
        const completed = await query<{ turn_no: number }>(
          ctx,
          `select turn_no from turns where run_id = $1 and status = 'completed' order by turn_no`,
          [runId],
        );
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
        const options = need(state.workerOptions, 'the Worker options');
        const lastId = state.callsAtCrash.at(-1)?.id ?? '0';
        await withEvidence(
          ctx,
          {
            label: `restart the Worker and let run ${runId} finish`,
            tables: [
              { name: 'runs', filter: { id: runId }, key: ['id'] },
              { name: 'turns', filter: { run_id: runId }, key: ['run_id', 'turn_no'] },
              { name: 'expenses', filter: { tenant_id: tenant.id }, key: ['tenant_id', 'idempotency_key'] },
            ],
            expect: [`runs:~{id="${runId}",status="running"}->{status="finished"}`],
          },
          async (log) => {
            const since = sup.cursor(worker);
            // The same Worker, started again (without the stall: a restarted Worker just runs).
            await ctx.operator.request(
              { kind: 'restart', process: worker, prompt: 'The crash signature is in the journal: restart the Worker' },
              async () => {
                await startWorker(sup, options);
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
        ctx.observe(
          'restart_event',
          line ? `${line.event}${line.from_turn ? ` from turn ${line.from_turn}` : ''} (run ${String(line.run_id)})` : 'none',
          line?.event === 'run_resumed' && line.run_id === runId,
        );
        const after = await calls(ctx, runId);
        state.newCalls = after.filter((call) => BigInt(call.id) > BigInt(lastId));
      },
    },
    {
      id: 'journal',
      title: 'Check the journal after the restart',
      why: 'Turns completed before the crash must have no new tool calls, and a call completed before the crash must not appear twice.',
      sql: ['select turn_no, call_no, count(*) from tool_calls where run_id = $1 group by 1, 2', 'select status, finished_at from runs where id = $1'],
      async run(ctx, state) {
        const runId = need(state.runId, 'the run id');
        const before = state.callsAtCrash;
        const fresh = state.newCalls;
        const crashTurnSeen = state.incompleteTurn ?? crashTurn;
        const redone = fresh.filter((call) => call.turn_no < crashTurnSeen);
        state.redoneEarlierTurns = redone.map((call) => `turn ${call.turn_no} call ${call.call_no} (${call.tool})`);
        ctx.observe('redone_earlier_turns', state.redoneEarlierTurns, redone.length === 0);
        const completedInCrashTurn = before.filter((call) => call.turn_no === crashTurnSeen && call.status === 'completed');
        const repeated = completedInCrashTurn.filter((call) =>
          fresh.some((again) => again.turn_no === call.turn_no && again.call_no === call.call_no),
        );
        state.repeatedCrashTurnCalls = repeated.map((call) => `call ${call.call_no} (${call.tool})`);
        ctx.observe('repeated_crash_turn_calls', state.repeatedCrashTurnCalls, repeated.length === 0);
        const [run] = await query<{ status: string; finished_at: string | null; total_turns: number; completed: number[] }>(
          ctx,
          `select r.status, r.finished_at::text, r.total_turns,
                  array(select t.turn_no from turns t where t.run_id = r.id and t.status = 'completed' order by t.turn_no) as completed
             from runs r where r.id = $1`,
          [runId],
        );
        ctx.observe(
          'run_after',
          run ? `status=${run.status}, ${run.completed.length} of ${run.total_turns} turns completed` : 'missing',
          run?.status === 'finished',
        );
        state.turnsCompleted = run?.completed.length ?? 0;
        state.completedTurns = run?.completed ?? [];
        state.totalTurns = run?.total_turns;
        state.runStatus = run?.status;
        state.resumes = jsonLines(ctx.system.supervisor(), worker).filter(
          (line) => line.event === 'run_resumed' && line.run_id === runId,
        ).length;
        ctx.observe('resumes', state.resumes);
      },
    },
  ],
  verdict(_ctx, state) {
    const reasons: string[] = [];
    if (state.killedBy !== 'SIGKILL') reasons.push(`the Worker was not killed by SIGKILL (${String(state.killedBy)})`);
    if (!(state.crashSignature ?? '').startsWith('status=running, finished_at=null')) {
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
    if (state.runStatus !== 'finished') reasons.push(`run ${runId.slice(0, 8)} ended ${String(state.runStatus)}, not finished`);
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
