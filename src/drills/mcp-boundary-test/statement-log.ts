// The statement log of the boundary drill's window: what reached the database,
// from the database's own account. On the embedded cluster (the drill's own) the
// window turns log_statement on for the whole cluster (ALTER SYSTEM, reload,
// restored afterwards) and reads the server's log file between two marker
// statements; on another server it compares pg_stat_statements before and after;
// without either, the check could not be determined, which fails the drill.
//
// log_statement is a cluster-wide setting: two windows open at once on one cluster
// (two drills on two of its databases) would switch each other's logging off. A
// window therefore holds a session advisory lock in the cluster's maintenance
// database while it is open, so windows on one cluster take turns.
import { randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import { connect, errorMessage, ident, literal, withPgClient } from '../../postgres/pg.js';
import { maskSecrets, withDatabase } from '../../postgres/url.js';
import { waitFor } from '../../util/wait.js';
import { query } from '../sql.js';
import type { DrillContext } from '../types.js';
import { analyseWindow, isRogue, logSettings, markerIndex, parseServerLog, type LogEntry } from './server-log.js';

interface LogWindow {
  kind: 'server-log';
  /** The window's id, in each of its markers. */
  id: string;
  file: string;
  /** Where the log file ended when the window opened: nothing before it is read. */
  offset: number;
  database: string;
  markers: { start: string; end: string; dropBefore: string; dropAfter: string };
  /** Puts the cluster's log settings back (also deferred to the drill's end). */
  restore: () => Promise<void>;
}

interface StatRow {
  calls: number;
  query: string;
  /** The role that ran it. */
  login: string;
}

interface StatWindow {
  kind: 'pg_stat_statements';
  schema: string;
  before: Map<string, StatRow>;
}

export type StatementWindow = LogWindow | StatWindow | { kind: 'unavailable'; reason: string };

/** What the window showed, or why it could not be read. */
export type StatementLogObservation =
  | { source: 'server log' | 'pg_stat_statements'; statements: number; workerStatements?: number; rogue: string[]; dropTableStatements?: number }
  | { source: 'unavailable'; reason: string };

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

/** A statement the drill issues so it can find its window in the log (simple protocol: logged with its text). */
async function marker(ctx: DrillContext, text: string): Promise<void> {
  const sql = `select ${literal(text)} as marker`;
  ctx.showSql(sql);
  await withPgClient(ctx.url, (client) => client.query(sql));
}

/** How long a window waits for another window on the same cluster to close. */
const windowTurnTimeout = '120s';

/**
 * Waits for this cluster's statement-log window to be free and holds it (a session
 * advisory lock in the maintenance database, else in the target's own); returns
 * the release. The lock dies with its session if the drill's process dies.
 */
async function takeWindowTurn(ctx: DrillContext): Promise<() => Promise<void>> {
  let client;
  try {
    client = await connect(withDatabase(ctx.url, 'postgres'));
  } catch {
    client = await connect(ctx.url);
  }
  try {
    ctx.showSql(`select pg_advisory_lock(hashtext('sor-drills statement-log window'))`);
    await client.query(`set lock_timeout = ${literal(windowTurnTimeout)}`);
    await client.query(`select pg_advisory_lock(hashtext('sor-drills statement-log window'))`);
  } catch (error) {
    await client.end().catch(() => {});
    throw new Error(`another statement-log window on this cluster stayed open longer than ${windowTurnTimeout}: ${errorMessage(error)}`, { cause: error });
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await client.query(`select pg_advisory_unlock(hashtext('sor-drills statement-log window'))`).catch(() => {});
    await client.end().catch(() => {});
  };
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
    // One entry per query and role (PostgreSQL 14+ may keep a query twice, top level and nested: summed).
    const rows = await query<{ id: string; calls: number; query: string; login: string }>(
      ctx,
      `select queryid::text || '/' || userid::text as id, sum(calls)::float8 as calls, min(query) as query,
              coalesce(pg_get_userbyid(userid)::text, '') as login
         from ${ident(schema)}.pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())
        group by queryid, userid`,
    );
    return { schema, rows: new Map(rows.map((row) => [row.id, { calls: row.calls, query: row.query, login: row.login }])) };
  } catch (error) {
    throw new Error(`no statement log: pg_stat_statements cannot be read: ${errorMessage(error)}`);
  }
}

