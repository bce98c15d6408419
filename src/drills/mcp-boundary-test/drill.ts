// Drill 8, mcp_boundary_test (Lesson 8, MCP boundary). The Worker holds no
// database credentials and reaches the database only through four tools:
//   - a running Worker's real environment, read from the OS (/proc/<pid>/environ),
//     has no DATABASE_URL, no PG* variable and no variable holding a postgres URL
//     (names are recorded, never values);
//   - tools/list, asked as an MCP client with the token, is exactly claim, write,
//     queue, read;
//   - a drop_table call is refused by the MCP layer as an unknown tool (-32602);
//   - SQL-looking strings sent through the allowed tools are stored as data: the
//     oracle sees expenses +2 for the drill's tenant and the catalog is unchanged
//     (the expenses table and its columns are the profile's: ctx.profile.names);
//   - the database's own statement log for the drill's window shows no DROP.
// The statement log (statement-log.ts): the server's log file on the embedded
// cluster, pg_stat_statements on another server; without either that check could
// not be determined, which fails the drill.
//
// When the profile declares the operator's own processes, theirs are drilled: their
// tool server (its tool list held to the profile's `allowed`, the SQL-looking
// strings sent through its declared write template) and their Worker on a short run
// (one pending transaction of the drill tenant, one turn), its environment read from
// /proc the moment it runs (worker-env.ts). The evidence names whose processes they were.
import { readProcessCommandLine, readProcessEnvironment, type EnvironmentRead } from '../../reconciler/proc-env.js';
import { isAlive } from '../../reconciler/supervisor.js';
import { startWorker } from '../../reconciler/launch.js';
import { errorMessage } from '../../postgres/pg.js';
import { drillTenantStep, toolServerStep, type TenantState, type ToolServerState } from '../common-steps.js';
import { insertPending } from '../inputs.js';
import { declaredWrite, operatorBreakUnavailable, startOperatorTools } from '../mcp.js';
import { hasOperator, operatorCommand, startOperatorWorker, whose } from '../operator-side.js';
import type { ToolSpec } from '../../postgres/profile/index.js';
import { need, type Drill, type DrillContext } from '../types.js';
import {
  betweenDropMarkers,
  openStatementWindow,
  readStatementWindow,
  type StatementLogObservation,
  type StatementWindow,
} from './statement-log.js';
import {
  callDropTable,
  listTools,
  sendSqlLookingStrings,
  storedAsData,
  toolSurface,
  type DropTableObservation,
  type SqlStringsObservation,
} from './tool-surface.js';
import { boundaryVerdict } from './verdict.js';
import { programOf, readWorkerEnvironment } from './worker-env.js';

export interface State extends TenantState, ToolServerState {
  /** Where the window's statements are read from; opened before the tool server starts. */
  window?: StatementWindow;
  /** The running Worker's environment as the OS holds it (names only). */
  workerEnv?: EnvironmentRead;
  /** Why the Worker's environment could not be read, when it could not. */
  workerEnvUnreadable?: string;
  /** What tools/list answered, in its order. */
  listed: string[];
  /** How the drop_table call was answered. */
  drop?: DropTableObservation;
  /** What the SQL-looking writes left in the database. */
  strings?: SqlStringsObservation;
  /** What the statement log of the window showed. */
  log?: StatementLogObservation;
  /** The operator's tool server, when the profile declares one: its name in evidence, its allow-list, its write tool. */
  operatorTools?: { whose: string; allowed: string[]; write: ToolSpec };
  /** The operator's Worker, when the profile declares one: its name in evidence. */
  operatorWorker?: string;
}

const referenceToolServer = toolServerStep<State>({
  why: 'The tool server is the only process of the Worker’s side that holds database credentials.',
  hint: {
    look: 'tool_server is the address the Worker is given, with a per-session token. This process holds the database credentials; the Worker gets only the address and the token.',
    mistake: 'Giving the Worker DATABASE_URL as well, so it can fall back to SQL when a tool is missing. Once the agent holds the credentials, the tool allow-list is advice, not a boundary.',
  },
  breaks: { rawSqlTool: true },
});

/** How long the operator's Worker may take over its short run (one turn) before it is stopped. */
const operatorRunTimeoutMs = 30_000;

/** What the deliberate break puts in the Worker's DATABASE_URL: shaped like a credential, opening nothing. */
const leakedUrlStandIn = 'postgres://worker_write:stand-in-not-a-password@127.0.0.1:9/leaked';

