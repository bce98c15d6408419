// Drill 8, mcp_boundary_test (Lesson 8, MCP boundary). The Worker holds no
// database credentials and reaches the database only through four tools:
//   - a running Worker's real environment, read from the OS (/proc/<pid>/environ),
//     has no DATABASE_URL, no PG* variable and no variable holding a postgres URL
//     (names are recorded, never values);
//   - tools/list, asked as an MCP client with the token, is exactly claim, write,
//     queue, read;
//   - a drop_table call is refused by the MCP layer as an unknown tool (-32602);
//   - SQL-looking strings sent through the allowed tools are stored as data: the
//     oracle sees expenses +2 for the drill's tenant and the catalog is unchanged;
//   - the database's own statement log for the drill's window shows no DROP.
// The statement log: on the embedded cluster the drill turns log_statement on for
// the window (ALTER SYSTEM, reload, restored afterwards) and reads the server's log
// file between two marker statements; on another server it compares
// pg_stat_statements before and after; without either that check could not be
// determined, which fails the drill.
import { randomUUID } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { credentialVariables, parseEnviron } from '../reconciler/env.js';
import { isAlive } from '../reconciler/supervisor.js';
import { startWorker } from '../reconciler/launch.js';
import { errorMessage, ident, literal, withPgClient } from '../postgres/pg.js';
import { maskSecrets } from '../postgres/url.js';
import { waitFor } from '../util/wait.js';
import { withEvidence } from './evidence.js';
import { createDrillTenant, type DrillTenant } from './inputs.js';
import { callTool, withToolsClient, type ToolAnswer } from './mcp.js';
import { countWord, query } from './sql.js';
import type { Drill, DrillContext } from './types.js';

/** The seed's allow-list: the whole tool surface a Worker may see. */
export const allowedTools = ['claim', 'write', 'queue', 'read'] as const;

/** Strings an attacker (or a confused model) might send hoping they run as SQL. */
export const sqlLookingStrings = [`'); DROP TABLE expenses; --`, 'COMMIT; DROP TABLE expenses'] as const;

/** A statement that changes or destroys schema or data wholesale: what the window must not show. */
const rogue = /\b(drop|truncate)\b/i;

// ---------------------------------------------------------------- tool surface

export interface ToolSurface {
  listed: string[];
  /** Listed but not allowed (a raw SQL tool, a renamed tool's new name). */
  extra: string[];
  /** Allowed but not listed (a removed tool, a renamed tool's old name). */
  missing: string[];
  duplicates: string[];
  exact: boolean;
}

export function toolSurface(listed: readonly string[]): ToolSurface {
  const allowed: readonly string[] = allowedTools;
  const extra = [...new Set(listed.filter((name) => !allowed.includes(name)))];
  const missing = allowed.filter((name) => !listed.includes(name));
  const duplicates = [...new Set(listed.filter((name, index) => listed.indexOf(name) !== index))];
  return {
    listed: [...listed],
    extra,
    missing,
    duplicates,
    exact: extra.length === 0 && missing.length === 0 && duplicates.length === 0,
  };
}

function describeSurface(surface: ToolSurface): string {
  const parts: string[] = [];
  if (surface.extra.length > 0) parts.push(`not allowed: ${surface.extra.join(', ')}`);
  if (surface.missing.length > 0) parts.push(`missing: ${surface.missing.join(', ')}`);
  if (surface.duplicates.length > 0) parts.push(`listed twice: ${surface.duplicates.join(', ')}`);
  return (
    `tool surface lists ${countWord(surface.listed.length)} tools (${surface.listed.join(', ') || 'none'})` +
    (parts.length > 0 ? `; ${parts.join('; ')}` : '')
  );
}

// ---------------------------------------------------------------- the Worker's environment

export interface EnvironmentRead {
  pid: number;
  /** Every variable name the process was started with (never the values). */
  names: string[];
  /** DATABASE_URL and PG* names. */
  credentials: string[];
  /** Names (of any kind) whose value holds a postgres:// URL. */
  urlValued: string[];
}

