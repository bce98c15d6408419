// Drill 8, mcp_boundary_test, against real processes (tool server, Worker) and a
// real Postgres whose statement log is the shared test cluster's log file: green
// on the reference system, red with its deliberate break (a raw SQL tool and the
// URL handed to the Worker), red when the target turns data into statements, and
// could-not-determine where no statement log can be read.
import { scratchDir } from '../helpers/scratch.js';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { useDrillTarget, type TestSystem } from '../helpers/drills.js';
import {
  analyseWindow,
  describeCatalog,
  describeEnvironment,
  describeRefusal,
  describeRogue,
  mcpBoundaryTest,
  parseServerLog,
  toolSurface,
  type EnvironmentRead,
} from '../../src/drills/mcp-boundary-test/index.js';
import { runDrill } from '../../src/drills/runner.js';
import type { BundleKey, DrillResult, RunnerEvent } from '../../src/drills/types.js';
import { isAlive } from '../../src/reconciler/supervisor.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { defaultRoles } from '../../src/postgres/roles.js';

let db: TestDatabase;
let system: TestSystem;
useDrillTarget((target) => ({ db, system } = target));

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

/** runOne of test/helpers/drills.ts, plus the cluster's log file (and embedded switchable). */
async function run(
  options: {
    broken?: boolean;
    embedded?: boolean;
    serverLog?: string | undefined;
    events?: RunnerEvent[];
    /** The tool server's break switches whatever the drill asks for: one half of the break at a time. */
    toolBreaks?: { rawSqlTool?: boolean };
  } = {},
): Promise<DrillResult> {
  // The break's tool half replaces whichever tool server the drill asks for, the shared one too.
  const processes: TestSystem = options.toolBreaks
    ? {
        ...system,
        toolServer: (tool = {}) => system.toolServer({ ...tool, breaks: options.toolBreaks }),
        sharedToolServer: () => system.toolServer({ breaks: options.toolBreaks }),
      }
    : system;
  return runDrill(mcpBoundaryTest, {
    url: db.url,
    display: db.name,
    database: db.name,
    embedded: options.embedded ?? true,
    serverLog: 'serverLog' in options ? options.serverLog : inject('pgLogFile'),
    roles: defaultRoles,
    options: {
      paceMs: 0,
      claimHoldMs: 600,
      evidenceRoot: path.join(scratchDir('evidence-'), 'oracle'),
    },
    operator: { request: async (_ask, perform) => perform() },
    breaks: new Set<BundleKey>(options.broken ? [mcpBoundaryTest.key] : []),
    system: processes,
    emit: (event) => options.events?.push(event),
  });
}

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

/** The cluster-wide settings the drill changes for its window. */
async function logSettings() {
  const { rows } = await sql(
    `select name, setting from pg_settings where name in ('log_statement', 'log_line_prefix') order by name`,
  );
  return Object.fromEntries(rows.map((row: { name: string; setting: string }) => [row.name, row.setting]));
}

/** Every password the test's URLs hold: none may appear in a result. */
async function passwords(): Promise<string[]> {
  return [db.url, await system.workerUrl()].map((url) => decodeURIComponent(new URL(url).password)).filter(Boolean);
}

