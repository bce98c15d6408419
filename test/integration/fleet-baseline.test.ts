// The fleet drill's pgbench baseline (src/drills/fleet/baseline.ts) on a real
// Postgres with the real pgbench: a small run with SKIP LOCKED and with plain FOR
// UPDATE, every seeded row processed once with its expense and outbox row (checked
// here with the test's own queries), the journal rows shaped as the tool server
// writes them (compared with one turn through the real tool server), and a check
// that fails when a row is left over. Without pgbench the file fails, naming the package.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { createTestDatabase, queryRows, type TestDatabase } from '../helpers/db.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { parseUrl } from '../../src/postgres/url.js';
import { createWorkerLogin, type WorkerLogin } from '../../src/reconciler/launch.js';
import { openWorkerPool, type WorkerPool } from '../../src/reconciler/db.js';
import { fitProfileOnPool, profileSetting } from '../../src/reconciler/actions.js';
import { createToolServer } from '../../src/reconciler/tools.js';
import { queueArguments, writeArguments } from '../../src/reconciler/worker-plan.js';
import {
  BaselineUnavailable,
  checkBaseline,
  findPgbench,
  pgbenchPackage,
  runBaseline,
  type BaselineResult,
} from '../../src/drills/fleet/baseline.js';

const workerRole = 'worker_write';
let db: TestDatabase;
let login: WorkerLogin;
const suffix = randomBytes(3).toString('hex');
const tags = { skip: `pgb-skip-${suffix}`, plain: `pgb-plain-${suffix}` };
const results: Partial<Record<keyof typeof tags, BaselineResult>> = {};

const rows = <T extends Record<string, unknown>>(text: string, params: unknown[] = []) => queryRows<T>(db.url, text, params);

beforeAll(async () => {
  db = await createTestDatabase();
  login = await createWorkerLogin(db.url);
});

afterAll(async () => {
  try {
    await login?.drop();
  } finally {
    await db?.dispose();
  }
});