/** Reads a process's environment from the OS and keeps only what the drill may show. */
export async function readProcessEnvironment(pid: number): Promise<EnvironmentRead> {
  const env = parseEnviron(await readFile(`/proc/${pid}/environ`, 'utf8'));
  const names = Object.keys(env).sort();
  return {
    pid,
    names,
    credentials: credentialVariables(env).sort(),
    urlValued: names.filter((name) => /postgres(ql)?:\/\//i.test(env[name] ?? '')),
  };
}

// ---------------------------------------------------------------- the statement log

const logSettings: ReadonlyArray<readonly [string, string]> = [
  ['log_statement', 'all'],
  // The database and user on every session's line, so only the target's statements are counted.
  ['log_line_prefix', '%m [%p] %q{db=%d}{user=%u} '],
];

export interface LogEntry {
  pid: string;
  database: string | undefined;
  user: string | undefined;
  /** LOG, DETAIL, STATEMENT, ERROR, ... */
  level: string;
  text: string;
}

/**
 * Splits the server's stderr log into entries. A message's own newlines are
 * followed by a tab (so bind parameters holding newlines cannot forge a line);
 * a line that is neither a tab continuation nor a prefixed line is the tail of
 * a line cut in two where the log was written in chunks, and is glued back.
 */
export function parseServerLog(text: string): LogEntry[] {
  const entries: LogEntry[] = [];
  const prefixed = /^.*? \[(\d+)\] (?:\{db=(.*?)\}\{user=(.*?)\} )?([A-Z][A-Z0-9]*):  (.*)$/;
  for (const line of text.split('\n')) {
    const last = entries.at(-1);
    if (line.startsWith('\t')) {
      if (last) last.text += `\n${line.slice(1)}`;
      continue;
    }
    const match = prefixed.exec(line);
    if (match) {
      entries.push({ pid: match[1]!, database: match[2], user: match[3], level: match[4]!, text: match[5]! });
    } else if (last && line !== '') {
      last.text += line;
    }
  }
  return entries;
}

/** The SQL of a statement entry (`statement: ...`, `execute <name>: ...`), else undefined. */
export function statementText(entry: LogEntry): string | undefined {
  if (entry.level !== 'LOG') return undefined;
  const match = /^(?:statement|execute [^:]*): ([\s\S]*)$/.exec(entry.text);
  return match ? match[1] : undefined;
}

export interface WindowReport {
  /** Statements of the target database between the markers. */
  statements: number;
  /** Of those, sent by the Worker side (the tool server's login). */
  workerStatements: number;
  /** DROP or TRUNCATE statements seen (and error STATEMENT lines quoting one), shortened. */
  rogue: string[];
  /** Worker-side statements between the drop_table markers. */
  dropTableStatements: number | undefined;
}

function markerIndex(entries: LogEntry[], marker: string, from = 0): number {
  return entries.findIndex((entry, index) => index >= from && (statementText(entry) ?? '').includes(marker));
}

/** Analyses the entries between the start and end markers for one database. */
export function analyseWindow(
  entries: LogEntry[],
  markers: { start: string; end: string; dropBefore?: string; dropAfter?: string },
  database: string,
  workerUser: string | undefined,
): WindowReport {
  const start = markerIndex(entries, markers.start);
  const end = markerIndex(entries, markers.end, Math.max(start, 0));
  if (start < 0 || end < 0) throw new Error('the markers of the window are not both in the log');
  const inWindow = entries.slice(start + 1, end).filter((entry) => entry.database === database);
  let statements = 0;
  let workerStatements = 0;
  const found: string[] = [];
  for (const entry of inWindow) {
    const sql = statementText(entry);
    if (sql !== undefined) {
      statements += 1;
      if (workerUser !== undefined && entry.user === workerUser) workerStatements += 1;
      if (rogue.test(sql)) found.push(sql);
    } else if (entry.level === 'STATEMENT' && rogue.test(entry.text)) {
      found.push(entry.text);
    }
  }
  let dropTableStatements: number | undefined;
  if (markers.dropBefore && markers.dropAfter) {
    const before = markerIndex(entries, markers.dropBefore, start);
    const after = markerIndex(entries, markers.dropAfter, Math.max(before, start));
    if (before >= 0 && after >= 0) {
      dropTableStatements = entries
        .slice(before + 1, after)
        .filter((entry) => entry.database === database && entry.user === workerUser && statementText(entry) !== undefined).length;
    }
  }
  const shorten = (sql: string) => {
    const line = sql.replace(/\s+/g, ' ').trim();
    return line.length > 120 ? `${line.slice(0, 117)}...` : line;
  };
  return { statements, workerStatements, rogue: found.map(shorten), dropTableStatements };
}

async function readFrom(file: string, offset: number): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size <= offset) return '';
    const buffer = Buffer.alloc(size - offset);
    await handle.read(buffer, 0, buffer.length, offset);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

