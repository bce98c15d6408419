// Drills 3 (idempotent retry) and 8 (MCP boundary) on the operator's own Worker
// side: examples/worker-side's tool server and Worker, started from its profile
// against fixtures/other-reconciler, real processes and a real Postgres (the
// shared test cluster's log file is the boundary drill's statement log). Each
// passes naming the operator's processes; each fails on the example's bug or the
// sabotage it exists to catch; a profile the drill cannot use is could-not-determine.
import { describe, expect, inject, it } from 'vitest';
import { afterAll, beforeAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOne, testSystem, type TestSystem } from '../helpers/drills.js';
import {
  dropOtherRoles,
  exampleProfile,
  installOtherReconciler,
  otherRoles,
  resolveExample,
  type ExampleBug,
} from '../helpers/other-reconciler.js';
import { idempotencyRetryTest } from '../../src/drills/idempotency-retry-test.js';
import { mcpBoundaryTest } from '../../src/drills/mcp-boundary-test/index.js';
import { groupMembers, mergeEnvironments } from '../../src/drills/mcp-boundary-test/worker-env.js';
import { analyseWindow, parseServerLog } from '../../src/drills/mcp-boundary-test/server-log.js';
import { majorAmount, templateUses, writeArguments } from '../../src/drills/mcp.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { withPgClient } from '../../src/postgres/pg.js';
import type { Profile, ProfileInUse } from '../../src/postgres/profile/index.js';
import { isAlive } from '../../src/reconciler/supervisor.js';

const roles = otherRoles();
let db: TestDatabase;
let system: TestSystem;
let example: ProfileInUse;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await installOtherReconciler(db.url, roles);
  const profile = await exampleProfile(roles);
  example = await resolveExample(db.url, profile);
  system = await testSystem(db, profile);
});

afterAll(async () => {
  const pids = system?.supervisor().startedPids() ?? [];
  await system?.dispose();
  await db?.dispose();
  if (db) await dropOtherRoles(db.adminUrl, roles);
  // Every process a drill started (tool servers, Workers, their children) is gone.
  expect(pids.filter(isAlive)).toEqual([]);
});

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

/** The example's profile with one of its bugs switched on, resolved on this database. */
async function withBug(bug: ExampleBug, where: 'tool_server' | 'worker', env?: Record<string, string>): Promise<ProfileInUse> {
  return resolveExample(db.url, await exampleProfile(roles, { bug, in: where, ...(env ? { env } : {}) }));
}

/** The example's profile changed by `edit`, resolved on this database. */
async function edited(edit: (profile: Profile) => void): Promise<ProfileInUse> {
  const profile = structuredClone(await exampleProfile(roles));
  edit(profile);
  return resolveExample(db.url, profile);
}

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

const boundary = (profile: ProfileInUse, events?: RunnerEvent[]) =>
  runOne(mcpBoundaryTest, db, { profile, system, serverLog: inject('pgLogFile'), events });

/** Pids the supervisor started since `before` (a count of startedPids). */
const startedSince = (before: number) => system.supervisor().startedPids().slice(before);