describe('mcp_boundary_test', () => {
  it('passes on the reference system, from the OS environment, tools/list and the statement log', async () => {
    const before = await logSettings();
    const events: RunnerEvent[] = [];
    const result = await run({ events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(
      /^Worker env has no DATABASE_URL \(pid \d+: \d+ variables read from \/proc, no PG\* and no postgres URL\)\. Tool surface lists four allowed operations \(claim, write, queue, read\)\. Disallowed drop_table call refused at MCP layer with tool-not-found error \(-32602, 0 statements reached the database\)\. SQL-looking strings stored as data: expenses \+2, catalog unchanged \(\d+ relations\)\. Database connection logs show no rogue queries \(\d+ statements in the window, \d+ from the tool server, 0 DROP\)\.$/,
    );
    // The window saw the tool server's own statements: the log was really read.
    const fromToolServer = Number(/(\d+) from the tool server/.exec(result.evidence)![1]);
    expect(fromToolServer).toBeGreaterThan(0);
    // The pid in the evidence is the Worker the drill started, and it is gone now.
    const pid = Number(/pid (\d+)/.exec(result.evidence)![1]);
    expect(system.supervisor().startedPids()).toContain(pid);
    expect(isAlive(pid)).toBe(false);
    expect(result.evidenceDirs).toHaveLength(1);
    // The SQL-looking strings are rows, verbatim.
    const { rows } = await sql(
      `select count(*)::int as n from expenses where description in ($1, $2)`,
      [`'); DROP TABLE expenses; --`, 'COMMIT; DROP TABLE expenses'],
    );
    expect(rows[0].n).toBe(2);
    expect(await logSettings()).toEqual(before);
    for (const secret of await passwords()) {
      expect(result.evidence).not.toContain(secret);
      expect(JSON.stringify(events)).not.toContain(secret);
    }
  });

  it('fails with its deliberate break, naming the raw SQL tool and the leaked DATABASE_URL', async () => {
    const events: RunnerEvent[] = [];
    const result = await run({ broken: true, events });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/Worker env has DATABASE_URL \(pid \d+, read from \/proc\)/);
    expect(result.reason).toMatch(/tool surface lists five tools \(claim, write, queue, read, sql\); not allowed: sql/);
    for (const secret of await passwords()) {
      expect(result.reason).not.toContain(secret);
      expect(JSON.stringify(events)).not.toContain(secret);
    }
    // Names only: the observed environment holds no value.
    const env = JSON.parse(observed(events, 'worker_env')!) as EnvironmentRead;
    expect(env.credentials).toEqual(['DATABASE_URL']);
    expect(JSON.stringify(env)).not.toMatch(/postgres(ql)?:\/\//);
  });

  // The deliberate break does two things at once; each half alone must fail the drill on its own check.
  it('fails on the tool list alone: an extra raw SQL tool, with the Worker holding no credential', async () => {
    const events: RunnerEvent[] = [];
    const result = await run({ toolBreaks: { rawSqlTool: true }, events });
    expect(result.verdict, result.reason).toBe('fail');
    expect(observed(events, 'tools_listed')).toMatch(/\bsql\b/);
    expect(result.reason).toMatch(/not allowed: sql/);
    expect(result.reason).not.toMatch(/Worker env has/);
  });

  it('fails on the environment alone: DATABASE_URL handed to the Worker, with the four tools only', async () => {
    const result = await run({ broken: true, toolBreaks: {} });
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toMatch(/Worker env has DATABASE_URL/);
    expect(result.reason).not.toMatch(/not allowed/);
  });

  it('still finds no credential in the Worker when the console itself holds DATABASE_URL and PG* variables', async () => {
    const saved = { DATABASE_URL: process.env.DATABASE_URL, PGPASSWORD: process.env.PGPASSWORD, PGHOST: process.env.PGHOST };
    process.env.DATABASE_URL = db.url;
    process.env.PGPASSWORD = 'console-only-secret';
    process.env.PGHOST = '127.0.0.1';
    try {
      const events: RunnerEvent[] = [];
      const result = await run({ events });
      expect(result.verdict, result.reason).toBe('pass');
      const names = JSON.parse(observed(events, 'worker_env_names')!) as string[];
      expect(names.length).toBeGreaterThan(0);
      expect(names).toContain('SOR_TOOLS_URL');
      expect(names.filter((name) => name === 'DATABASE_URL' || name.startsWith('PG'))).toEqual([]);
      expect(JSON.stringify(events)).not.toContain('console-only-secret');
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('fails when the target turns an SQL-looking description into a statement, and leaves the trigger in place', async () => {
    await sql(`create table sor_canary (id int)`);
    await sql(`create function sor_run_description() returns trigger language plpgsql security definer as $$
      begin
        if new.description ~* 'drop table' then execute 'drop table if exists sor_canary'; end if;
        return new;
      end $$`);
    await sql(`create trigger sor_run_description before insert on expenses for each row execute function sor_run_description()`);
    try {
      const result = await run();
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/SQL-looking strings changed the catalog \(public\.sor_canary gone\)/);
      const { rows } = await sql(`select 1 from pg_trigger where tgname = 'sor_run_description'`);
      expect(rows).toHaveLength(1);
    } finally {
      await sql('drop trigger if exists sor_run_description on expenses');
      await sql('drop function if exists sor_run_description()');
      await sql('drop table if exists sor_canary');
    }
  });

  it('fails when the statement log shows a DROP sent to the target during the window', async () => {
    let rogue: Promise<unknown> | undefined;
    const events: RunnerEvent[] = [];
    const result = await runDrill(mcpBoundaryTest, {
      url: db.url,
      display: db.name,
      database: db.name,
      embedded: true,
      serverLog: inject('pgLogFile'),
      roles: defaultRoles,
      options: { paceMs: 0, claimHoldMs: 600, evidenceRoot: path.join(scratchDir('evidence-'), 'oracle') },
      operator: { request: async (_ask, perform) => perform() },
      breaks: new Set<BundleKey>(),
      system,
      emit: (event) => {
        events.push(event);
        // Another client of the target drops something while the window is open.
        if (event.type === 'step-started' && event.step.id === 'drop-table') rogue = sql('drop table if exists sor_no_such_table');
      },
    });
    await rogue;
    expect(rogue).toBeDefined();
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/Database connection logs show 1 rogue query: drop table if exists sor_no_such_table$/);
  });

  it('could not determine the statement-log check on a server with no log file and no pg_stat_statements', async () => {
    const result = await run({ embedded: false, serverLog: undefined });
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toMatch(/could not determine: no statement log: .*pg_stat_statements is not installed/);
  });
});

describe('the boundary checks, on shapes the reference never shows', () => {
  it('the tool surface: exact, an extra tool, a missing tool, a renamed tool', () => {
    expect(toolSurface(['read', 'queue', 'write', 'claim']).exact).toBe(true);
    expect(toolSurface(['claim', 'write', 'queue', 'read', 'sql'])).toMatchObject({ exact: false, extra: ['sql'], missing: [] });
    expect(toolSurface(['claim', 'write', 'queue'])).toMatchObject({ exact: false, extra: [], missing: ['read'] });
    expect(toolSurface(['claim', 'write', 'queue', 'read_journal'])).toMatchObject({
      exact: false,
      extra: ['read_journal'],
      missing: ['read'],
    });
    expect(toolSurface(['claim', 'write', 'queue', 'read', 'read']).exact).toBe(false);
  });

  it('the log: DROP in a statement counts, DROP in a bind parameter does not, and a forged line stays data', () => {
    const log = [
      `2026-01-01 00:00:00.000 UTC [10] {db=t}{user=su} LOG:  statement: select 'w start' as marker`,
      `2026-01-01 00:00:00.001 UTC [11] {db=t}{user=wk} LOG:  execute <unnamed>: insert into expenses (description) values ($1)`,
      `2026-01-01 00:00:00.001 UTC [11] {db=t}{user=wk} DETAIL:  Parameters: $1 = '''); DROP TABLE expenses; --`,
      `\t2026-01-01 00:00:00.002 UTC [11] {db=t}{user=wk} LOG:  statement: DROP TABLE forged'`,
      `2026-01-01 00:00:00.003 UTC [12] {db=other}{user=su} LOG:  statement: drop table elsewhere`,
      `2026-01-01 00:00:00.004 UTC [10] {db=t}{user=su} LOG:  statement: select 'w end' as marker`,
    ].join('\n');
    const clean = analyseWindow(parseServerLog(log), { start: 'w start', end: 'w end' }, 't', 'wk');
    expect(clean).toMatchObject({ statements: 1, workerStatements: 1, rogue: [] });
    const rogueLog = log.replace('drop table elsewhere', 'x').replace(
      '{db=other}{user=su} LOG:  statement: x',
      '{db=t}{user=wk} LOG:  statement: select 1; drop table expenses',
    );
    const seen = analyseWindow(parseServerLog(rogueLog), { start: 'w start', end: 'w end' }, 't', 'wk');
    expect(seen.rogue).toEqual(['select 1; drop table expenses']);
  });
});

describe('the boundary evidence, built from what was observed', () => {
  it('names what the environment held, how drop_table was refused, the catalog and the rogue statements', () => {
    const env = (credentials: string[], urlValued: string[]): EnvironmentRead => ({ pid: 7, names: ['PATH', ...credentials, ...urlValued], credentials, urlValued });
    expect(describeEnvironment(env([], []))).toBe('Worker env has no DATABASE_URL (pid 7: 1 variables read from /proc, no PG* and no postgres URL)');
    expect(describeEnvironment(env(['DATABASE_URL', 'PGHOST'], ['SOR_X']))).toBe(
      'Worker env has DATABASE_URL (pid 7: 4 variables read from /proc, PGHOST and a postgres URL in SOR_X)',
    );
    expect(describeRefusal({ refused: true, code: -32602, text: 'MCP error -32602: Tool drop_table not found' })).toBe(
      'refused at MCP layer with tool-not-found error',
    );
    expect(describeRefusal({ refused: true, code: -32603, text: 'internal error' })).toBe('refused at MCP layer with error');
    expect(describeCatalog(['a', 'b'], ['a', 'b'])).toBe('catalog unchanged (2 relations)');
    expect(describeCatalog(['a', 'b'], ['a'])).toBe('catalog changed in 1 relations (1 relations)');
    expect([describeRogue([]), describeRogue(['drop table x'])]).toEqual([
      'Database connection logs show no rogue queries',
      'Database connection logs show 1 rogue query',
    ]);
  });
});