async function fileSize(file: string): Promise<number> {
  const handle = await open(file, 'r');
  try {
    return (await handle.stat()).size;
  } finally {
    await handle.close();
  }
}

interface LogWindow {
  kind: 'server-log';
  file: string;
  offset: number;
  database: string;
  markers: { start: string; end: string; dropBefore: string; dropAfter: string };
  restore: () => Promise<void>;
}

interface StatRow {
  calls: number;
  query: string;
}

interface StatWindow {
  kind: 'pg_stat_statements';
  schema: string;
  before: Map<string, StatRow>;
}

type StatementWindow = LogWindow | StatWindow | { kind: 'unavailable'; reason: string };

/** A statement the drill issues so it can find its window in the log (simple protocol: logged with its text). */
async function marker(ctx: DrillContext, text: string): Promise<void> {
  const sql = `select ${literal(text)} as marker`;
  ctx.showSql(sql);
  await withPgClient(ctx.url, (client) => client.query(sql));
}

/**
 * Turns statement logging on for the whole cluster (the embedded cluster is the
 * drill's own) and returns the function that puts the previous settings back:
 * the values ALTER SYSTEM had written before, or none.
 */
async function enableStatementLog(ctx: DrillContext): Promise<() => Promise<void>> {
  const names = logSettings.map(([name]) => name);
  const previous = await withPgClient(ctx.url, async (client) => {
    try {
      const { rows } = await client.query<{ name: string; setting: string }>(
        `select name, setting from pg_file_settings
          where name = any($1) and sourcefile like '%postgresql.auto.conf' order by seqno`,
        [names],
      );
      return new Map(rows.map((row) => [row.name, row.setting]));
    } catch {
      return new Map<string, string>();
    }
  });
  let restored = false;
  const restore = async () => {
    if (restored) return;
    restored = true;
    await withPgClient(ctx.url, async (client) => {
      for (const [name, ours] of logSettings) {
        // A value equal to ours was left by a window that never closed (a killed console): reset it.
        const before = previous.get(name);
        const sql =
          before === undefined || before === ours ? `alter system reset ${name}` : `alter system set ${name} = ${literal(before)}`;
        ctx.showSql(sql);
        await client.query(sql);
      }
      ctx.showSql('select pg_reload_conf()');
      await client.query('select pg_reload_conf()');
    });
  };
  try {
    await withPgClient(ctx.url, async (client) => {
      for (const [name, value] of logSettings) {
        const sql = `alter system set ${name} = ${literal(value)}`;
        ctx.showSql(sql);
        await client.query(sql);
      }
      ctx.showSql('select pg_reload_conf()');
      await client.query('select pg_reload_conf()');
    });
    // A new session sees the postmaster's settings, which it has after signalling every backend.
    ctx.showSql(`select current_setting('log_statement'), current_setting('log_line_prefix')`);
    await waitFor(
      'the reloaded statement-log settings',
      () =>
        withPgClient(ctx.url, async (client) => {
          const { rows } = await client.query<{ ok: boolean }>(
            `select current_setting('log_statement') = $1 and current_setting('log_line_prefix') = $2 as ok`,
            logSettings.map(([, value]) => value),
          );
          return rows[0]?.ok === true;
        }),
      { timeoutMs: 5_000, intervalMs: 50, signal: ctx.signal },
    );
  } catch (error) {
    await restore().catch(() => {});
    throw error;
  }
  return restore;
}

