// Drill 4, concurrency_claim_test (Lesson 4, claims). Two Worker processes race
// for the same pending transactions. Worker A claims first and holds its row lock;
// while A still holds it, Worker B claims: with FOR UPDATE SKIP LOCKED, B must
// skip A's row and take the next one at once. Observed: who claimed what, when
// each got its lock (clock_timestamp inside the claim transaction), the lock waits
// Postgres itself reported while the race ran, and any 55P03 / 40P01 errors.
//
// The tool server holds every claimed row until the drill releases it (SIGUSR2,
// launch.ts releaseHolds), and the drill releases A's only once it has seen B lock
// a row of its own or wait for one (and at least the visible claim hold has passed):
// the race is observed however slowly the second Worker starts, never timed.
//
// When the profile declares the operator's own Worker (processes.worker), two of
// theirs race instead, through their tool server when declared (else the reference
// one), which is asked for a visible hold ({claim_hold_ms}): their code has no
// release signal, so each claim holds its row lock that long. Observed: the tool
// server's sessions waiting on a lock another of its sessions holds (pg_stat_activity
// and pg_blocking_pids, sampled while they run), each pending row processed once
// (its status, one expense per transaction), 55P03 / 40P01 in the journal or in the
// processes' logs, and whether the two Workers' claims overlapped (the journal's
// call timing through runs.worker): claims that never overlapped raced nothing.
import { randomBytes } from 'node:crypto';
import { jsonLines, releaseHolds, startWorker } from '../reconciler/launch.js';
import { inTransaction, withPgClient } from '../postgres/pg.js';
import { waitFor, WaitTimeout } from '../util/wait.js';
import { toolServerStep, type TenantState, type ToolServerState } from './common-steps.js';
import { withEvidence } from './evidence.js';
import { createDrillTenant, insertPending, sampleTransactions } from './inputs.js';
import { drivesTheirWorker, hasOperator, operatorCommand, sessionTag, startOperatorToolServer, startOperatorWorker, whose } from './operator-side.js';
import { CouldNotDetermine } from './runner.js';
import { empty, identifier, type Identifier, type Sql, sql } from '../postgres/sql.js';
import { query, shownSql } from './sql.js';
import { need, type Drill, type DrillContext, type VerdictResult } from './types.js';

const workers = [
  { process: 'worker-a', label: 'A' },
  { process: 'worker-b', label: 'B' },
] as const;
/** The application_name of the tool server's sessions (src/reconciler/tool-server.ts): whose lock waits count. */
const toolServerApplication = 'sor-tool-server';
/** Claims left behind expire quickly, so the drill can run again on the same target. */
const leaseMs = 5_000;
/** The tool server's hold: longer than any race takes; the drill ends it (releaseHolds) once it has seen the race. */
const heldUntilReleased = 60_000;
/** How long the second Worker may take to lock a row or to begin waiting for one. */
const arrivalTimeoutMs = 30_000;

interface ClaimRow {
  worker: string;
  status: string;
  error_code: string | null;
  error: string | null;
  transaction_id: string | null;
  /** When the claim call began; null when tool_calls.started_at is not in the profile. */
  started_at: string | null;
  finished_at: string | null;
  locked_at: string | null;
  released_at: string | null;
}

/** A column of tool_calls `c` read as text, or null when the profile does not map it. */
function callColumn(column: Identifier | undefined, alias: string): Sql {
  return column ? sql`c.${column}::text as ${identifier(alias)}` : sql`null::text as ${identifier(alias)}`;
}

/**
 * The claim calls of the drill's Workers, through their runs' worker names. tool_calls
 * reaches its run through its turn; the claim's answer (transaction_id, locked_at,
 * released_at) is read from the call's result.
 */
async function claimsOf(ctx: DrillContext, names: string[]): Promise<ClaimRow[]> {
  const n = ctx.profile.names;
  const c = n.tool_calls;
  const t = n.turns;
  const r = n.runs;
  const worker = need(r.worker, 'runs.worker (checked before the race)');
  const result = need(c.result, 'tool_calls.result (checked before the race)');
  const q = sql`select r.${worker}::text as worker, c.${c.status}::text as status,
            ${callColumn(c.error_code, 'error_code')}, ${callColumn(c.error, 'error')},
            c.${result} ->> ${'transaction_id'}::text as transaction_id,
            ${callColumn(c.started_at, 'started_at')}, ${callColumn(c.finished_at, 'finished_at')},
            c.${result} ->> ${'locked_at'}::text as locked_at, c.${result} ->> ${'released_at'}::text as released_at
       from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} join ${r.table} r on r.${r.key} = t.${t.run}
      where r.${worker}::text = any(${names}::text[]) and c.${c.tool} = ${'claim'}
      order by c.${c.key}`;
  return query<ClaimRow>(ctx, q);
}