describe('the pgbench baseline', () => {
  it(`finds pgbench (the fleet baseline needs it: apt-get install ${pgbenchPackage})`, async () => {
    try {
      const found = await findPgbench();
      expect(found.version).toMatch(/^pgbench \(PostgreSQL\) \d+/);
    } catch (error) {
      if (error instanceof BaselineUnavailable) {
        throw new Error(`pgbench is missing on this machine: .ci/run must install the Debian package ${pgbenchPackage} (${error.message})`);
      }
      throw error;
    }
  });

  it('says what to install when pgbench is nowhere', async () => {
    const nowhere = await mkdtemp(path.join(tmpdir(), 'sor-no-pgbench-'));
    try {
      const missing = findPgbench({ PATH: nowhere }, nowhere);
      await expect(missing).rejects.toBeInstanceOf(BaselineUnavailable);
      await expect(missing).rejects.toThrow(`apt-get install ${pgbenchPackage}`);
    } finally {
      await rm(nowhere, { recursive: true, force: true });
    }
  });

  for (const side of ['skip', 'plain'] as const) {
    it(`runs 4 clients over 200 rows of 2 tenants with ${side === 'skip' ? 'FOR UPDATE SKIP LOCKED' : 'plain FOR UPDATE'}, every row processed once`, async () => {
      const tag = tags[side];
      const lines: string[] = [];
      const result = await runBaseline({
        workerUrl: login.url,
        workerRole,
        adminUrl: db.url,
        clients: 4,
        tenants: 2,
        transactions: 200,
        skipLocked: side === 'skip',
        tag,
        onProgress: (line) => lines.push(line),
      });
      results[side] = result;
      expect(result.tps).toBeGreaterThan(0);
      expect(result.transactions).toBe(200);
      expect(result.clients).toBe(4);
      expect(result.seconds).toBeGreaterThan(0);
      expect(result.latency_avg_ms).toBeGreaterThan(0);
      expect(result.pgbench).toMatch(/^pgbench \(PostgreSQL\)/);
      expect(result.command).toMatch(/^pgbench -n -M extended -c 4 -j [12] -t 50 /);
      expect(result.command).toContain('role%3Dworker_write');
      const password = parseUrl(login.url).password;
      expect(password.length).toBeGreaterThan(4);
      expect(result.command).not.toContain(password);
      expect(lines.join('\n')).not.toContain(password);
      expect(result.script).toContain(side === 'skip' ? 'for update skip locked \\gset' : ' for update \\gset');
      if (side === 'plain') expect(result.script).not.toContain('skip locked \\gset');

      // The test's own look at the rows: every pending row of the tag processed by a Worker
      // of its own tenant, one expense and one outbox row each.
      const pending = await rows<{ tenant_id: string; status: string; processed_by: string | null; n: number }>(
        `select tenant_id, status, processed_by, count(*)::int as n from pending_transactions
          where tenant_id like $1 group by 1, 2, 3 order by 1, 3`,
        [`${tag}-t%`],
      );
      // Clients 0 and 2 work for tenant 0, clients 1 and 3 for tenant 1, 50 rows each.
      expect(pending).toEqual([
        { tenant_id: `${tag}-t0`, status: 'processed', processed_by: `${tag}-w0`, n: 50 },
        { tenant_id: `${tag}-t0`, status: 'processed', processed_by: `${tag}-w2`, n: 50 },
        { tenant_id: `${tag}-t1`, status: 'processed', processed_by: `${tag}-w1`, n: 50 },
        { tenant_id: `${tag}-t1`, status: 'processed', processed_by: `${tag}-w3`, n: 50 },
      ]);
      const [perRow] = await rows<{ rows: number; one_expense: number; one_outbox: number; amounts_match: number }>(
        `select count(*)::int as rows,
                count(*) filter (where (select count(*) from expenses e where e.tenant_id = p.tenant_id and e.transaction_id = p.id
                                          and e.idempotency_key = p.tenant_id || ':' || p.id) = 1)::int as one_expense,
                count(*) filter (where (select count(*) from outbox o
                                          where o.dedup_key = 'expense-recorded:' || p.tenant_id || ':' || p.id
                                            and o.tenant_id = p.tenant_id and o.status = 'pending') = 1)::int as one_outbox,
                count(*) filter (where exists (select from expenses e where e.transaction_id = p.id and e.amount_cents = p.amount_cents
                                                 and e.description = p.description))::int as amounts_match
           from pending_transactions p where p.tenant_id like $1`,
        [`${tag}-t%`],
      );
      expect(perRow).toEqual({ rows: 200, one_expense: 200, one_outbox: 200, amounts_match: 200 });

      // The journal as the tool server keeps it: 50 turns a client in runs of 10.
      const [journal] = await rows<Record<string, number>>(
        `select (select count(*)::int from runs where id like $1 and status = 'finished' and finished_at is not null and total_turns = 10) as runs,
                (select count(*)::int from turns where run_id like $1 and status = 'completed' and finished_at is not null) as turns,
                (select count(*)::int from tool_calls where run_id like $1 and status = 'completed' and duration_ms is not null
                   and result is not null and finished_at >= started_at) as calls,
                (select count(*)::int from agent_events where run_id like $1) as events,
                (select count(distinct (run_id, turn_no, call_no))::int from tool_calls where run_id like $1) as distinct_calls`,
        [`${tag}-c%`],
      );
      expect(journal).toEqual({ runs: 20, turns: 200, calls: 600, events: 20 + 600 + 200 + 20, distinct_calls: 600 });
      const finished = await rows<{ detail: Record<string, unknown> }>(
        `select detail from agent_events where run_id = $1 and event_type = 'run_finished'`,
        [`${tag}-c3-r5`],
      );
      expect(finished).toEqual([
        {
          detail: {
            status: 'finished',
            total_turns: 10,
            last_turn_no: 10,
            last_turn_status: 'completed',
            transactions_processed: 10,
            expenses_written: 10,
            emails_queued: 10,
          },
        },
      ]);
      // No claim held by two Workers: each row claimed by exactly one tool_calls row.
      const [claims] = await rows<{ claims: number; rows: number }>(
        `select count(*)::int as claims, count(distinct result ->> 'transaction_id')::int as rows
           from tool_calls where run_id like $1 and tool = 'claim'`,
        [`${tag}-c%`],
      );
      expect(claims).toEqual({ claims: 200, rows: 200 });
    });
  }

  it('writes journal rows of the same shape as one turn through the real tool server', async () => {
    expect(results.skip, 'the SKIP LOCKED run above must have passed').toBeDefined();
    const tenant = `pgb-ts-${suffix}`;
    await withPgClient(db.url, async (client) => {
      await client.query(`insert into tenants (id, name) values ($1, $1)`, [tenant]);
      await client.query(
        `insert into pending_transactions (id, tenant_id, amount_cents, description) values ($1 || '-T1', $1, 1234, 'tool server row')`,
        [tenant],
      );
    });
    const pool: WorkerPool = await openWorkerPool(login.url, { max: 1 });
    const client = new Client({ name: 'fleet-baseline-test', version: '0.0.0' });
    const runId = `pgb-ts-run-${suffix}`;
    try {
      const profile = await fitProfileOnPool(pool, profileSetting({}, workerRole));
      const server = createToolServer({ pool, profile, breaks: {}, claimHoldMs: 0, leaseMs: 60_000, log: () => {} });
      const [serverSide, clientSide] = InMemoryTransport.createLinkedPair();
      await server.connect(serverSide);
      await client.connect(clientSide);
      const journal = (call: number, extra: Record<string, unknown> = {}) => ({ run_id: runId, worker: `${tenant}-w`, tenant, turn: 1, of: 1, call, ...extra });
      const claimed = (await client.callTool({ name: 'claim', arguments: { journal: journal(1) } })).structuredContent as {
        transaction_id: string;
        amount_cents: number;
        description: string;
      };
      expect(claimed.transaction_id).toBe(`${tenant}-T1`);
      const written = (await client.callTool({ name: 'write', arguments: { journal: journal(2), ...writeArguments(tenant, claimed) } }))
        .structuredContent as { expense_id: string };
      const queued = await client.callTool({
        name: 'queue',
        arguments: { journal: journal(3, { ends_turn: true }), ...queueArguments(tenant, claimed, written) },
      });
      expect(queued.isError).toBeFalsy();
    } finally {
      await client.close().catch(() => {});
      await pool.end();
    }

    // One turn's rows, with every JSON value replaced by its key set: the shape, not the ids and times.
    const shape = async (run: string) => ({
      calls: await rows(
        `select call_no, tool, status, (select array_agg(k order by k) from jsonb_object_keys(arguments) k) as arguments,
                (select array_agg(k order by k) from jsonb_object_keys(result) k) as result,
                error is null as no_error, duration_ms is not null as timed
           from tool_calls where run_id = $1 and turn_no = 1 order by call_no`,
        [run],
      ),
      events: await rows(
        `select event_type, turn_no, (select array_agg(k order by k) from jsonb_object_keys(detail) k) as detail
           from agent_events where run_id = $1 and (turn_no is null or turn_no = 1) order by id`,
        [run],
      ),
      turn: await rows(`select status, finished_at is not null as finished from turns where run_id = $1 and turn_no = 1`, [run]),
      outbox: await rows(
        `select (recipient = 'finance@' || tenant_id || '.example') as recipient, subject like 'Expense recorded: %' as subject,
                body ~ '^Transaction \\S+ \\(\\d+\\.\\d\\d\\) was recorded as expense \\d+\\.$' as body
           from outbox where run_id = $1`,
        [run],
      ),
    });
    const toolServer = await shape(runId);
    const baseline = await shape(`${tags.skip}-c0-r1`);
    expect(toolServer.calls).toHaveLength(3);
    expect(baseline.calls).toEqual(toolServer.calls);
    // The tool server's one-turn run finished on turn 1; the baseline's run of 10 finishes on turn 10.
    const withoutFinish = (events: Array<Record<string, unknown>>) => events.filter((event) => event.event_type !== 'run_finished');
    expect(withoutFinish(baseline.events)).toEqual(withoutFinish(toolServer.events));
    const [baselineFinish] = await rows(
      `select turn_no, (select array_agg(k order by k) from jsonb_object_keys(detail) k) as detail
         from agent_events where run_id = $1 and event_type = 'run_finished'`,
      [`${tags.skip}-c0-r1`],
    );
    const toolServerFinish = toolServer.events.find((event) => event.event_type === 'run_finished');
    expect(baselineFinish).toEqual({ turn_no: 10, detail: toolServerFinish?.detail });
    expect(baseline.turn).toEqual(toolServer.turn);
    expect(baseline.outbox.slice(0, 1)).toEqual(toolServer.outbox);
    // The argument and result values too, for one claim: the same JSON types.
    const types = (run: string) =>
      rows(
        `select tool, (select jsonb_object_agg(k, jsonb_typeof(v)) from jsonb_each(result) as r(k, v)) as result
           from tool_calls where run_id = $1 and turn_no = 1 order by call_no`,
        [run],
      );
    expect(await types(`${tags.skip}-c0-r1`)).toEqual(await types(runId));
  });

  it('fails its check, naming the row, when a seeded row is left unprocessed', async () => {
    expect(results.plain, 'the plain FOR UPDATE run above must have passed').toBeDefined();
    const tag = tags.plain;
    const clean = await checkBaseline(db.url, tag, { transactions: 200, runs: 20 });
    expect(clean).toEqual({ processed: 200, shortfalls: [] });
    await withPgClient(db.url, (client) =>
      client.query(`insert into pending_transactions (id, tenant_id, amount_cents, description) values ($1, $2, 100, 'left over')`, [
        `${tag}-t1-T9999999`,
        `${tag}-t1`,
      ]),
    );
    const broken = await checkBaseline(db.url, tag, { transactions: 200, runs: 20 });
    expect(broken.processed).toBe(200);
    expect(broken.shortfalls.map((s) => s.what)).toEqual([
      'pending rows not processed',
      'rows without exactly one expense (count in brackets)',
      'rows without exactly one outbox row (count in brackets)',
    ]);
    expect(broken.shortfalls[0]!.examples).toEqual([`${tag}-t1-T9999999`]);
  });

  it('stops pgbench when aborted: its connections go, its temp dir is removed', async () => {
    const tempDirs = async () => (await readdir(tmpdir())).filter((name) => name.startsWith('sor-pgbench-')).sort();
    const before = await tempDirs();
    const controller = new AbortController();
    const reason = new Error('stopped by the test');
    const running = runBaseline({
      workerUrl: login.url,
      workerRole,
      adminUrl: db.url,
      clients: 2,
      tenants: 1,
      transactions: 20_000,
      skipLocked: true,
      tag: `pgb-abort-${suffix}`,
      onProgress: (line) => {
        if (line.startsWith('baseline progress:')) controller.abort(reason);
      },
      signal: controller.signal,
    });
    await expect(running).rejects.toBe(reason);
    const deadline = Date.now() + 10_000;
    let left: Array<{ pid: number }> = [];
    do {
      left = await rows<{ pid: number }>(`select pid from pg_stat_activity where application_name = 'sor-fleet-baseline'`);
      if (left.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    } while (Date.now() < deadline);
    expect(left).toEqual([]);
    expect(await tempDirs()).toEqual(before);
  });

  it('acts as the worker role: a login that may not is refused before any row is claimed', async () => {
    const outsider = `sor_test_outsider_${suffix}`;
    const password = randomBytes(12).toString('base64url');
    await withPgClient(db.url, (client) => client.query(`create role ${outsider} login password '${password}'`));
    try {
      const url = new URL(db.url);
      url.username = outsider;
      url.password = password;
      const tag = `pgb-outsider-${suffix}`;
      const failure = await runBaseline({
        workerUrl: url.toString(),
        workerRole,
        adminUrl: db.url,
        clients: 2,
        tenants: 1,
        transactions: 4,
        skipLocked: true,
        tag,
      }).then(
        () => undefined,
        (error: unknown) => error as Error,
      );
      expect(failure?.message).toMatch(/pgbench exited with code \d+.*permission denied to set role "worker_write"/);
      expect(failure?.message).not.toContain(password);
      const [left] = await rows<{ pending: number }>(`select count(*)::int as pending from pending_transactions where tenant_id = $1 and status = 'pending'`, [
        `${tag}-t0`,
      ]);
      expect(left).toEqual({ pending: 4 });
    } finally {
      await withPgClient(db.url, (client) => client.query(`drop role ${outsider}`));
    }
  });
});