async function statStatements(ctx: DrillContext): Promise<{ schema: string; rows: Map<string, StatRow> }> {
  const ext = await query<{ schema: string }>(
    ctx,
    `select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_stat_statements'`,
  );
  const schema = ext[0]?.schema;
  if (!schema) {
    throw new Error('no statement log: not the embedded cluster, and pg_stat_statements is not installed in this database');
  }
  const access = await query<{ ok: boolean; track: string | null }>(
    ctx,
    `select (select rolsuper from pg_roles where rolname = current_user) or pg_has_role(current_user, 'pg_read_all_stats', 'member') as ok,
            current_setting('pg_stat_statements.track', true) as track`,
  );
  if (!access[0]?.ok) {
    throw new Error("no statement log: pg_stat_statements hides other roles' statements from the connecting role (it needs pg_read_all_stats)");
  }
  if (access[0]?.track === 'none') throw new Error('no statement log: pg_stat_statements.track is none');
  try {
    const rows = await query<{ id: string; calls: number; query: string }>(
      ctx,
      `select queryid::text as id, calls::float8 as calls, query
         from ${ident(schema)}.pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())`,
    );
    return { schema, rows: new Map(rows.map((row) => [row.id, { calls: row.calls, query: row.query }])) };
  } catch (error) {
    throw new Error(`no statement log: pg_stat_statements cannot be read: ${errorMessage(error)}`);
  }
}

// ---------------------------------------------------------------- the catalog

async function tablesPresent(ctx: DrillContext): Promise<string[]> {
  const rows = await query<{ name: string }>(
    ctx,
    `select n.nspname || '.' || c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
      order by 1`,
  );
  return rows.map((row) => row.name);
}

function workerUser(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).username) || undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- observations

interface DropTableObservation {
  refused: boolean;
  code: number | undefined;
  text: string;
}

interface SqlStringsObservation {
  /** Tool calls that failed, as the tool said. */
  errors: string[];
  /** How many of the strings are stored verbatim as descriptions. */
  storedVerbatim: number;
  /** Rows the drill's tenant gained (by query, before and after). */
  delta: number;
  oracleSatisfied: boolean;
  tablesBefore: string[];
  tablesAfter: string[];
  /** Whether the read with an SQL-looking run_id returned no run. */
  readFoundNothing: boolean | undefined;
}

type StatementLogObservation =
  | { source: 'server log' | 'pg_stat_statements'; statements: number; workerStatements?: number; rogue: string[]; dropTableStatements?: number }
  | { source: 'unavailable'; reason: string };

