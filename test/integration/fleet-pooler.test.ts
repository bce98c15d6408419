// The fleet's pooler: a real PgBouncer (Debian's pgbouncer package) in transaction
// pooling mode in front of the test cluster. What it breaks for a system of record
// (a session tenant setting, SET ROLE, a session advisory lock) is shown from the
// server's answers; the tool server in its pooling mode (SOR_TOOLS_TRANSACTION_POOLING)
// runs a real Worker through it, and directly against Postgres, to a whole journal.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createTestDatabase, queryRows, type TestDatabase } from '../helpers/db.js';
import { scratchDir } from '../helpers/scratch.js';
import { findPgBouncer, installHint, startPgBouncer, transactionPoolingChecks, type Pooler } from '../../src/drills/fleet/pooler.js';
import { isAlive, Supervisor } from '../../src/reconciler/supervisor.js';
import { releaseHolds, startToolServer, startWorker, type WorkerLogin } from '../../src/reconciler/launch.js';
import { waitFor } from '../../src/util/wait.js';
import { ident, literal, withPgClient } from '../../src/postgres/pg.js';
import { withCredentials } from '../../src/postgres/url.js';
import { defaultRoles } from '../../src/postgres/roles.js';

let db: TestDatabase;
let login: WorkerLogin;
let sup: Supervisor;
const poolers: Pooler[] = [];

const query = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => queryRows<T>(db.url, sql, params);

/** A tenant of the test's own with `count` pending transactions: no other test claims them. */
async function ownTenant(label: string, count: number): Promise<string> {
  const tenant = `${label}-${randomBytes(3).toString('hex')}`;
  await query(`insert into tenants (id, name) values ($1, $1)`, [tenant]);
  await query(
    `insert into pending_transactions (id, tenant_id, amount_cents, description)
     select $1 || '-' || n, $1, 100 + n, 'Generated ' || n from generate_series(1, $2::int) as n`,
    [tenant, count],
  );
  return tenant;
}

/**
 * A login that is a member of the worker role but has none of its privileges until it SETs
 * the role (NOINHERIT): a transaction the tool server forgot to SET LOCAL ROLE in fails.
 */