/**
 * What the race needs the profile to name: whose claim is whose (runs.worker) and
 * what each claim answered (tool_calls.result). Without them the claims cannot be
 * told apart or read, so the drill says so instead of guessing.
 */
function requireClaimColumns(ctx: DrillContext): void {
  const n = ctx.profile.names;
  const missing = [
    ...(n.runs.worker ? [] : ['runs.worker (the run\u2019s Worker name: which claim is A\u2019s and which B\u2019s)']),
    ...(n.tool_calls.result ? [] : ['tool_calls.result (the claim\u2019s answer: which row it locked, and when)']),
  ];
  if (missing.length > 0) {
    throw new CouldNotDetermine(`the race cannot be read without ${missing.join(' and ')}: add it to the profile`);
  }
}

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NaN);

/** The drill's Workers (by run worker name) the tool server has said hold a row lock, in lock order. */
function lockedWorkers(ctx: DrillContext, toolServer: string, names: string[]): string[] {
  return jsonLines(ctx.system.supervisor(), toolServer)
    .filter((line) => line.event === 'claim_locked' && names.includes(String(line.worker)))
    .map((line) => String(line.worker));
}

function ended(ctx: DrillContext, process: string): boolean {
  const state = ctx.system.supervisor().get(process)?.state;
  return state === 'exited' || state === 'killed';
}

/**
 * Waits until one Worker holds its row (A) and the other (B) has either locked a row
 * of its own or begun to wait for one (`lockWaits()` > 0), or has ended; and at least
 * the visible claim hold has passed since A locked. Returns at once when both Workers
 * ended without locking anything (their claims found no row: the verdict says so).
 */
async function waitForTheRace(ctx: DrillContext, toolServer: string, names: string[], lockWaits: () => number): Promise<void> {
  const first = await waitFor(
    'a Worker to lock its row',
    () => lockedWorkers(ctx, toolServer, names)[0] ?? (workers.every((worker) => ended(ctx, worker.process)) ? null : undefined),
    { timeoutMs: arrivalTimeoutMs, signal: ctx.signal },
  );
  if (first === null) return;
  const lockedAt = Date.now();
  const other = workers[names.indexOf(first) === 0 ? 1 : 0];
  const otherName = names.find((name) => name !== first)!;
  await waitFor(
    `${other.process} to lock a row or to wait for one`,
    () =>
      Date.now() - lockedAt >= ctx.options.claimHoldMs &&
      (lockedWorkers(ctx, toolServer, names).includes(otherName) || lockWaits() > 0 || ended(ctx, other.process)),
    { timeoutMs: arrivalTimeoutMs + ctx.options.claimHoldMs, intervalMs: 20, signal: ctx.signal },
  );
}

/**
 * Ends the claim holds until both Workers are done: a Worker that waited for A's row
 * locks its own only after A released, and holds it in turn.
 */
async function releaseUntilDone(ctx: DrillContext, toolServer: string, names: string[]): Promise<void> {
  const sup = ctx.system.supervisor();
  await waitFor(
    'both Workers to finish their claims',
    async () => {
      if (workers.every((worker) => ended(ctx, worker.process))) return true;
      const lines = jsonLines(sup, toolServer);
      const sinceRelease = lines.slice(lines.findLastIndex((line) => line.event === 'holds_released') + 1);
      if (sinceRelease.some((line) => line.event === 'claim_locked' && names.includes(String(line.worker)))) {
        await releaseHolds(sup, toolServer);
      }
      return false;
    },
    { timeoutMs: arrivalTimeoutMs, intervalMs: 20, signal: ctx.signal },
  );
}

/** Whether a transaction was claimed twice, from the claimed ids. */
export function duplicateProcessing(ids: string[]): string {
  const twice = ids.length - new Set(ids).size;
  return twice === 0 ? 'No duplicate processing' : `${twice} transaction${twice === 1 ? '' : 's'} processed twice`;
}

/** The lock errors the claims raised, from their SQLSTATEs (55P03 lock not available, 40P01 deadlock, ...). */
export function lockErrors(codes: string[]): string {
  return codes.length === 0 ? 'No lock errors raised' : `Lock errors raised (${codes.join(', ')})`;
}

interface State extends TenantState, ToolServerState {
  /** The drill tenant's two pending transactions the Workers race over, in claim order. */
  pending: string[];
  /** The runs' worker names of A and B, in the order of `workers` (unique per drill run). */
  workerNames: string[];
  /** The claim calls both Workers journaled, in call order. */
  claims: ClaimRow[];
  /** The most sessions Postgres showed waiting on a lock at once during the race. */
  lockWaits: number;
  /** The operator's Worker side when the profile declares their Worker; undefined on the reference one. */
  operator?: OperatorRace;
}