export const mcpBoundaryTest: Drill = {
  number: 8,
  key: 'mcp_boundary_test',
  title: 'MCP boundary',
  lesson: 8,
  habit: 'the MCP boundary (no credentials in the Worker, a minimal tool allow-list)',
  tables: ['expenses', 'tool_calls'],
  breakDescription:
    'the tool server exposes a fifth tool `sql` that runs its argument, and the Worker is started with DATABASE_URL in its environment',
  fix:
    "build the Worker's environment from an allow-list (no DATABASE_URL, no PG* variables) and register exactly the four tools " +
    'claim, write, queue and read on the MCP server, each passing its arguments to the database as bind parameters',
  steps: [
    {
      id: 'tenant',
      title: 'Make a tenant for this drill',
      why: 'The SQL-looking writes land as rows of the drill’s own tenant, never in Alice’s or Bob’s.',
      async run(ctx) {
        ctx.observations.set('drill_tenant', await createDrillTenant(ctx, 'mcp'));
      },
    },
    {
      id: 'statement-log',
      title: 'Open the statement-log window',
      why: 'What reached the database is read from the database’s own log, not from what the tool server says it did.',
      sql: [
        "alter system set log_statement = 'all'",
        'select pg_reload_conf()',
        "select 'sor-drills window <id> start' as marker",
      ],
      async run(ctx) {
        let window: StatementWindow;
        if (ctx.embedded && ctx.serverLog) {
          const id = randomUUID();
          const markers = {
            start: `sor-drills window ${id} start`,
            end: `sor-drills window ${id} end`,
            dropBefore: `sor-drills window ${id} drop_table before`,
            dropAfter: `sor-drills window ${id} drop_table after`,
          };
          const offset = await fileSize(ctx.serverLog);
          const restore = await enableStatementLog(ctx);
          ctx.defer(restore);
          const database = (await query<{ db: string }>(ctx, 'select current_database() as db'))[0]!.db;
          await marker(ctx, markers.start);
          window = { kind: 'server-log', file: ctx.serverLog, offset, database, markers, restore };
          ctx.observe('statement_log', `server log ${ctx.serverLog}, window ${id}`);
        } else {
          try {
            const { schema, rows } = await statStatements(ctx);
            window = { kind: 'pg_stat_statements', schema, before: rows };
            ctx.observe('statement_log', `pg_stat_statements (${rows.size} statements recorded before the window)`);
          } catch (error) {
            window = { kind: 'unavailable', reason: maskSecrets(errorMessage(error)) };
            ctx.observe('statement_log', window.reason, false);
          }
        }
        ctx.observations.set('statement_window', window);
      },
    },
    {
      id: 'tool-server',
      title: 'Start the tool server',
      why: 'The tool server is the only process of the Worker’s side that holds database credentials.',
      async run(ctx) {
        const server = await ctx.system.toolServer({ breaks: ctx.broken ? { rawSqlTool: true } : {} });
        ctx.defer(() => ctx.system.stop(server.name));
        ctx.observations.set('tools', server);
        ctx.observe('tool_server', server.url.replace(/\/mcp$/, ''));
      },
    },
    {
      id: 'worker-env',
      title: 'Read the running Worker’s environment from the OS',
      why: 'What a process was started with is in /proc/<pid>/environ; no setting or log line can hide a credential there.',
      async run(ctx) {
        const tenant = ctx.observations.get('drill_tenant') as DrillTenant;
        const tools = ctx.observations.get('tools') as { url: string; token: string };
        const supervisor = ctx.system.supervisor();
        // A slow pace keeps it alive (asleep before its first claim) while the drill looks.
        await startWorker(supervisor, {
          name: tenant.worker,
          tenant: tenant.id,
          tools,
          pace_ms: 600_000,
          turns: 1,
          leakDatabaseUrl: ctx.broken ? await ctx.system.workerUrl() : undefined,
        });
        ctx.defer(() => ctx.system.stop(tenant.worker));
        // Once it prints, it runs the Worker's own code: the environment is the one it was exec'd with.
        await supervisor.waitForEvent(tenant.worker, 'run_started', { timeoutMs: 15_000 });
        const pid = supervisor.get(tenant.worker)?.pid;
        if (pid === undefined || !isAlive(pid)) throw new Error('the Worker is not running');
        ctx.observe('worker_pid', pid);
        try {
          const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
          if (!/worker\.js/.test(cmdline)) throw new Error(`pid ${pid} is not the Worker (${cmdline.trim()})`);
          const env = await readProcessEnvironment(pid);
          if (!isAlive(pid)) throw new Error(`the Worker (pid ${pid}) exited while its environment was read`);
          ctx.observe('worker_env_names', env.names);
          ctx.observe('worker_env', env, env.credentials.length === 0 && env.urlValued.length === 0);
        } catch (error) {
          const reason = `the Worker's environment could not be read from the OS: ${errorMessage(error)}`;
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
      async run(ctx) {
        const tools = ctx.observations.get('tools') as { url: string; token: string };
        const listed = await withToolsClient(tools, async (client) => (await client.listTools()).tools.map((tool) => tool.name));
        const surface = toolSurface(listed);
        ctx.observe('tools_listed', listed, surface.exact);
      },
    },
    {
      id: 'drop-table',
      title: 'Call a tool that is not on the list: drop_table',
      why: 'An unknown tool must be refused by the MCP layer itself (-32602), before anything reaches the database.',
      async run(ctx) {
        const tools = ctx.observations.get('tools') as { url: string; token: string };
        const window = ctx.observations.get('statement_window') as StatementWindow;
        if (window.kind === 'server-log') await marker(ctx, window.markers.dropBefore);
        const answer = await withToolsClient(tools, (client) => callTool(client, 'drop_table', { table: 'expenses', cascade: true }));
        if (window.kind === 'server-log') await marker(ctx, window.markers.dropAfter);
        const code = /MCP error (-?\d+)/.exec(answer.text)?.[1];
        const observation: DropTableObservation = {
          refused: answer.isError && /tool drop_table not found/i.test(answer.text),
          code: code === undefined ? undefined : Number(code),
          text: answer.text.slice(0, 200),
        };
        ctx.observe('drop_table', observation, observation.refused && observation.code === -32602);
      },
    },
    {
      id: 'sql-strings',
      title: 'Send SQL-looking strings through the allowed tools',
      why: 'Every argument is a bind parameter: text that looks like SQL must land as data and change nothing else.',
      sql: [
        'insert into expenses (tenant_id, idempotency_key, transaction_id, amount_cents, description) values ($1, $2, $3, $4, $5) on conflict (tenant_id, idempotency_key) do nothing returning id',
      ],
      async run(ctx) {
        const tenant = ctx.observations.get('drill_tenant') as DrillTenant;
        const tools = ctx.observations.get('tools') as { url: string; token: string };
        const countRows = async () =>
          (await query<{ n: number }>(ctx, 'select count(*)::int as n from expenses where tenant_id = $1', [tenant.id]))[0]?.n ?? 0;
        const tablesBefore = await tablesPresent(ctx);
        const rowsBefore = await countRows();
        const runId = randomUUID();
        const answers: ToolAnswer[] = [];
        let readAnswer: ToolAnswer | undefined;
        const result = await withEvidence(
          ctx,
          {
            label: `write ${sqlLookingStrings.length} SQL-looking descriptions through the tool server`,
            tables: [{ name: 'expenses', filter: { tenant_id: tenant.id }, key: ['tenant_id', 'idempotency_key'] }],
            expect: [
              `expenses:+${sqlLookingStrings.length}`,
              ...sqlLookingStrings.map((text) => `expenses:+{tenant_id=${JSON.stringify(tenant.id)},description=${JSON.stringify(text)}}`),
            ],
          },
          async (log) => {
            await withToolsClient(tools, async (client) => {
              for (const [index, text] of sqlLookingStrings.entries()) {
                const call = index + 1;
                const answer = await callTool(client, 'write', {
                  journal: {
                    run_id: runId,
                    worker: tenant.worker,
                    tenant: tenant.id,
                    turn: 1,
                    of: 1,
                    call,
                    ends_turn: call === sqlLookingStrings.length,
                  },
                  idempotency_key: `${tenant.id}:sql-looking-${call}`,
                  amount_cents: 100 * call,
                  description: text,
                });
                log(`write ${JSON.stringify(text)}: ${answer.text}`);
                answers.push(answer);
              }
              readAnswer = await callTool(client, 'read', { what: 'journal', run_id: `R-44' or '1'='1` });
              log(`read run_id "R-44' or '1'='1": ${readAnswer.text.slice(0, 200)}`);
            });
            return answers.every((answer) => !answer.isError) ? 0 : 1;
          },
        );
        const stored = await query<{ description: string }>(
          ctx,
          'select description from expenses where tenant_id = $1 and description = any($2)',
          [tenant.id, [...sqlLookingStrings]],
        );
        const rowsAfter = await countRows();
        const tablesAfter = await tablesPresent(ctx);
        const readRun = readAnswer?.value?.run;
        const observation: SqlStringsObservation = {
          errors: answers.filter((answer) => answer.isError).map((answer) => answer.text.slice(0, 200)),
          storedVerbatim: new Set(stored.map((row) => row.description)).size,
          delta: rowsAfter - rowsBefore,
          oracleSatisfied: result.expectations.length > 0 && result.expectations.every((e) => e.verdict === 'satisfied'),
          tablesBefore,
          tablesAfter,
          readFoundNothing: readAnswer && !readAnswer.isError ? readRun === null : undefined,
        };
        const ok =
          observation.errors.length === 0 &&
          observation.storedVerbatim === sqlLookingStrings.length &&
          observation.delta === sqlLookingStrings.length &&
          observation.oracleSatisfied &&
          observation.readFoundNothing === true &&
          sameList(tablesBefore, tablesAfter);
        ctx.observe('sql_strings', { ...observation, tablesBefore: tablesBefore.length, tablesAfter: tablesAfter.length }, ok);
        ctx.observations.set('sql_strings_detail', observation);
      },
    },
    {
      id: 'statement-log-read',
      title: 'Read the statement log for the window',
      why: 'Only the database can say no DROP reached it; the SQL-looking text must appear as bind parameters, never as a statement.',
      sql: ["select 'sor-drills window <id> end' as marker", 'alter system reset log_statement', 'select pg_reload_conf()'],
      async run(ctx) {
        const window = ctx.observations.get('statement_window') as StatementWindow;
        let observation: StatementLogObservation;
        if (window.kind === 'unavailable') {
          observation = { source: 'unavailable', reason: window.reason };
        } else if (window.kind === 'server-log') {
          await marker(ctx, window.markers.end);
          let entries: LogEntry[] = [];
          try {
            // Log lines reach the file asynchronously: wait for the end marker, with a deadline.
            await waitFor(
              'the end marker in the server log',
              async () => {
                entries = parseServerLog(await readFrom(window.file, window.offset));
                return markerIndex(entries, window.markers.end) >= 0;
              },
              { timeoutMs: 10_000, intervalMs: 50, signal: ctx.signal },
            );
          } catch (error) {
            await window.restore();
            const reason = `the statement log shows no window: ${errorMessage(error)} (is log_statement set on the server's command line?)`;
            ctx.observe('statement_log_window', reason, false);
            ctx.observations.set('statement_log_result', { source: 'unavailable', reason } satisfies StatementLogObservation);
            return;
          }
          await window.restore();
          const user = workerUser(await ctx.system.workerUrl());
          try {
            const report = analyseWindow(entries, window.markers, window.database, user);
            observation = { source: 'server log', ...report };
          } catch (error) {
            observation = { source: 'unavailable', reason: `the statement log could not be read: ${errorMessage(error)}` };
          }
        } else {
          try {
            const after = await statStatements(ctx);
            let statements = 0;
            const found: string[] = [];
            for (const [id, row] of after.rows) {
              const calls = row.calls - (window.before.get(id)?.calls ?? 0);
              if (calls <= 0) continue;
              statements += calls;
              if (rogue.test(row.query)) found.push(row.query.replace(/\s+/g, ' ').slice(0, 120));
            }
            observation = { source: 'pg_stat_statements', statements, rogue: found };
          } catch (error) {
            observation = { source: 'unavailable', reason: maskSecrets(errorMessage(error)) };
          }
        }
        ctx.observations.set('statement_log_result', observation);
        ctx.observe(
          'statement_log_window',
          observation.source === 'unavailable'
            ? observation.reason
            : `${observation.statements} statements (${observation.rogue.length} DROP or TRUNCATE)`,
          observation.source !== 'unavailable' && observation.rogue.length === 0,
        );
      },
    },
  ],
  verdict(ctx) {
    const o = ctx.observations;
    const env = o.get('worker_env') as EnvironmentRead | undefined;
    const envUnreadable = o.get('worker_env_unreadable') as string | undefined;
    const listed = (o.get('tools_listed') as string[] | undefined) ?? [];
    const surface = toolSurface(listed);
    const drop = o.get('drop_table') as DropTableObservation | undefined;
    const strings = o.get('sql_strings_detail') as SqlStringsObservation | undefined;
    const log = o.get('statement_log_result') as StatementLogObservation | undefined;

    const failures: string[] = [];
    const undetermined: string[] = [];
    if (envUnreadable || !env) undetermined.push(envUnreadable ?? "the Worker's environment was not read");
    else if (env.credentials.length > 0 || env.urlValued.length > 0) {
      const names = [...new Set([...env.credentials, ...env.urlValued])];
      failures.push(`Worker env has ${names.join(', ')} (pid ${env.pid}, read from /proc)`);
    }
    if (!surface.exact) failures.push(describeSurface(surface));
    if (!drop) failures.push('the drop_table call was not made');
    else if (!drop.refused || drop.code !== -32602) {
      failures.push(
        `disallowed drop_table call was not refused as an unknown tool (${drop.code === undefined ? 'no MCP error code' : `code ${drop.code}`}: ${drop.text})`,
      );
    } else if (log?.source === 'server log' && (log.dropTableStatements ?? 0) > 0) {
      failures.push(`the drop_table call reached the database: ${log.dropTableStatements} statements from the tool server`);
    }
    if (!strings) failures.push('the SQL-looking strings were not sent');
    else {
      if (strings.errors.length > 0) failures.push(`a write of an SQL-looking string failed: ${strings.errors[0]}`);
      const gone = strings.tablesBefore.filter((name) => !strings.tablesAfter.includes(name));
      const added = strings.tablesAfter.filter((name) => !strings.tablesBefore.includes(name));
      if (gone.length > 0 || added.length > 0) {
        failures.push(
          `SQL-looking strings changed the catalog (${[...gone.map((name) => `${name} gone`), ...added.map((name) => `${name} added`)].join(', ')})`,
        );
      }
      if (strings.errors.length === 0 && (strings.delta !== sqlLookingStrings.length || strings.storedVerbatim !== sqlLookingStrings.length)) {
        failures.push(
          `SQL-looking strings were not stored as data: expenses +${strings.delta}, ${strings.storedVerbatim} of ${sqlLookingStrings.length} stored verbatim`,
        );
      } else if (strings.errors.length === 0 && !strings.oracleSatisfied) {
        failures.push('the oracle did not see the SQL-looking strings land as expenses rows');
      }
      if (strings.readFoundNothing === false) failures.push('a read with an SQL-looking run_id returned a run');
      if (strings.readFoundNothing === undefined) failures.push('the read with an SQL-looking run_id failed');
    }
    if (!log) undetermined.push('the statement log was not read');
    else if (log.source === 'unavailable') undetermined.push(log.reason);
    else if (log.rogue.length > 0) {
      failures.push(`Database connection logs show ${log.rogue.length} rogue quer${log.rogue.length === 1 ? 'y' : 'ies'}: ${log.rogue.join(' | ')}`);
    }

    if (failures.length > 0) {
      const reason = `MCP boundary breached: ${failures.join('; ')}${undetermined.length > 0 ? `; could not determine: ${undetermined.join('; ')}` : ''}`;
      return { verdict: 'fail', evidence: reason, reason };
    }
    if (undetermined.length > 0) {
      const reason = `could not determine: ${undetermined.join('; ')}`;
      return { verdict: 'could-not-determine', evidence: reason, reason };
    }
    const envLine = env!;
    const logLine = log as Exclude<StatementLogObservation, { source: 'unavailable' }>;
    const reached =
      logLine.source === 'server log' && logLine.dropTableStatements !== undefined
        ? `, ${logLine.dropTableStatements} statements reached the database`
        : '';
    const window =
      logLine.source === 'server log'
        ? `${logLine.statements} statements in the window, ${logLine.workerStatements ?? 0} from the tool server, ${logLine.rogue.length} DROP`
        : `pg_stat_statements: ${logLine.statements} statement executions in the window, ${logLine.rogue.length} DROP`;
    return {
      verdict: 'pass',
      evidence:
        `Worker env has no DATABASE_URL (pid ${envLine.pid}: ${envLine.names.length} variables read from /proc, no PG* and no postgres URL). ` +
        `Tool surface lists ${countWord(surface.listed.length)} allowed operations (${surface.listed.join(', ')}). ` +
        `Disallowed drop_table call refused at MCP layer with tool-not-found error (${drop!.code}${reached}). ` +
        `SQL-looking strings stored as data: expenses +${strings!.delta}, catalog unchanged (${strings!.tablesAfter.length} relations). ` +
        `Database connection logs show no rogue queries (${window}).`,
    };
  },
};

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}