export const mcpBoundaryTest: Drill<State> = {
  number: 8,
  key: 'mcp_boundary_test',
  title: 'MCP boundary',
  lesson: 8,
  habit: 'the MCP boundary (no credentials in the Worker, a minimal tool allow-list)',
  tables: ['expenses', 'tool_calls'],
  needs: ['tenants', 'expenses', 'pending_transactions', 'outbox', 'runs', 'turns', 'tool_calls', 'agent_events'],
  breakDescription:
    'the tool server exposes a fifth tool `sql` that runs its argument, and the Worker is started with DATABASE_URL in its environment',
  fix:
    "build the Worker's environment from an allow-list (no DATABASE_URL, no PG* variables) and register exactly the four tools " +
    'claim, write, queue and read on the MCP server, each passing its arguments to the database as bind parameters',
  init: () => ({ listed: [] }),
  steps: [
    drillTenantStep('mcp', 'The SQL-looking writes land as rows of the drill’s own tenant, never in Alice’s or Bob’s.', {
      look: "tenant is a fresh drill-mcp tenant: the SQL-looking strings will be stored as its expenses rows, so the oracle can count exactly +2 for it and nobody else's rows change.",
      mistake: "Sending hostile-looking test input into a real tenant. Even stored harmlessly as text, it now sits in someone's books; test input belongs to a tenant made for the test.",
    }),
    {
      id: 'statement-log',
      title: 'Open the statement-log window',
      why: 'What reached the database is read from the database’s own log, not from what the tool server says it did.',
      hint: {
        look: "statement_log says where the database's own record of statements comes from: the server's log file with a window id, or pg_stat_statements. If neither is available, the last step cannot judge and the drill fails.",
        mistake: "Taking the tool server's own log as proof of what reached the database. A buggy or compromised server logs what it chooses; the database's statement log records what actually ran.",
      },
      sql: [
        "alter system set log_statement = 'all'",
        'select pg_reload_conf()',
        "select 'sor-drills window <id> start' as marker",
      ],
      async run(ctx, state) {
        const window = await openStatementWindow(ctx);
        state.window = window;
        if (window.kind === 'server-log') ctx.observe('statement_log', `server log ${window.file}, window ${window.id}`);
        else if (window.kind === 'pg_stat_statements') {
          ctx.observe('statement_log', `pg_stat_statements (${window.before.size} statements recorded before the window)`);
        } else ctx.observe('statement_log', window.reason, false);
      },
    },
    {
      ...referenceToolServer,
      async run(ctx, state) {
        const theirTools = hasOperator(ctx.profile, 'tool_server');
        const theirWorker = hasOperator(ctx.profile, 'worker');
        // The break's two halves switch our tool server and our Worker; neither can be applied to theirs.
        if (ctx.broken && theirTools && theirWorker) throw operatorBreakUnavailable(ctx, 'tool server and Worker');
        if (!theirTools) return referenceToolServer.run(ctx, state);
        if (ctx.broken) ctx.observe('break_not_applied', 'the raw SQL tool: the tool server is the operator’s own');
        const write = declaredWrite(ctx.profile, 'the SQL-looking strings');
        const server = await startOperatorTools(ctx);
        state.tools = server;
        state.operatorTools = { whose: server.whose, allowed: server.allowed, write };
      },
    },
    {
      id: 'worker-env',
      title: 'Read the running Worker’s environment from the OS',
      why: 'What a process was started with is in /proc/<pid>/environ; no setting or log line can hide a credential there.',
      hint: {
        look: 'worker_env_names lists the variable names the running Worker really has, read from /proc/<pid>/environ. worker_env must show no credentials and no URL-valued variable: no DATABASE_URL, no PG* variable.',
        mistake: "Checking the launch script or .env file instead of the live process. A child inherits its parent's whole environment unless it is built from an allow-list, so a variable never written for the Worker can still be there.",
      },
      async run(ctx, state) {
        if (hasOperator(ctx.profile, 'worker') || state.operatorTools) return readAtOnce(ctx, state);
        const tenant = need(state.tenant, 'the drill tenant');
        const tools = need(state.tools, 'the tool server');
        const supervisor = ctx.system.supervisor();
        // A slow pace keeps it alive (asleep before its first claim) while the drill looks.
        await startWorker(supervisor, {
          name: tenant.worker,
          tenant: tenant.id,
          tools,
          pace_ms: 600_000,
          turns: 1,
          // The break hands the Worker a database URL; a stand-in one, so no real credential
          // (on someone else's server, the operator's own) ever sits in a child's environment.
          leakDatabaseUrl: ctx.broken ? leakedUrlStandIn : undefined,
        });
        ctx.defer(() => ctx.system.stop(tenant.worker));
        // Once it prints, it runs the Worker's own code: the environment is the one it was exec'd with.
        await supervisor.waitForEvent(tenant.worker, 'run_started', { timeoutMs: 15_000 });
        const pid = supervisor.get(tenant.worker)?.pid;
        if (pid === undefined || !isAlive(pid)) throw new Error('the Worker is not running');
        ctx.observe('worker_pid', pid);
        try {
          const cmdline = await readProcessCommandLine(pid);
          if (!/worker\.js/.test(cmdline)) throw new Error(`pid ${pid} is not the Worker (${cmdline.trim()})`);
          const env = await readProcessEnvironment(pid);
          if (!isAlive(pid)) throw new Error(`the Worker (pid ${pid}) exited while its environment was read`);
          state.workerEnv = env;
          ctx.observe('worker_env_names', env.names);
          ctx.observe('worker_env', env, env.credentials.length === 0 && env.urlValued.length === 0);
        } catch (error) {
          const reason = `the Worker's environment could not be read from the OS: ${errorMessage(error)}`;
          state.workerEnvUnreadable = reason;
          ctx.observe('worker_env_unreadable', reason, false);
        }
        await ctx.system.stop(tenant.worker);
        ctx.observe('worker_stopped', supervisor.get(tenant.worker)?.state ?? 'unknown');
      },
    },
    {
      id: 'tools-list',
      title: 'List the tools as an MCP client',
      why: 'The allow-list is what tools/list answers to a client holding the token: exactly claim, write, queue, read.',
      hint: {
        look: 'tools_listed must be exactly claim, write, queue, read, and nothing else. In the deliberate break a fifth tool named sql appears, which runs whatever text it is given.',
        mistake: "Adding a generic run_sql or execute tool for flexibility. It turns four narrow tools into a proxy for full database access, with the Worker role's grants as the only limit.",
      },
      async run(ctx, state) {
        state.listed = await listTools(need(state.tools, 'the tool server'));
        ctx.observe('tools_listed', state.listed, toolSurface(state.listed, state.operatorTools?.allowed).exact);
      },
    },
    {
      id: 'drop-table',
      title: 'Call a tool that is not on the list: drop_table',
      why: 'An unknown tool must be refused by the MCP layer itself (-32602), before anything reaches the database.',
      hint: {
        look: 'drop_table must show refused with code -32602 (invalid params), what the MCP server answers for a tool it does not have, before any handler runs. The statement-log window will confirm nothing reached the database.',
        mistake: 'Guarding forbidden actions inside a generic tool, such as refusing text that contains DROP. Strings can be spelled around a filter; a tool that is not registered cannot be called at all.',
      },
      async run(ctx, state) {
        const tools = need(state.tools, 'the tool server');
        const window = need(state.window, 'the statement-log window');
        const drop = await betweenDropMarkers(ctx, window, () => callDropTable(tools, ctx.profile.names.expenses.tableName));
        state.drop = drop;
        ctx.observe('drop_table', drop, drop.refused && drop.code === -32602);
      },
    },
    {
      id: 'sql-strings',
      title: 'Send SQL-looking strings through the allowed tools',
      why: 'Every argument is a bind parameter: text that looks like SQL must land as data and change nothing else.',
      hint: {
        look: 'sql_strings should show the SQL-looking text stored as data: two new expenses rows for the drill tenant, and as many tables after as before. The statement shown is the INSERT with $1, $2 placeholders.',
        mistake: "Building the statement by pasting tool arguments into SQL text. A description like '); drop table expenses; -- then runs as SQL. Passing every argument as a bind parameter keeps it data, whatever it says.",
      },
      sql: (n) => {
        const e = n.expenses;
        const columns = [e.tenant, e.idempotencyKey, e.transaction, e.amount, e.description].filter((column) => column !== undefined);
        const values = columns.map((_, index) => `$${index + 1}`);
        return [
          `insert into ${e.table} (${columns.join(', ')}) values (${values.join(', ')}) on conflict (${e.conflict.join(', ')}) do nothing returning ${e.key}`,
        ];
      },
      async run(ctx, state) {
        const strings = await sendSqlLookingStrings(
          ctx,
          need(state.tenant, 'the drill tenant'),
          need(state.tools, 'the tool server'),
          state.operatorTools?.write,
        );
        state.strings = strings;
        ctx.observe(
          'sql_strings',
          { ...strings, tablesBefore: strings.tablesBefore.length, tablesAfter: strings.tablesAfter.length },
          storedAsData(strings),
        );
      },
    },
    {
      id: 'statement-log-read',
      title: 'Read the statement log for the window',
      why: 'Only the database can say no DROP reached it; the SQL-looking text must appear as bind parameters, never as a statement.',
      hint: {
        look: 'statement_log_window counts the statements the database ran in the window and how many were DROP, TRUNCATE or DDL from the tool server: that must be 0. The SQL-looking text shows only as parameters.',
        mistake: "Leaving log_statement = 'all' on after a test. On a busy server it logs every statement with its parameter values, filling the disk and copying tenant data into logs; this step resets it as the window closes.",
      },
      sql: ["select 'sor-drills window <id> end' as marker", 'alter system reset log_statement', 'select pg_reload_conf()'],
      async run(ctx, state) {
        const log = await readStatementWindow(ctx, need(state.window, 'the statement-log window'));
        state.log = log;
        ctx.observe(
          'statement_log_window',
          log.source === 'unavailable' ? log.reason : `${log.statements} statements (${log.rogue.length} DROP, TRUNCATE or tool-server DDL)`,
          log.source !== 'unavailable' && log.rogue.length === 0,
        );
      },
    },
  ],
  verdict: boundaryVerdict,
};