/** The drill tenant's rows a claim may take now: two are needed, or there is nothing to race over. */
async function checkClaimable(ctx: DrillContext, state: State): Promise<void> {
  const tenant = need(state.tenant, 'the drill tenant').id;
  ctx.observe('claim_hold_ms', state.operator?.holdMs ?? ctx.options.claimHoldMs);
  const p = ctx.profile.names.pending_transactions;
  // A claim whose lease ran out is claimable again; without a lease column a claimed row never is.
  const expired = p.lease_until
    ? sql` or (${p.status} = ${p.values.claimed} and ${p.lease_until} < clock_timestamp())`
    : empty;
  const claimable = sql`select ${p.key}::text as id from ${p.table}
      where ${p.tenant} = ${tenant} and (${p.status} = ${p.values.pending}${expired})
      order by ${p.table}.${p.key} limit 2`;
  const pending = await query<{ id: string }>(ctx, claimable);
  // Too few rows is the target's data, not the claim's habit: nothing to race over.
  if (pending.length < 2) {
    throw new CouldNotDetermine(
      `${tenant} has ${pending.length} claimable pending transactions and the race needs two; add pending rows for ${tenant}, or drill a fresh target`,
    );
  }
  ctx.observe('claimable', pending.map((row) => row.id));
}

const referenceToolServer = toolServerStep<State>({
  title: 'Start the tool server with a visible claim hold',
  why: 'Each claim holds its row lock until the drill has seen the second Worker arrive, so the second Worker meets a row the first still holds.',
  breaks: { noSkipLocked: true },
  claimHoldMs: () => heldUntilReleased,
  leaseMs,
  after: checkClaimable,
});

/** The least hold the drill asks the operator's tool server for ({claim_hold_ms}): two Workers started together then meet a held row. */
const operatorMinHoldMs = 1_000;
/** How long a Worker of a one-turn run may take, its claim hold aside. */
const operatorRunTimeoutMs = 30_000;
/** SQLSTATEs no claim with SKIP LOCKED raises: lock not available, deadlock. */
const lockErrorCodes = ['55P03', '40P01'];