async function noInheritLogin(url: string): Promise<WorkerLogin> {
  const name = `sor_test_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(18).toString('base64url');
  await withPgClient(url, (client) =>
    client.query(`create role ${ident(name)} login noinherit password ${literal(password)} in role ${ident(defaultRoles.worker)}`),
  );
  return {
    url: withCredentials(url, name, password),
    login: name,
    drop: () => withPgClient(url, async (client) => void (await client.query(`drop role if exists ${ident(name)}`))),
  };
}

/** Whether any process of the group is left (kill 0 probes without signalling). */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function pooler(serverUrl: string, poolSize: number): Promise<Pooler> {
  const started = await startPgBouncer({ serverUrl, poolSize, workDir: scratchDir('pooler-') });
  poolers.push(started);
  return started;
}

/**
 * Whole runs of `workers` Workers at once (each its own tenant, 3 turns) through one tool
 * server in pooling mode on `databaseUrl`; returns each run's id and tenant.
 */
async function pooledRuns(label: string, databaseUrl: string, workers = 1): Promise<Array<{ runId: string; tenant: string }>> {
  const tools = await startToolServer(sup, { databaseUrl, transactionPooling: true, processName: `tools-${label}` });
  try {
    const names = Array.from({ length: workers }, (_, index) => `worker-${label}-${index + 1}`);
    const tenants: string[] = [];
    for (const name of names) {
      const tenant = await ownTenant(label, 3);
      tenants.push(tenant);
      await startWorker(sup, { name, tenant, tools, pace_ms: 0, turns: 3 });
    }
    return await Promise.all(
      names.map(async (name, index) => {
        const started = await sup.waitForEvent(name, 'run_started', { timeoutMs: 30_000 });
        const exit = await sup.waitForExit(name);
        expect(exit.exitCode, sup.get(name)?.recentLines.join('\n')).toBe(0);
        return { runId: String(started.run_id), tenant: tenants[index]! };
      }),
    );
  } finally {
    await sup.stop(`tools-${label}`);
  }
}

/** The run's journal is whole: finished, every turn completed, every call completed and numbered 1..n, its events. */
async function expectWholeJournal(runId: string, tenant: string): Promise<void> {
  expect(await query(`select status, finished_at is not null as finished, error from runs where id = $1`, [runId])).toEqual([
    { status: 'finished', finished: true, error: null },
  ]);
  expect(await query(`select turn_no, status from turns where run_id = $1 order by turn_no`, [runId])).toEqual([
    { turn_no: 1, status: 'completed' },
    { turn_no: 2, status: 'completed' },
    { turn_no: 3, status: 'completed' },
  ]);
  const calls = await query<{ turn_no: number; call_no: number; tool: string; status: string }>(
    `select turn_no, call_no, tool, status from tool_calls where run_id = $1 order by turn_no, call_no`,
    [runId],
  );
  expect(calls.filter((call) => call.status !== 'completed')).toEqual([]);
  for (const turn of [1, 2, 3]) {
    const numbers = calls.filter((call) => call.turn_no === turn).map((call) => call.call_no);
    expect(numbers).toEqual(numbers.map((_, index) => index + 1));
    expect(calls.filter((call) => call.turn_no === turn).map((call) => call.tool)).toEqual(expect.arrayContaining(['claim', 'write', 'queue']));
  }
  const events = await query<{ event_type: string; n: number }>(
    `select event_type, count(*)::int as n from agent_events where run_id = $1 group by 1 order by 1`,
    [runId],
  );
  expect(Object.fromEntries(events.map((event) => [event.event_type, event.n]))).toEqual({
    run_started: 1,
    run_finished: 1,
    turn_completed: 3,
    tool_called: calls.length,
  });
  expect(await query(`select count(*)::int as n from pending_transactions where tenant_id = $1 and status = 'processed'`, [tenant])).toEqual([
    { n: 3 },
  ]);
  expect(await query(`select count(*)::int as n from expenses where tenant_id = $1`, [tenant])).toEqual([{ n: 3 }]);
  expect(await query(`select count(*)::int as n from outbox where tenant_id = $1 and run_id = $2`, [tenant, runId])).toEqual([{ n: 3 }]);
}

beforeAll(async () => {
  db = await createTestDatabase();
  login = await noInheritLogin(db.url);
  sup = new Supervisor({ logDir: scratchDir('pooler-logs-'), recentLines: 2_000 });
});

afterAll(async () => {
  const pids = sup?.startedPids() ?? [];
  await sup?.close();
  for (const started of poolers) await started.stop();
  try {
    expect(pids.filter(isAlive)).toEqual([]);
    await login?.drop();
  } finally {
    await db?.dispose();
  }
});

describe('PgBouncer in transaction pooling mode', () => {
  it('is installed (.ci/run must install it)', () => {
    expect(findPgBouncer(), `${installHint}; .ci/run must install the Debian package pgbouncer`).toBeDefined();
  });

  it("breaks a session tenant setting, SET ROLE and a session advisory lock; the tool server's way holds", async () => {
    const checked = await pooler(db.url, 2);
    const checks = await transactionPoolingChecks(checked, {
      tenantSetting: 'app.tenant_id',
      workerRole: defaultRoles.worker,
      otherRole: defaultRoles.reader,
    });
    expect(checks.map((check) => check.name)).toEqual(['tenant setting', 'SET ROLE', 'advisory lock']);
    for (const check of checks) {
      expect(check.naive.ok, `${check.name}, naive: ${check.naive.detail}`).toBe(false);
      expect(check.toolServerWay.ok, `${check.name}, the tool server's way: ${check.toolServerWay.detail}`).toBe(true);
    }
    expect(checks[0]!.naive.detail).toMatch(/client 2 read app\.tenant_id = 'pooler-check-/);
    expect(checks[1]!.naive.detail).toContain(`runs as ${defaultRoles.reader}`);
    expect(checks[2]!.naive.detail).toMatch(/still shows the lock held by server connection \d+.*client 2, which never took it, released it/);

    await checked.stop();
    expect(checked.pid).toBeDefined();
    expect(isAlive(checked.pid!)).toBe(false);
    expect(groupAlive(checked.pid!)).toBe(false);
  });

  it('journals a refused write in the same one transaction: the call failed with its SQLSTATE, the run failed, then refused', async () => {
    const through = await pooler(login.url, 2);
    const tools = await startToolServer(sup, { databaseUrl: through.url, transactionPooling: true, processName: 'tools-refused' });
    const client = new Client({ name: 'fleet-pooler-test', version: '0.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(tools.url), { requestInit: { headers: { authorization: `Bearer ${tools.token}` } } }),
    );
    try {
      const tenant = await ownTenant('refused', 1);
      const journal = { run_id: randomUUID(), worker: 'pooler-refused', tenant, turn: 1, of: 2, call: 1 };
      const refused = await client.callTool({
        name: 'write',
        arguments: { journal, idempotency_key: `${tenant}:zero`, amount_cents: 0, description: 'zero' },
      });
      expect(refused.isError).toBe(true);
      expect(await query(`select status, error_code from tool_calls where run_id = $1`, [journal.run_id])).toEqual([
        { status: 'failed', error_code: '23514' },
      ]);
      expect(await query(`select status from runs where id = $1`, [journal.run_id])).toEqual([{ status: 'failed' }]);
      const events = await query<{ event_type: string }>(`select event_type from agent_events where run_id = $1 order by id`, [journal.run_id]);
      expect(events.map((event) => event.event_type)).toEqual(['run_started', 'tool_failed', 'run_failed']);
      // The refusal rolls the call's one transaction back: nothing more is recorded.
      const again = await client.callTool({ name: 'claim', arguments: { journal: { ...journal, turn: 2 } } });
      expect(again.isError).toBe(true);
      expect(JSON.stringify(again.content)).toMatch(/is failed/);
      expect(await query(`select count(*)::int as n from tool_calls where run_id = $1`, [journal.run_id])).toEqual([{ n: 1 }]);
      // The plain read (no journal) goes through the pooler too.
      const read = await client.callTool({ name: 'read', arguments: { what: 'journal', run_id: journal.run_id } });
      expect(read.isError, JSON.stringify(read.content)).toBeFalsy();
    } finally {
      await client.close().catch(() => {});
      await sup.stop('tools-refused');
      await through.stop();
    }
  });

  it("a Worker killed while its call is in flight resumes after that call's one transaction lands, and reuses it", async () => {
    const through = await pooler(login.url, 2);
    const tools = await startToolServer(sup, {
      databaseUrl: through.url,
      transactionPooling: true,
      claimHoldMs: 60_000,
      processName: 'tools-inflight',
    });
    try {
      const tenant = await ownTenant('inflight', 1);
      await startWorker(sup, { name: 'worker-inflight', tenant, tools, pace_ms: 0, turns: 1 });
      const started = await sup.waitForEvent('worker-inflight', 'run_started', { timeoutMs: 30_000 });
      await sup.waitForEvent(tools.name, 'claim_locked', { timeoutMs: 30_000, match: (line) => line.worker === 'worker-inflight' });
      // The price of pooling: the call in flight, and its run, are not visible before the call's one COMMIT.
      expect(await query(`select count(*)::int as n from runs where id = $1`, [started.run_id])).toEqual([{ n: 0 }]);
      await sup.kill('worker-inflight');
      await sup.restart('worker-inflight');
      // Its resume read waits on the Worker's lock, taken by the call in flight on another server connection.
      await waitFor(
        'the restarted Worker to wait on its lock',
        async () =>
          (
            await query<{ n: number }>(
              `select count(*)::int as n from pg_stat_activity where usename = $1 and wait_event_type = 'Lock'`,
              [login.login],
            )
          )[0]!.n > 0,
        { timeoutMs: 30_000 },
      );
      expect((sup.get('worker-inflight')?.recentLines ?? []).some((line) => line.includes('"run_resumed"'))).toBe(false);
      expect(await releaseHolds(sup, tools.name)).toBe(1);
      const resumed = await sup.waitForEvent('worker-inflight', 'run_resumed', { timeoutMs: 30_000 });
      expect(resumed).toMatchObject({ run_id: started.run_id, from_turn: 1, reused_calls: 1 });
      expect((await sup.waitForExit('worker-inflight')).exitCode).toBe(0);
      expect(
        await query(`select count(*)::int as n from tool_calls where run_id = $1 and tool = 'claim' and status = 'completed'`, [
          started.run_id,
        ]),
      ).toEqual([{ n: 1 }]);
    } finally {
      await sup.stop(tools.name);
      await through.stop();
    }
  });

  it('runs six real Workers at once through it to finished runs, the tool server in pooling mode, on no more backends than the pool', async () => {
    const through = await pooler(login.url, 2);
    // (The default tool server, its session lock and role on a pool of 2, deadlocks (40P01) or hangs here.)
    for (const { runId, tenant } of await pooledRuns('pooled', through.url, 6)) await expectWholeJournal(runId, tenant);
    // The tool server kept 6 client connections; the server saw at most the pool's 2.
    const [backends] = await query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where usename = $1`, [login.login]);
    expect(backends!.n).toBeGreaterThan(0);
    expect(backends!.n).toBeLessThanOrEqual(2);
    await through.stop();
    expect(groupAlive(through.pid!)).toBe(false);
    expect(await query(`select count(*)::int as n from pg_stat_activity where usename = $1`, [login.login])).toEqual([{ n: 0 }]);
  });
});

describe('the tool server in pooling mode without a pooler', () => {
  it("finishes two Workers' runs against Postgres directly", async () => {
    for (const { runId, tenant } of await pooledRuns('direct', login.url, 2)) await expectWholeJournal(runId, tenant);
  });
});