/** The login in the Worker side's URL: its log lines are the tool server's statements. */
function workerUser(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).username) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens the window: on the embedded cluster statement logging is switched on
 * (and its restore deferred) and the start marker written; elsewhere
 * pg_stat_statements is read as the baseline. A window that cannot be opened is
 * returned as unavailable, with the reason.
 */
export async function openStatementWindow(ctx: DrillContext): Promise<StatementWindow> {
  if (ctx.embedded && ctx.serverLog) {
    const id = randomUUID();
    const markers = {
      start: `sor-drills window ${id} start`,
      end: `sor-drills window ${id} end`,
      dropBefore: `sor-drills window ${id} drop_table before`,
      dropAfter: `sor-drills window ${id} drop_table after`,
    };
    // Closing puts the settings back first, then lets the next window on this cluster open.
    let close = await takeWindowTurn(ctx);
    try {
      const offset = await fileSize(ctx.serverLog);
      const restoreSettings = await enableStatementLog(ctx);
      const release = close;
      const restore = async () => {
        try {
          await restoreSettings();
        } finally {
          await release();
        }
      };
      close = restore;
      ctx.defer(restore);
      const database = (await query<{ db: string }>(ctx, 'select current_database() as db'))[0]!.db;
      await marker(ctx, markers.start);
      return { kind: 'server-log', id, file: ctx.serverLog, offset, database, markers, restore };
    } catch (error) {
      await close();
      throw error;
    }
  }
  try {
    const { schema, rows } = await statStatements(ctx);
    return { kind: 'pg_stat_statements', schema, before: rows };
  } catch (error) {
    return { kind: 'unavailable', reason: maskSecrets(errorMessage(error)) };
  }
}

/**
 * Runs `action` between the window's drop_table markers (on a server log), so
 * the statements it made reach the database can be counted on their own.
 */
export async function betweenDropMarkers<T>(ctx: DrillContext, window: StatementWindow, action: () => Promise<T>): Promise<T> {
  if (window.kind === 'server-log') await marker(ctx, window.markers.dropBefore);
  const result = await action();
  if (window.kind === 'server-log') await marker(ctx, window.markers.dropAfter);
  return result;
}

/** Closes the window (end marker, settings restored) and reads what it holds. */
export async function readStatementWindow(ctx: DrillContext, window: StatementWindow): Promise<StatementLogObservation> {
  if (window.kind === 'unavailable') return { source: 'unavailable', reason: window.reason };
  if (window.kind === 'server-log') {
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
      return { source: 'unavailable', reason };
    }
    await window.restore();
    const user = workerUser(await ctx.system.workerUrl());
    try {
      return { source: 'server log', ...analyseWindow(entries, window.markers, window.database, user) };
    } catch (error) {
      return { source: 'unavailable', reason: `the statement log could not be read: ${errorMessage(error)}` };
    }
  }
  try {
    const user = workerUser(await ctx.system.workerUrl());
    return pgStatStatementsDelta(window, await statStatements(ctx), user);
  } catch (error) {
    return { source: 'unavailable', reason: maskSecrets(errorMessage(error)) };
  }
}

/** The statements executed between the two readings of pg_stat_statements, and the DROP or TRUNCATE (and the Worker side's DDL) among them. */
function pgStatStatementsDelta(window: StatWindow, after: { rows: Map<string, StatRow> }, workerLogin: string | undefined): StatementLogObservation {
  let statements = 0;
  const found: string[] = [];
  for (const [id, row] of after.rows) {
    const calls = row.calls - (window.before.get(id)?.calls ?? 0);
    if (calls <= 0) continue;
    statements += calls;
    if (isRogue(row.query, workerLogin !== undefined && row.login === workerLogin)) found.push(row.query.replace(/\s+/g, ' ').slice(0, 120));
  }
  return { source: 'pg_stat_statements', statements, rogue: found };
}