/** A claim call of one of their Workers, from the journal. */
interface TheirClaim {
  worker: string;
  status: string;
  error_code: string | null;
  error: string | null;
  /** What the claim answered it took, when tool_calls.result is mapped and says transaction_id. */
  transaction_id: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/** A drill row after the race. */
interface TheirRow {
  id: string;
  status: string;
  claimed_by: string | null;
  /** Expenses that name it (expenses.transaction); null when the profile maps no such column. */
  expenses: number | null;
}

/** The operator's Worker side as the race drives it. */
interface OperatorRace {
  /** Evidence names: "the operator's Worker `node worker.mjs`", "the operator's tool server `...`". */
  worker: string;
  toolServer: string;
  theirToolServer: boolean;
  /** The application_name of the tool server's sessions: whose lock waits count. */
  tag: string;
  /** The claim tool's name as the journal records it. */
  claimTool: string;
  /** The hold asked for ({claim_hold_ms}). */
  holdMs: number;
  claims: TheirClaim[];
  rows: TheirRow[];
  /** `55P03 in worker-a's log`, for each lock error a process printed. */
  logLockErrors: string[];
  /** `40P01 (record_expense)`, for each call of their runs but the claims (those are in `claims`) failed with a lock error. */
  journalLockErrors: string[];
  /** How each Worker ended: `worker-a: exit 0`. */
  exits: string[];
}

/**
 * Whose Worker side races: undefined for the reference one; the operator's Workers when
 * the profile declares their Worker (through their tool server when declared too).
 */
function operatorRace(ctx: DrillContext): OperatorRace | undefined {
  if (!drivesTheirWorker(ctx, { drive: 'claim through', breakName: 'claims without SKIP LOCKED', breakOf: 'reference tool server' })) return undefined;
  const theirToolServer = hasOperator(ctx.profile, 'tool_server');
  if (!ctx.profile.names.runs.worker) {
    throw new CouldNotDetermine('the race cannot be read without runs.worker (the run\u2019s Worker name: which claim is A\u2019s and which B\u2019s): add it to the profile');
  }
  const claimTool = theirToolServer ? ctx.profile.profile.processes?.tool_server?.tools.claim?.name : 'claim';
  if (!claimTool) {
    throw new CouldNotDetermine('the profile names no claim tool: declare processes.tool_server.tools.claim (its name), so the drill can find the claims in the journal');
  }
  return {
    worker: whose('Worker', operatorCommand(ctx.profile, 'worker')),
    toolServer: whose('tool server', operatorCommand(ctx.profile, 'tool_server')),
    theirToolServer,
    tag: theirToolServer ? sessionTag('tool-server') : toolServerApplication,
    claimTool,
    holdMs: Math.max(ctx.options.claimHoldMs, operatorMinHoldMs),
    claims: [],
    rows: [],
    logLockErrors: [],
    journalLockErrors: [],
    exits: [],
  };
}

/** Their tool server (or the reference one for their Workers), asked for the visible hold. */
async function startRaceToolServer(ctx: DrillContext, state: State, side: OperatorRace): Promise<void> {
  if (side.theirToolServer) {
    await ctx.system.stop('tool-server');
    try {
      state.tools = await startOperatorToolServer(ctx.system.supervisor(), ctx.profile, {
        databaseUrl: await ctx.system.workerUrl(),
        claimHoldMs: side.holdMs,
        processName: 'tool-server',
      });
    } catch (error) {
      if (error instanceof CouldNotDetermine) throw error;
      throw new CouldNotDetermine(`${side.toolServer} did not start: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    } finally {
      ctx.defer(() => ctx.system.stop('tool-server'));
    }
  } else {
    const server = await ctx.system.toolServer({ claimHoldMs: side.holdMs, leaseMs });
    ctx.defer(() => ctx.system.stop(server.name));
    state.tools = server;
  }
  ctx.observe('tool_server', `${side.toolServer} at ${state.tools.url.replace(/\/mcp$/, '')}`);
  await checkClaimable(ctx, state);
}

/** The claim calls of their Workers, through their runs' worker names. */
async function theirClaims(ctx: DrillContext, names: string[], tool: string): Promise<TheirClaim[]> {
  const n = ctx.profile.names;
  const c = n.tool_calls;
  const t = n.turns;
  const r = n.runs;
  const worker = need(r.worker, 'runs.worker (checked before the race)');
  const taken = c.result ? sql`c.${c.result} ->> ${'transaction_id'}::text` : sql`null::text`;
  const started = c.started_at ? sql`c.${c.started_at}, ` : empty;
  return query<TheirClaim>(
    ctx,
    sql`select r.${worker}::text as worker, c.${c.status}::text as status,
               ${callColumn(c.error_code, 'error_code')}, ${callColumn(c.error, 'error')}, ${taken} as transaction_id,
               ${callColumn(c.started_at, 'started_at')}, ${callColumn(c.finished_at, 'finished_at')}
          from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} join ${r.table} r on r.${r.key} = t.${t.run}
         where r.${worker}::text = any(${names}::text[]) and c.${c.tool} = ${tool}
         order by ${started}c.${c.key}`,
  );
}

/** The most of the tool server's sessions seen at once waiting on a lock another of its sessions holds. */
function sampleLockWaits(ctx: DrillContext, tag: string): { stop: () => Promise<number> } {
  let most = 0;
  let polling = true;
  const poll = withPgClient(ctx.url, async (client) => {
    while (polling) {
      const { rows } = await client.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity a
          where a.wait_event_type = 'Lock' and a.datname = current_database() and a.pid <> pg_backend_pid() and a.application_name = $1
            and exists (select from pg_stat_activity b where b.pid = any(pg_blocking_pids(a.pid)) and b.application_name = $1)`,
        [tag],
      );
      most = Math.max(most, rows[0]?.n ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  return {
    async stop() {
      polling = false;
      await poll;
      return most;
    },
  };
}

/** Two of their Workers, one turn each, started together over the drill tenant's two rows. */
async function raceTheirWorkers(ctx: DrillContext, state: State, side: OperatorRace): Promise<void> {
  const tools = need(state.tools, 'the tool server');
  const tenant = need(state.tenant, 'the drill tenant').id;
  const n = ctx.profile.names;
  const p = n.pending_transactions;
  const e = n.expenses;
  const sup = ctx.system.supervisor();
  const suffix = randomBytes(3).toString('hex');
  const names = workers.map((worker) => `race-${worker.label.toLowerCase()}-${suffix}`);
  state.workerNames = names;
  const sampler = sampleLockWaits(ctx, side.tag);
  let lockWaits: number;
  try {
    await withEvidence(
      ctx,
      {
        label: 'Workers A and B claim at once',
        tables: [
          { name: p.tableName, filter: { [p.tenant.name]: tenant }, key: [p.key.name] },
          { name: e.tableName, filter: { [e.tenant.name]: tenant }, key: [...n.profile.expenses.idempotency_key] },
        ],
        expect: [`${e.tableName}:+2`],
        volatiles: p.lease_until ? [p.lease_until.name] : [],
      },
      async (log) => {
        await ctx.operator.request(
          { kind: 'start', processes: workers.map((worker) => worker.process), prompt: 'Start Workers A and B together' },
          async () => {
            await Promise.all(
              workers.map(async (worker, index) => {
                await ctx.system.stop(worker.process);
                ctx.defer(() => ctx.system.stop(worker.process));
                await startOperatorWorker(sup, ctx.profile, { name: names[index]!, processName: worker.process, tenant, tools, turns: 1 });
              }),
            );
          },
        );
        try {
          await waitFor('both Workers to finish', () => workers.every((worker) => ended(ctx, worker.process)), {
            timeoutMs: operatorRunTimeoutMs + 2 * side.holdMs,
            intervalMs: 20,
            signal: ctx.signal,
          });
        } catch (error) {
          if (!(error instanceof WaitTimeout)) throw error;
          const last = workers.map((worker) => `${worker.process}: ${sup.get(worker.process)?.recentLines.at(-1) ?? 'no output'}`);
          throw new CouldNotDetermine(`${side.worker} did not finish its one-turn run in time (${last.join('; ')})`, { cause: error });
        }
        side.exits = workers.map((worker) => {
          const info = sup.get(worker.process);
          return `${worker.process}: ${info?.signal ?? `exit ${info?.exitCode}`}`;
        });
        for (const exit of side.exits) log(exit);
        return 0;
      },
    );
  } finally {
    lockWaits = await sampler.stop();
  }
  state.lockWaits = lockWaits;
  ctx.observe('lock_waits_seen', lockWaits, lockWaits === 0);
  ctx.observe('worker_exits', side.exits);
  side.claims = await theirClaims(ctx, names, side.claimTool);
  const completed = n.tool_calls.values.completed;
  for (const [index, worker] of workers.entries()) {
    const claims = side.claims.filter((claim) => claim.worker === names[index]);
    ctx.observe(
      `claim by ${worker.process}`,
      claims.length > 0
        ? claims.map((claim) => `${claim.transaction_id ?? 'a row'} (${claim.status}${claim.error_code ? ` ${claim.error_code}` : ''})`)
        : 'no claim journaled',
      claims.length > 0 && claims.every((claim) => claim.status === completed),
    );
  }
  // The other calls of their runs too: a write that deadlocked is the race's as well.
  const c = n.tool_calls;
  if (c.error_code) {
    const t = n.turns;
    const r = n.runs;
    const worker = need(r.worker, 'runs.worker (checked before the race)');
    const rows = await query<{ tool: string; code: string }>(
      ctx,
      sql`select c.${c.tool}::text as tool, c.${c.error_code}::text as code
            from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} join ${r.table} r on r.${r.key} = t.${t.run}
           where r.${worker}::text = any(${names}::text[]) and c.${c.tool} <> ${side.claimTool}
             and c.${c.error_code}::text = any(${lockErrorCodes}::text[])`,
    );
    side.journalLockErrors = rows.map((row) => `${row.code} (${row.tool})`);
    ctx.observe('lock_errors_in_journal', side.journalLockErrors, rows.length === 0);
  } else {
    ctx.observe('lock_errors_in_journal', 'not recorded (tool_calls.error_code is not in the profile)');
  }
  // The processes' own words: a lock error they printed counts even if the journal kept none.
  const logged = [tools.name, ...workers.map((worker) => worker.process)].flatMap((process) =>
    lockErrorCodes.filter((code) => (sup.get(process)?.recentLines ?? []).some((line) => line.includes(code))).map((code) => `${code} in ${process}'s log`),
  );
  side.logLockErrors = logged;
  ctx.observe('lock_errors_in_logs', logged, logged.length === 0);
}

/** Each drill row after the race: its status, who claimed it, how many expenses name it (read in the tenant's setting). */
async function checkTheirRows(ctx: DrillContext, state: State, side: OperatorRace): Promise<void> {
  const n = ctx.profile.names;
  const p = n.pending_transactions;
  const e = n.expenses;
  const tenant = need(state.tenant, 'the drill tenant').id;
  const claimedBy = p.claimed_by ? sql`p.${p.claimed_by}::text` : sql`null::text`;
  const expenses = e.transaction
    ? sql`(select count(*)::int from ${e.table} e where e.${e.transaction}::text = p.${p.key}::text)`
    : sql`null::int`;
  const q = sql`select p.${p.key}::text as id, p.${p.status}::text as status, ${claimedBy} as claimed_by, ${expenses} as expenses
                  from ${p.table} p where p.${p.key}::text = any(${state.pending}::text[]) order by p.${p.key}`;
  ctx.showSql(shownSql(q));
  side.rows = await withPgClient(ctx.url, (client) =>
    inTransaction(client, async () => {
      // Row-level security on a target whose connecting role is not a superuser: read as the tenant.
      await client.query(sql`select set_config(${n.setting}, ${tenant}, true)`);
      return (await client.query<TheirRow>(q)).rows;
    }),
  );
  ctx.observe(
    'rows_after',
    side.rows.map((row) => `${row.id}: ${row.status}${row.claimed_by ? ` by ${row.claimed_by}` : ''}${row.expenses === null ? '' : `, ${row.expenses} ${e.tableName}`}`),
  );
  const once = side.rows.every((row) => row.status === p.values.processed && (row.expenses === null || row.expenses === 1));
  ctx.observe('processed_once', once, once);
}

/** The verdict on their Worker side, from the database, the journal and the processes' logs. */
function theirVerdict(ctx: DrillContext, state: State, side: OperatorRace): VerdictResult {
  const n = ctx.profile.names;
  const names = state.workerNames;
  // In failure lines a Worker is its process; in the pass line "A" is the one whose claim began first.
  const label = (name: string) => workers[names.indexOf(name)]?.process ?? name;
  const reasons: string[] = [];
  if (state.lockWaits > 0) {
    const sessions = state.lockWaits === 1 ? 'session' : 'sessions';
    reasons.push(`Postgres showed ${state.lockWaits} ${sessions} of ${side.toolServer} waiting on a lock another of its sessions held during the race`);
  }
  for (const claim of side.claims.filter((entry) => entry.status === n.tool_calls.values.failed || entry.error_code)) {
    reasons.push(`a claim by ${label(claim.worker)} failed${claim.error_code ? ` with ${claim.error_code}` : ''}: ${claim.error ?? 'no error recorded'}`);
  }
  if (side.journalLockErrors.length > 0) reasons.push(`calls failed with lock errors: ${side.journalLockErrors.join(', ')}`);
  if (side.logLockErrors.length > 0) reasons.push(`lock errors logged: ${side.logLockErrors.join(', ')}`);
  for (const row of side.rows) {
    if (row.status !== n.pending_transactions.values.processed) reasons.push(`${row.id} ended ${row.status}, not ${n.pending_transactions.values.processed}`);
    if (row.expenses !== null && row.expenses !== 1) reasons.push(`${row.id} has ${row.expenses} ${n.expenses.tableName} rows`);
  }
  if (reasons.length > 0) {
    const reason = reasons.join('; ');
    return { verdict: 'fail', evidence: reason, reason };
  }
  const unobserved = (why: string): VerdictResult => {
    const reason = `could not determine: ${why}`;
    return { verdict: 'could-not-determine', evidence: reason, reason };
  };
  const silent = names.filter((name) => !side.claims.some((claim) => claim.worker === name));
  if (silent.length > 0) {
    return unobserved(`${silent.map(label).join(' and ')} journaled no claim (${side.exits.join(', ')}): there was no race to look at`);
  }
  if (!n.tool_calls.started_at || !n.tool_calls.finished_at) {
    return unobserved('whether the two Workers\u2019 claims overlapped cannot be read without tool_calls.started_at and tool_calls.finished_at: add them to the profile');
  }
  // A: the Worker whose claim began first; the overlap: the longest time both claims were open at once.
  const span = (claim: TheirClaim) => [ms(claim.started_at), ms(claim.finished_at)] as const;
  const [a, b] = [...names].sort((x, y) => ms(side.claims.find((claim) => claim.worker === x)!.started_at) - ms(side.claims.find((claim) => claim.worker === y)!.started_at));
  let overlapMs = 0;
  for (const first of side.claims.filter((claim) => claim.worker === a)) {
    for (const second of side.claims.filter((claim) => claim.worker === b)) {
      const [s1, e1] = span(first);
      const [s2, e2] = span(second);
      overlapMs = Math.max(overlapMs, Math.min(e1, e2) - Math.max(s1, s2));
    }
  }
  const claimOf = (name: string) => side.claims.find((claim) => claim.worker === name)!;
  if (!(overlapMs > 0)) {
    const shown = (name: string) => `${label(name)}'s claim from ${claimOf(name).started_at} to ${claimOf(name).finished_at}`;
    return unobserved(
      `the two Workers\u2019 claims never overlapped (${shown(a!)}, ${shown(b!)}), so the race was not observed; ` +
        `have ${side.toolServer} honour {claim_hold_ms} (processes.tool_server.env) so that a claim holds its row lock that long`,
    );
  }
  const took = (name: string) => side.rows.find((row) => row.claimed_by === name)?.id ?? claimOf(name).transaction_id ?? 'a row';
  const counted = side.rows.every((row) => row.expenses !== null)
    ? `, one ${n.expenses.tableName} row each`
    : ` (${n.expenses.tableName} per transaction not counted: expenses.transaction is not in the profile)`;
  return {
    verdict: 'pass',
    evidence:
      `Two runs of ${side.worker}, A and B, claimed at once through ${side.toolServer}: A claimed ${took(a!)}, B claimed ${took(b!)} while A's claim was open ` +
      `(the claims overlapped ${Math.round(overlapMs)} ms; claim hold ${side.holdMs} ms). ` +
      `No duplicate processing: each of the ${side.rows.length} rows ${n.pending_transactions.values.processed} once${counted}. ` +
      `${lockErrors([])} (${state.lockWaits} lock waits seen).`,
  };
}

export const concurrencyClaimTest: Drill<State> = {
  number: 4,
  key: 'concurrency_claim_test',
  title: 'SKIP LOCKED claims',
  lesson: 4,
  habit: 'claims with FOR UPDATE SKIP LOCKED',
  tables: ['pending_transactions', 'tool_calls'],
  needs: ['tenants', 'pending_transactions', 'runs', 'turns', 'tool_calls', 'agent_events'],
  breakDescription: 'claims without SKIP LOCKED (plain FOR UPDATE): B waits for A\u2019s lock',
  fix: 'claim with SELECT ... FOR UPDATE SKIP LOCKED (with a lease) so a second Worker skips a locked row instead of waiting for it',
  init: () => ({ pending: [], workerNames: [], claims: [], lockWaits: 0 }),
  steps: [
    {
      id: 'inputs',
      title: 'Make a tenant with two pending transactions',
      why: 'The race needs two rows of its own: a tenant no other drill touches, so the target\u2019s own rows are never claimed.',
      async run(ctx, state) {
        state.operator = operatorRace(ctx);
        if (!state.operator) requireClaimColumns(ctx);
        state.tenant = await createDrillTenant(ctx, 'race');
        state.pending = await insertPending(ctx, state.tenant.id, sampleTransactions.slice(0, 2));
        ctx.observe('pending', state.pending);
      },
    },
    {
      ...referenceToolServer,
      async run(ctx, state) {
        if (state.operator) return startRaceToolServer(ctx, state, state.operator);
        return referenceToolServer.run(ctx, state);
      },
    },
    {
      id: 'race',
      title: 'Start Workers A and B together',
      why: 'Both claim at once: the first to lock (A) holds its row; the other (B) arrives while A holds it. SKIP LOCKED lets B take the next row without waiting.',
      operator: 'start',
      sql: (n) => {
        const p = n.pending_transactions;
        return [
          shownSql(`select ${p.key} from ${p.table} where ${p.tenant} = $1 and ${p.status} = $2 order by ${p.key} limit 1 for update skip locked`),
          `select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database() and application_name = 'sor-tool-server'`,
        ];
      },
      async run(ctx, state) {
        if (state.operator) return raceTheirWorkers(ctx, state, state.operator);
        const tools = need(state.tools, 'the tool server');
        const tenant = need(state.tenant, 'the drill tenant').id;
        const p = ctx.profile.names.pending_transactions;
        const sup = ctx.system.supervisor();
        const suffix = randomBytes(3).toString('hex');
        const names = workers.map((worker) => `race-${worker.label.toLowerCase()}-${suffix}`);
        state.workerNames = names;
        let lockWaits = 0;
        let polling = true;
        // Postgres's own view of the race, on a separate connection: the tool server's sessions
        // waiting for a lock (another application's lock waits on a busy target are not the claim's).
        const poll = withPgClient(ctx.url, async (client) => {
          while (polling) {
            const { rows } = await client.query<{ n: number }>(
              `select count(*)::int as n from pg_stat_activity
                where wait_event_type = 'Lock' and datname = current_database() and pid <> pg_backend_pid()
                  and application_name = $1`,
              [toolServerApplication],
            );
            lockWaits = Math.max(lockWaits, rows[0]?.n ?? 0);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        });
        try {
          await withEvidence(
            ctx,
            {
              label: 'Workers A and B claim at once',
              tables: [{ name: p.tableName, filter: { [p.tenant.name]: tenant }, key: [p.key.name] }],
              expect: [`${p.tableName}:=`],
              volatiles: p.lease_until ? [p.lease_until.name] : [],
            },
            async (log) => {
              await ctx.operator.request(
                { kind: 'start', processes: workers.map((worker) => worker.process), prompt: 'Start Workers A and B together' },
                async () => {
                  // Both at once: whichever locks first holds its row while the other claims.
                  await Promise.all(
                    workers.map((worker, index) => {
                      ctx.defer(() => ctx.system.stop(worker.process));
                      return startWorker(sup, {
                        name: names[index]!,
                        processName: worker.process,
                        tenant,
                        tools,
                        pace_ms: 0,
                        mode: 'claim-once',
                      });
                    }),
                  );
                },
              );
              try {
                await waitForTheRace(ctx, tools.name, names, () => lockWaits);
                await releaseUntilDone(ctx, tools.name, names);
              } catch (error) {
                if (!(error instanceof WaitTimeout)) throw error;
                throw new CouldNotDetermine(`the race could not be observed: ${error.message}`, { cause: error });
              }
              for (const worker of workers) {
                const exit = await sup.waitForExit(worker.process);
                log(`${worker.process} exited with ${exit.exitCode ?? exit.signal}`);
              }
              return 0;
            },
          );
        } finally {
          polling = false;
          await poll;
        }
        state.lockWaits = lockWaits;
        ctx.observe('lock_waits_seen', lockWaits, lockWaits === 0);
        const claims = await claimsOf(ctx, names);
        state.claims = claims;
        const completed = ctx.profile.names.tool_calls.values.completed;
        for (const [index, worker] of workers.entries()) {
          const claim = claims.find((row) => row.worker === names[index]);
          ctx.observe(
            `claim by ${worker.process}`,
            claim ? `${claim.transaction_id ?? 'nothing'} (${claim.status}${claim.error_code ? ` ${claim.error_code}` : ''})` : 'no claim journaled',
            claim?.status === completed && claim.transaction_id !== null,
          );
        }
      },
    },
    {
      id: 'processed-once',
      title: 'Check each row was claimed once',
      why: 'The whole point: no transaction is processed by two Workers.',
      sql: (n) => {
        const p = n.pending_transactions;
        return [shownSql(`select ${p.key}${p.claimed_by ? `, ${p.claimed_by}` : ''} from ${p.table} where ${p.key}::text = any($1::text[])`)];
      },
      async run(ctx, state) {
        if (state.operator) return checkTheirRows(ctx, state, state.operator);
        const p = ctx.profile.names.pending_transactions;
        const claims = state.claims;
        const ids = claims.map((claim) => claim.transaction_id).filter((id): id is string => id !== null);
        if (p.claimed_by) {
          const q = sql`select ${p.key}::text as id, ${p.claimed_by}::text as claimed_by from ${p.table}
                         where ${p.key}::text = any(${ids}::text[]) order by ${p.table}.${p.key}`;
          const rows = await query<{ id: string; claimed_by: string | null }>(ctx, q);
          ctx.observe('claimed_by', rows.map((row) => `${row.id}: ${row.claimed_by ?? 'nobody'}`));
        } else {
          ctx.observe('claimed_by', 'not recorded (pending_transactions.claimed_by is not in the profile)');
        }
        ctx.observe('distinct_rows', new Set(ids).size, new Set(ids).size === ids.length);
      },
    },
  ],
  verdict(ctx, state) {
    if (state.operator) return theirVerdict(ctx, state, state.operator);
    return referenceVerdict(state);
  },
};

function referenceVerdict({ claims, workerNames: names, lockWaits }: State): VerdictResult {
  // "A" is the Worker that got its lock first; "B" the one that came while A held it.
  const [a, b] = names
    .map((name) => claims.find((claim) => claim.worker === name))
    .sort((x, y) => ms(x?.locked_at ?? x?.finished_at) - ms(y?.locked_at ?? y?.finished_at));
  const reasons: string[] = [];
  const errors = claims.filter((claim) => claim.error_code);
  for (const claim of errors) reasons.push(`a claim failed with ${claim.error_code}: ${claim.error ?? ''}`);
  if (!a?.transaction_id || !b?.transaction_id) reasons.push(`A claimed ${a?.transaction_id ?? 'nothing'}, B claimed ${b?.transaction_id ?? 'nothing'}`);
  else if (a.transaction_id === b.transaction_id) reasons.push(`both Workers claimed ${a.transaction_id}: duplicate processing`);
  const waited = b && a ? ms(b.locked_at) - ms(b.started_at) : Number.NaN;
  const overlapped = a && b ? ms(b.locked_at) < ms(a.released_at) : false;
  // B asking only after A had let go is no race at all: nothing to blame on the claim.
  const askedAfterRelease = a && b ? ms(b.started_at) >= ms(a.released_at) : false;
  let unobserved: string | undefined;
  if (a?.transaction_id && b?.transaction_id && !overlapped) {
    if (askedAfterRelease) {
      unobserved = `B asked for a row only after A had released ${a.transaction_id}: the claims never overlapped, so the race was not observed`;
    } else if (b.started_at === null) {
      // When B asked is not journaled: a late lock may be a wait or no race at all.
      unobserved = `B got its lock only after A released ${a.transaction_id}, and when B asked is not recorded (tool_calls.started_at is not in the profile)`;
    } else reasons.push(`B got its lock only after A released ${a.transaction_id} (B waited ${Math.round(waited)} ms)`);
  }
  if (lockWaits > 0) reasons.push(`Postgres showed ${lockWaits} session(s) waiting on a lock during the race`);
  if (reasons.length > 0) {
    const reason = reasons.join('; ');
    return { verdict: 'fail', evidence: reason, reason };
  }
  if (unobserved) {
    const reason = `could not determine: ${unobserved}`;
    return { verdict: 'could-not-determine', evidence: reason, reason };
  }
  return {
    verdict: 'pass',
    evidence:
      `Worker A claimed pending_transaction ${a!.transaction_id}. Worker B skipped ${a!.transaction_id} and claimed ${b!.transaction_id}. ` +
      `${duplicateProcessing([a!.transaction_id!, b!.transaction_id!])}. ${lockErrors(errors.map((claim) => claim.error_code!))} ` +
      `(B locked its row ${Number.isNaN(waited) ? '' : `${Math.max(0, Math.round(waited))} ms after asking, `}while A held ${a!.transaction_id}; ${lockWaits} lock waits seen).`,
  };
}
