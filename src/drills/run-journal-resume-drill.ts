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
import { empty, raw, sql } from '../postgres/sql.js';
import { jsonLines, startWorker, type WorkerOptions } from '../reconciler/launch.js';
import { toolServerStep } from './common-steps.js';
import { naturalKeys, withEvidence } from './evidence.js';
import { createDrillTenant, insertPending, sampleTransactions } from './inputs.js';
import { countWord, query, shownSql } from './sql.js';
import { need, type Drill } from './types.js';
import {
  calls,
  crashTurn,
  databaseClock,
  endedBeforeTheKill,
  list,
  type RestartLine,
  resumedAfter,
  resumeLatency,
  runSignature,
  type State,
  timeline,
  turns,
  worker,
} from './run-journal-reads.js';

export { timeline } from './run-journal-reads.js';
import { killTheirWorkerSide, operatorSide, restartTheirWorkerSide, startTheirToolServer, startTheirWorker, theirVerdict } from './run-journal-their-side.js';

const referenceToolServer = toolServerStep<State>({
  why: 'The Worker reaches the database only through the MCP tool server, which journals every call.',
  hint: {
    look: 'tool_server is the loopback address the Worker will use. This process, not the Worker, writes runs, turns and tool_calls for every call: the journal the restarted Worker will read.',
    mistake: "Keeping the Worker's progress in memory or a local file. When the process dies that state dies with it; only a journal committed in the database survives a SIGKILL.",
  },
});

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
      hint: {
        look: 'tenant is a fresh drill-resume tenant and pending lists five transaction ids, one per turn, in claim order. Turn 3, where the kill lands, works on the third id.',
        mistake: "Testing resume on shared rows such as Alice's. Another drill or a leftover claim can take them, and the journal then shows gaps that have nothing to do with the crash.",
      },
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
      hint: {
        look: "run_id is the run the journal will track and worker_pid the process you are about to kill. Each turn is three calls (claim, write, queue); the Worker stalls after turn 3's claim, so the kill lands mid-turn.",
        mistake: 'Killing the Worker between turns. A crash at a clean boundary proves little; the hard case is a turn with some calls done and some not, which is why the kill waits for turn 3 call 1.',
      },
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
      hint: {
        look: 'killed_by must read SIGKILL, and crash_point names the last journaled call, such as turn 3 call 1 (claim, completed). That is the exact spot the restarted Worker must pick up from.',
        mistake: 'Stopping the Worker with SIGTERM or Ctrl-C. Those run shutdown handlers that may mark the run finished or failed and hide the crash. SIGKILL cannot be caught, like an OOM kill or a lost machine.',
      },
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
      hint: {
        look: 'crash_signature should read status=running, finished_at=null; completed_before_crash should be [1, 2] and incomplete_turn 3. Running and never finished is how a fresh Worker finds a dead run.',
        mistake: 'Waiting for a failed status to find crashed runs. A killed process never writes one: its run stays running with finished_at null, and that pair is what a restarted Worker must look for, or it never finds the run.',
      },
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
      hint: {
        look: 'restart_event must be run_resumed from turn 3 with the same run id, and worker_exit 0. The diff shows the runs row going from running to finished; a run_started line instead means the Worker ignored the crash.',
        mistake: "A Worker that simply starts a fresh run at turn 1 after a crash. It looks healthy and finishes, but repeats every side effect of turns 1 and 2. That is this drill's deliberate break: resume off.",
      },
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
            // The run's own id (R-44 on the reference schema) stays in the diff when it is a natural key.
            volatiles: naturalKeys(ctx, ['runs']),
          },
          async (log) => {
            if (theirs) return restartTheirWorkerSide(ctx, state, theirs, log);
            const since = sup.cursor(worker);
            // The same Worker, started again (without the stall: a restarted Worker just runs).
            await ctx.operator.request(
              { kind: 'restart', process: worker, prompt: 'The crash signature is in the journal: restart the Worker' },
              async () => {
                // The restart's moment, read on the database's clock just before the spawn.
                state.restartedAt = await databaseClock(ctx);
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
        state.resumeLatency = await resumeLatency(ctx, runId, state.callsAtCrash, state.restartedAt);
        ctx.observe('restarted_at', state.restartedAt ?? 'not timed');
        ctx.observe(
          'resume_latency',
          'ms' in state.resumeLatency
            ? `${Math.round(state.resumeLatency.ms)} ms: from the restart (the database's clock read just before the Worker was spawned) ` +
                `to ${state.resumeLatency.call} started_at ${state.resumeLatency.startedAt}, the run's first call journaled after it` +
                (options ? `; it includes the Worker's start, its MCP session, its journal read and its first resumed call (no pace before it; ${options.pace_ms} ms before each one after)` : '')
            : `not recorded: ${state.resumeLatency.unrecorded}`,
        );
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
      hint: {
        look: 'redone_earlier_turns and repeated_crash_turn_calls must be empty, run_after should read status=finished, 5 of 5 turns completed, and resumes 1. The count per turn and call in the SQL shows no call made twice.',
        mistake: "Checking only that the run finished. A Worker that redid turn 3's claim, or turns 1 and 2, also finishes. Resume is proven by no new tool_calls rows for calls already completed, not by the final status.",
      },
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
        `(Worker pid ${String(state.workerPid)} killed by ${String(state.killedBy)} at ${String(state.crashPoint)}; ${resumedAfter(state.resumeLatency)}).`,
    };
  },
};