describe('idempotency_retry_test through the operator’s tool server', () => {
  it('passes: record_expense twice with one key lands one expenses row, through `node tool-server.mjs`', async () => {
    const before = system.supervisor().startedPids().length;
    const events: RunnerEvent[] = [];
    const result = await runOne(idempotencyRetryTest, db, { profile: example, system, events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(
      "Two invocations of record_expense through the operator's tool server `node tool-server.mjs` with the same idempotency key " +
        'produced one expenses row. Second insert was a no-op. Row count delta: +1.',
    );
    // The operator's tool server ran (from examples/worker-side) and is stopped now.
    expect(observed(events, 'tool_server_process')).toBe("the operator's tool server `node tool-server.mjs`");
    const pids = startedSince(before);
    expect(pids).toHaveLength(1);
    expect(pids.filter(isAlive)).toEqual([]);
    // The row is the template's: memo for {description}, the amount in major units for {amount}.
    const tenant = observed(events, 'tenant')!;
    const { rows } = await sql(`select idempotency_key, amount::text as amount, memo from expenses where user_id = $1`, [tenant]);
    expect(rows).toEqual([{ idempotency_key: `${tenant}:retry-1`, amount: '42.00', memo: 'Retried expense' }]);
    // Their tool server journaled both calls (one-call runs of their own): the calls really reached it.
    const calls = await sql(
      `select c.tool_name, c.status from tool_calls c join turns t on t.id = c.turn_id join runs r on r.id = t.run_id where r.user_id = $1`,
      [tenant],
    );
    expect(calls.rows).toEqual([
      { tool_name: 'record_expense', status: 'completed' },
      { tool_name: 'record_expense', status: 'completed' },
    ]);
  });

  it('fails through their tool server while expenses_idempotency_key_key is dropped, and the key is put back', async () => {
    await sql('alter table expenses drop constraint expenses_idempotency_key_key');
    try {
      const result = await runOne(idempotencyRetryTest, db, { profile: example, system });
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/^the write failed through the operator's tool server `node tool-server\.mjs` \(record_expense\): /);
      // The target is reported, not repaired.
      const { rows } = await sql(`select 1 from pg_constraint where conname = 'expenses_idempotency_key_key'`);
      expect(rows).toHaveLength(0);
    } finally {
      await sql('alter table expenses add constraint expenses_idempotency_key_key unique (idempotency_key)');
    }
  });

  it('could not determine when the profile declares a tool server but no tools.write, and starts nothing', async () => {
    const before = system.supervisor().startedPids().length;
    const profile = await edited((p) => {
      delete p.processes!.tool_server!.tools.write;
    });
    const result = await runOne(idempotencyRetryTest, db, { profile, system });
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toContain('processes.tool_server.tools.write');
    expect(startedSince(before)).toEqual([]);
  });

  it('could not determine with its deliberate break: the operator’s tool server has no switch of ours', async () => {
    const result = await runOne(idempotencyRetryTest, db, { profile: example, system, broken: true });
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toMatch(/deliberate break .* cannot break/);
  });
});

describe('mcp_boundary_test through the operator’s tool server and Worker', () => {
  it('passes naming their Worker and tool server: env from /proc, their allow-list, drop_table refused, no DDL', async () => {
    const before = system.supervisor().startedPids().length;
    const events: RunnerEvent[] = [];
    const result = await boundary(example, events);
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(
      /^The operator's Worker `node worker\.mjs` env has no DATABASE_URL \(pid \d+: \d+ variables read from \/proc, no PG\* and no postgres URL\)\. The operator's tool server `node tool-server\.mjs` lists four allowed operations \(claim_transaction, record_expense, queue_email, read_journal\)\. Disallowed drop_table call refused at MCP layer with tool-not-found error \(-32602, 0 statements reached the database\)\. SQL-looking strings stored as data: expenses \+2, catalog unchanged \(\d+ relations\)\. Database connection logs show no rogue queries \(\d+ statements in the window, \d+ from the tool server, 0 DROP or DDL\)\.$/,
    );
    // The pid read is their Worker's, started by the drill from examples/worker-side, gone now.
    const pid = Number(/pid (\d+)/.exec(result.evidence)![1]);
    const pids = startedSince(before);
    expect(pids).toContain(pid);
    expect(pids.filter(isAlive)).toEqual([]);
    // Its environment is the declared one: names only, no credential.
    const names = JSON.parse(observed(events, 'worker_env_names')!) as string[];
    expect(names).toEqual(expect.arrayContaining(['TOOLS_URL', 'TOOLS_TOKEN', 'USER_ID', 'WORKER_ID', 'TURNS']));
    expect(names.filter((name) => name === 'DATABASE_URL' || name.startsWith('PG'))).toEqual([]);
    // Its short run finished: one turn through their tools, inside the window.
    expect(observed(events, 'worker_run')).toBe('exited with code 0');
    const tenant = observed(events, 'tenant')!;
    const turn = await sql(
      `select c.tool_name from tool_calls c join turns t on t.id = c.turn_id join runs r on r.id = t.run_id
        where r.user_id = $1 and r.worker_id like 'reconciler-mcp-%' order by c.seq`,
      [tenant],
    );
    expect(turn.rows.map((row: { tool_name: string }) => row.tool_name)).toEqual(['claim_transaction', 'record_expense', 'queue_email']);
    // The SQL-looking strings went through their write template: memo, verbatim.
    const { rows } = await sql(`select memo from expenses where user_id = $1 and memo like '%DROP TABLE%' order by memo`, [tenant]);
    expect(rows).toEqual([{ memo: `'); DROP TABLE expenses; --` }, { memo: 'COMMIT; DROP TABLE expenses' }]);
    const window = observed(events, 'statement_log_window')!;
    expect(window).toMatch(/^\d+ statements \(0 DROP, TRUNCATE or tool-server DDL\)$/);
  });

  it('fails on the tool list alone with the example’s bug sql-tool in their tool server', async () => {
    const events: RunnerEvent[] = [];
    const result = await boundary(await withBug('sql-tool', 'tool_server'), events);
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toMatch(
      /the operator's tool server `node tool-server\.mjs` lists five tools \(claim_transaction, record_expense, queue_email, read_journal, sql\); not allowed: sql/,
    );
    expect(result.reason).not.toMatch(/env has/);
  });

  it('fails on the environment alone with the example’s bug leak-database-url in their Worker', async () => {
    const standIn = 'postgres://worker_write:stand-in-not-a-password@127.0.0.1:9/leaked';
    const events: RunnerEvent[] = [];
    const result = await boundary(await withBug('leak-database-url', 'worker', { DATABASE_URL: standIn }), events);
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toMatch(/the operator's Worker `node worker\.mjs` env has DATABASE_URL \(pid \d+, read from \/proc\)/);
    expect(result.reason).not.toMatch(/not allowed/);
    // Names only: no value of the environment leaves the drill.
    expect(JSON.stringify(events)).not.toContain('stand-in-not-a-password');
  });

  it('a profile that hands their Worker {database_url} gives it a real one, and the drill fails on it', async () => {
    const result = await boundary(await withBug('leak-database-url', 'worker', { DATABASE_URL: '{database_url}' }));
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toMatch(/the operator's Worker `node worker\.mjs` env has DATABASE_URL \(pid \d+, read from \/proc\)/);
  });

  it('could not determine the environment when their Worker cannot start, naming it, and still checks the rest', async () => {
    const profile = await edited((p) => {
      p.processes!.worker!.command = ['node', 'no-such-worker.mjs'];
    });
    const result = await boundary(profile);
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toMatch(
      /could not determine: the operator's Worker `node no-such-worker\.mjs` (ended before its environment could be read|did not finish its short run) \(exited with code 1; its log: /,
    );
  });

  it('passes with their tool server and the reference Worker (no processes.worker), naming each', async () => {
    const profile = await edited((p) => {
      delete p.processes!.worker;
    });
    const result = await boundary(profile);
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(
      /^The reference Worker env has no DATABASE_URL \(pid \d+: .*\)\. The operator's tool server `node tool-server\.mjs` lists four allowed operations \(claim_transaction, record_expense, queue_email, read_journal\)\. /,
    );
  });

  it('could not determine with the reference tool server and their Worker, which cannot work with our tools', async () => {
    const profile = await edited((p) => {
      delete p.processes!.tool_server;
    });
    const result = await boundary(profile);
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toMatch(/the operator's Worker `node worker\.mjs` did not finish its short run .*declare processes\.tool_server too/);
  });

  it('could not determine when their tool server exits before it listens, naming its log', async () => {
    const profile = await edited((p) => {
      p.processes!.tool_server!.env = { ...p.processes!.tool_server!.env, DATABASE_URL: '' };
    });
    const result = await boundary(profile);
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toMatch(/the operator's tool server `node tool-server\.mjs` did not start: .*its log: .*tool-server\.log/);
  });
});

describe('the operator-side pieces, on shapes the example never shows', () => {
  it('fills the write template in the drills’ units', () => {
    expect(majorAmount(4200)).toBe('42.00');
    expect(majorAmount(5)).toBe('0.05');
    expect(majorAmount(-1234)).toBe('-12.34');
    const spec = { name: 'w', arguments: { k: '{key}', c: '{amount_cents}', memo: 'note: {description}', t: '{transaction}' } };
    expect(writeArguments(spec, { tenant: 'u', worker: 'w1', key: 'K', amountCents: 100, description: 'D' })).toEqual({
      k: 'K',
      c: 100,
      memo: 'note: D',
      t: null,
    });
    expect(templateUses(spec.arguments, 'description')).toBe(true);
    expect(templateUses({ nested: ['{key}'] }, 'key')).toBe(true);
    expect(templateUses(spec.arguments, 'tenant')).toBe(false);
  });

  it('joins the environments of a process group; the pid named is the one holding a credential', () => {
    const clean = { pid: 10, names: ['PATH'], credentials: [], urlValued: [] };
    const child = { pid: 11, names: ['PATH', 'DATABASE_URL'], credentials: ['DATABASE_URL'], urlValued: ['DATABASE_URL'] };
    expect(mergeEnvironments(10, [clean])).toEqual(clean);
    expect(mergeEnvironments(10, [clean, child])).toEqual({ pid: 11, names: ['DATABASE_URL', 'PATH'], credentials: ['DATABASE_URL'], urlValued: ['DATABASE_URL'] });
  });

  it('lists a process group from /proc', async () => {
    const own = process.pid;
    const { readFile } = await import('node:fs/promises');
    const stat = await readFile(`/proc/${own}/stat`, 'utf8');
    const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    expect(await groupMembers(pgid)).toContain(own);
  });

  it('the log: DDL from the tool server’s login counts, the drill’s own admin DDL does not, DROP from anyone does', () => {
    const log = [
      `2026-01-01 00:00:00.000 UTC [10] {db=t}{user=su} LOG:  statement: select 'w start' as marker`,
      `2026-01-01 00:00:00.001 UTC [10] {db=t}{user=su} LOG:  statement: alter role x password 'p'`,
      `2026-01-01 00:00:00.002 UTC [11] {db=t}{user=wk} LOG:  statement: set role worker_write`,
      `2026-01-01 00:00:00.003 UTC [11] {db=t}{user=wk} LOG:  statement: select 1; create table sneaky (id int)`,
      `2026-01-01 00:00:00.004 UTC [11] {db=t}{user=wk} LOG:  execute <unnamed>: ALTER TABLE expenses ADD COLUMN x int`,
      `2026-01-01 00:00:00.005 UTC [12] {db=t}{user=su} LOG:  statement: select 'w end' as marker`,
    ].join('\n');
    const report = analyseWindow(parseServerLog(log), { start: 'w start', end: 'w end' }, 't', 'wk');
    expect(report.rogue).toEqual(['select 1; create table sneaky (id int)', 'ALTER TABLE expenses ADD COLUMN x int']);
  });
});