/**
 * The worker-env step when the operator's processes are in play: their Worker on a
 * short run (or the reference Worker against their tool server, whose tool names it
 * does not know), its environment read from /proc the moment it runs.
 */
async function readAtOnce(ctx: DrillContext, state: State): Promise<void> {
  const tenant = need(state.tenant, 'the drill tenant');
  const tools = need(state.tools, 'the tool server');
  const supervisor = ctx.system.supervisor();
  const command = operatorCommand(ctx.profile, 'worker');
  let reading;
  if (command) {
    if (ctx.broken) ctx.observe('break_not_applied', 'DATABASE_URL handed to the Worker: the Worker is the operator’s own');
    const who = whose('Worker', command);
    state.operatorWorker = who;
    // One pending transaction of the drill tenant: a run of one turn through their tools, inside the window.
    await insertPending(ctx, tenant.id, [{ amount_cents: 1234, description: 'MCP boundary drill: one turn' }]);
    reading = await readWorkerEnvironment(ctx, {
      name: tenant.worker,
      who,
      program: programOf(command),
      start: () => startOperatorWorker(supervisor, ctx.profile, { name: tenant.worker, tenant: tenant.id, tools, turns: 1, databaseUrl: () => ctx.system.workerUrl() }),
      runTimeoutMs: operatorRunTimeoutMs,
    });
  } else {
    reading = await readWorkerEnvironment(ctx, {
      name: tenant.worker,
      who: 'the reference Worker',
      program: 'worker.js',
      start: () =>
        startWorker(supervisor, {
          name: tenant.worker,
          tenant: tenant.id,
          tools,
          pace_ms: 600_000,
          turns: 1,
          leakDatabaseUrl: ctx.broken ? leakedUrlStandIn : undefined,
        }),
      runTimeoutMs: 0,
    });
  }
  if ('unreadable' in reading) {
    state.workerEnvUnreadable = reading.unreadable;
    ctx.observe('worker_env_unreadable', reading.unreadable, false);
    return;
  }
  const clean = reading.env.credentials.length === 0 && reading.env.urlValued.length === 0;
  ctx.observe('worker_env_names', reading.env.names);
  ctx.observe('worker_env', reading.env, clean);
  ctx.observe('worker_env_processes', reading.processes);
  ctx.observe('worker_run', reading.run, reading.runOk);
  ctx.observe('worker_stopped', supervisor.get(tenant.worker)?.state ?? 'unknown');
  // A credential seen is seen. A clean environment of a Worker that never did its run is not
  // taken for its working one (what it would have started, or been handed, while working is unseen).
  if (clean && !reading.runOk) {
    const fix = state.operatorTools
      ? 'fix processes.worker in the profile'
      : 'it talked to the reference tool server (tools claim, write, queue, read): declare processes.tool_server too, or fix processes.worker';
    const reason = `${state.operatorWorker ?? 'the Worker'} did not finish its short run (${reading.run}), so its environment while working was not seen: ${fix}`;
    state.workerEnvUnreadable = reason;
    ctx.observe('worker_env_unreadable', reason, false);
    return;
  }
  state.workerEnv = reading.env;
}
