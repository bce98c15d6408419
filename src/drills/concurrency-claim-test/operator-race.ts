// The race on the operator's own Worker side (the profile's processes): two of their
// Workers through their tool server when declared (else the reference one), which is
// asked for a visible hold ({claim_hold_ms}): their code has no release signal, so B
// must claim while A's hold lasts. A starts first; B once the database shows A's claim
// holding its row.
import { inTransaction, withPgClient } from '../../postgres/pg.js';
import { sql } from '../../postgres/sql.js';
import { waitFor, WaitTimeout } from '../../util/wait.js';
import { naturalKeys, withEvidence } from '../evidence.js';
import { drivesTheirWorker, hasOperator, operatorCommand, sessionTag, startOperatorToolServer, startOperatorWorker, whose } from '../operator-side.js';
import { CouldNotDetermine } from '../runner.js';
import { query, shownSql } from '../sql.js';
import { need, type DrillContext } from '../types.js';
import { startAThenB } from './a-then-b.js';
import { checkClaimable, theirClaims } from './claims.js';
import { sampleLockWaits } from './locks.js';
import { ended, leaseMs, toolServerApplication, workerNames, workers, type OperatorRace, type State, type TheirRow } from './state.js';

/**
 * The least hold the drill asks the operator's tool server for ({claim_hold_ms}): B, started
 * once A holds its row, must start and claim within it (a process start and an MCP session).
 */
const operatorMinHoldMs = 2_000;
/** How long a Worker of a one-turn run may take, its claim hold aside. */
const operatorRunTimeoutMs = 30_000;
/** SQLSTATEs no claim with SKIP LOCKED raises: lock not available, deadlock. */
const lockErrorCodes = ['55P03', '40P01'];

/**
 * Whose Worker side races: undefined for the reference one; the operator's Workers when
 * the profile declares their Worker (through their tool server when declared too).
 */
export function operatorRace(ctx: DrillContext): OperatorRace | undefined {
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
export async function startRaceToolServer(ctx: DrillContext, state: State, side: OperatorRace): Promise<void> {
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

/** Two of their Workers, one turn each, over the drill tenant's two rows: A first, B while A holds its row. */
export async function raceTheirWorkers(ctx: DrillContext, state: State, side: OperatorRace): Promise<void> {
  const tools = need(state.tools, 'the tool server');
  const tenant = need(state.tenant, 'the drill tenant').id;
  const n = ctx.profile.names;
  const p = n.pending_transactions;
  const e = n.expenses;
  const sup = ctx.system.supervisor();
  const names = workerNames;
  state.workerNames = names;
  const sampler = sampleLockWaits(ctx, side.tag, 'its own');
  let lockWaits: number;
  try {
    await withEvidence(
      ctx,
      {
        label: 'Worker A claims first; Worker B claims while A holds its row',
        tables: [
          { name: p.tableName, filter: { [p.tenant.name]: tenant }, key: [p.key.name] },
          { name: e.tableName, filter: { [e.tenant.name]: tenant }, key: [...n.profile.expenses.idempotency_key] },
        ],
        expect: [`${e.tableName}:+2`],
        volatiles: [...(p.lease_until ? [p.lease_until.name] : []), ...naturalKeys(ctx, ['pending_transactions'])],
      },
      async (log) => {
        const start = await startAThenB(ctx, {
          tag: side.tag,
          toolServer: side.toolServer,
          timeoutMs: operatorRunTimeoutMs,
          start: async (worker) => {
            await ctx.system.stop(worker.process);
            ctx.defer(() => ctx.system.stop(worker.process));
            await startOperatorWorker(sup, ctx.profile, { name: worker.process, processName: worker.process, tenant, tools, turns: 1 });
            log(`${worker.process} started`);
          },
        });
        if (!start.bStarted) throw new CouldNotDetermine(start.reason);
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
  side.claims = await theirClaims(ctx, tenant, names, side.claimTool);
  const completed = n.tool_calls.values.completed;
  for (const worker of workers) {
    const claims = side.claims.filter((claim) => claim.worker === worker.process);
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
           where r.${r.tenant}::text = ${tenant} and r.${worker}::text = any(${names}::text[]) and c.${c.tool} <> ${side.claimTool}
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
export async function checkTheirRows(ctx: DrillContext, state: State, side: OperatorRace): Promise<void> {
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
