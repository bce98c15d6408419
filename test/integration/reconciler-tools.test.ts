// The tool server (a real process, real Postgres): the bearer token, exactly
// four tools, an unknown tool refused by the MCP layer, arguments that are data,
// idempotent writes, the journal and its events, failures recorded as failed
// calls and runs, the deliberate breaks, and `sor-drills tools` on stdio.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanEnv, cliPath } from '../helpers/cli.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { Supervisor } from '../../src/reconciler/supervisor.js';
import { createWorkerLogin, startToolServer, type ToolServer, type WorkerLogin } from '../../src/reconciler/launch.js';

let db: TestDatabase;
let login: WorkerLogin;
let logDir: string;
let sup: Supervisor;
let tools: ToolServer;
const clients: Client[] = [];

async function connectClient(server: { url: string; token: string }): Promise<Client> {
  const client = new Client({ name: 'reconciler-tools-test', version: '0.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(server.url), {
      requestInit: { headers: { authorization: `Bearer ${server.token}` } },
    }),
  );
  clients.push(client);
  return client;
}

const query = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  withPgClient(db.url, async (client) => (await client.query<T>(sql, params)).rows);

/** The one row a query returns. */
const one = async <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => (await query<T>(sql, params))[0]!;

const journal = (runId: string, turn: number, call: number, extra: Record<string, unknown> = {}) => ({
  run_id: runId,
  worker: 'tools-test',
  tenant: 'alice',
  turn,
  of: 1,
  call,
  ...extra,
});

function text(result: Awaited<ReturnType<Client['callTool']>>): string {
  return (result.content as Array<{ type: string; text?: string }>).map((part) => part.text ?? '').join('');
}

beforeAll(async () => {
  db = await createTestDatabase();
  login = await createWorkerLogin(db.url);
  logDir = await mkdtemp(path.join(tmpdir(), 'sor-reconciler-tools-'));
  sup = new Supervisor({ logDir });
  tools = await startToolServer(sup, { databaseUrl: login.url });
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => {});
  await sup?.close();
  try {
    await login?.drop();
    await db?.dispose();
  } finally {
    if (logDir) await rm(logDir, { recursive: true, force: true });
  }
});

describe('the MCP boundary', () => {
  it('refuses a request without the bearer token with 401, and one with a wrong token', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const none = await fetch(tools.url, { method: 'POST', headers, body });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await fetch(tools.url, { method: 'POST', headers: { ...headers, authorization: 'Bearer nope' }, body });
    expect(wrong.status).toBe(401);
    await sup.waitForEvent(tools.name, 'unauthorized', { timeoutMs: 5_000 });
  });

  it('lists exactly the four tools, each with a schema', async () => {
    const client = await connectClient(tools);
    const { tools: listed } = await client.listTools();
    expect(listed.map((tool) => tool.name)).toEqual(['claim', 'write', 'queue', 'read']);
    for (const tool of listed.filter((tool) => tool.name !== 'read')) {
      expect(tool.inputSchema.required).toContain('journal');
    }
  });

  it('refuses drop_table at the MCP layer (-32602, tool not found) and touches nothing', async () => {
    const client = await connectClient(tools);
    const before = await query<{ expenses: number; calls: number }>(
      `select (select count(*)::int from expenses) as expenses, (select count(*)::int from tool_calls) as calls`,
    );
    let refusal = '';
    try {
      const result = await client.callTool({ name: 'drop_table', arguments: { table: 'expenses' } });
      // SDK 1.x today: an isError result; older 1.x threw an McpError. Both are the MCP layer refusing.
      expect(result.isError).toBe(true);
      refusal = text(result);
    } catch (error) {
      expect(error).toBeInstanceOf(McpError);
      expect((error as McpError).code).toBe(-32602);
      refusal = (error as McpError).message;
    }
    expect(refusal).toMatch(/-32602/);
    expect(refusal).toMatch(/Tool drop_table not found/);
    const after = await query(
      `select (select count(*)::int from expenses) as expenses, (select count(*)::int from tool_calls) as calls`,
    );
    expect(after).toEqual(before);
    expect(await query(`select to_regclass('public.expenses')::text as t`)).toEqual([{ t: 'expenses' }]);
  });

  it('stores a SQL-looking argument as data: nothing is executed', async () => {
    const client = await connectClient(tools);
    const runId = randomUUID();
    const key = 'COMMIT; DROP TABLE expenses; --';
    const description = "x'); drop table expenses; select ('";
    const result = await client.callTool({
      name: 'write',
      arguments: { journal: journal(runId, 1, 1, { ends_turn: true }), idempotency_key: key, amount_cents: 100, description },
    });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ inserted: true });
    const rows = await query(`select idempotency_key, description from expenses where tenant_id = 'alice' and idempotency_key = $1`, [key]);
    expect(rows).toEqual([{ idempotency_key: key, description }]);
    const tables = await query<{ n: number }>(
      `select count(*)::int as n from pg_tables where schemaname = 'public'
          and tablename in ('tenants', 'expenses', 'pending_transactions', 'runs', 'turns', 'tool_calls', 'outbox', 'agent_events')`,
    );
    expect(tables).toEqual([{ n: 8 }]);
    const { n } = await one<{ n: number }>(`select count(*)::int as n from expenses`);
    expect(n).toBe(47 + 31 + 1);
  });
});

describe('journaled tools', () => {
  it('writes idempotently: the same key twice is +1 row and a no-op that says so', async () => {
    const client = await connectClient(tools);
    const runId = randomUUID();
    const { n: before } = await one<{ n: number }>(`select count(*)::int as n from expenses`);
    const args = { idempotency_key: 'alice:idem-1', amount_cents: 4200, description: 'Idempotency test' };
    const first = await client.callTool({ name: 'write', arguments: { ...args, journal: { ...journal(runId, 1, 1), of: 2 } } });
    const second = await client.callTool({ name: 'write', arguments: { ...args, journal: { ...journal(runId, 1, 2), of: 2 } } });
    expect(first.structuredContent).toMatchObject({ inserted: true });
    expect(second.structuredContent).toMatchObject({ inserted: false, expense_id: (first.structuredContent as { expense_id: string }).expense_id });
    const { n: after } = await one<{ n: number }>(`select count(*)::int as n from expenses`);
    expect(after - before).toBe(1);
  });

  it('journals a whole 1-turn run: claim, write, queue; the run finishes; the events tell it', async () => {
    const client = await connectClient(tools);
    const runId = randomUUID();
    const claimed = await client.callTool({ name: 'claim', arguments: { journal: journal(runId, 1, 1) } });
    const claim = claimed.structuredContent as { transaction_id: string; amount_cents: number; description: string; locked_at: string; released_at: string };
    expect(claim.transaction_id).toBe('T-101');
    expect(Date.parse(claim.released_at)).toBeGreaterThanOrEqual(Date.parse(claim.locked_at));
    // In flight between calls: the run is running, its finished_at null.
    expect(await query(`select status, finished_at from runs where id = $1`, [runId])).toEqual([{ status: 'running', finished_at: null }]);
    const written = await client.callTool({
      name: 'write',
      arguments: {
        journal: journal(runId, 1, 2),
        idempotency_key: `alice:${claim.transaction_id}`,
        transaction_id: claim.transaction_id,
        amount_cents: claim.amount_cents,
        description: claim.description,
      },
    });
    expect(written.structuredContent).toMatchObject({ inserted: true, processed: true });
    const queued = await client.callTool({
      name: 'queue',
      arguments: {
        journal: journal(runId, 1, 3, { ends_turn: true }),
        dedup_key: `expense-recorded:alice:${claim.transaction_id}`,
        recipient: 'finance@alice.example',
        subject: `Expense recorded: ${claim.transaction_id}`,
        body: 'recorded',
        transaction_id: claim.transaction_id,
      },
    });
    expect(queued.structuredContent).toMatchObject({ queued: true, outbox_id: expect.stringMatching(/^O-\d+$/) });

    const runs = await query(`select status, total_turns, finished_at is not null as finished from runs where id = $1`, [runId]);
    expect(runs).toEqual([{ status: 'finished', total_turns: 1, finished: true }]);
    const calls = await query(
      `select turn_no, call_no, tool, status, duration_ms is not null as timed from tool_calls where run_id = $1 order by id`,
      [runId],
    );
    expect(calls).toEqual([
      { turn_no: 1, call_no: 1, tool: 'claim', status: 'completed', timed: true },
      { turn_no: 1, call_no: 2, tool: 'write', status: 'completed', timed: true },
      { turn_no: 1, call_no: 3, tool: 'queue', status: 'completed', timed: true },
    ]);
    const events = await query<{ event_type: string }>(`select event_type from agent_events where run_id = $1 order by id`, [runId]);
    expect(events.map((event) => event.event_type)).toEqual([
      'run_started',
      'tool_called',
      'tool_called',
      'tool_called',
      'turn_completed',
      'run_finished',
    ]);
    const pending = await query(`select status, processed_by from pending_transactions where id = 'T-101'`);
    expect(pending).toEqual([{ status: 'processed', processed_by: 'tools-test' }]);

    const read = await client.callTool({ name: 'read', arguments: { what: 'journal', run_id: runId } });
    const answer = read.structuredContent as { run: { status: string }; calls: unknown[]; turns: unknown[] };
    expect(answer.run.status).toBe('finished');
    expect(answer.calls).toHaveLength(3);
    expect(answer.turns).toHaveLength(1);
  });

  it('records a refused write as a failed call with its SQLSTATE and fails the run', async () => {
    const client = await connectClient(tools);
    const runId = randomUUID();
    const result = await client.callTool({
      name: 'write',
      arguments: { journal: { ...journal(runId, 1, 1), of: 3 }, idempotency_key: 'alice:zero', amount_cents: 0, description: 'zero' },
    });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/23514/);
    expect(await query(`select count(*)::int as n from expenses where idempotency_key = 'alice:zero'`)).toEqual([{ n: 0 }]);
    expect(await query(`select status, error_code from tool_calls where run_id = $1`, [runId])).toEqual([
      { status: 'failed', error_code: '23514' },
    ]);
    const [run] = await query<{ status: string; finished: boolean; error: string }>(
      `select status, finished_at is not null as finished, error from runs where id = $1`,
      [runId],
    );
    expect(run).toMatchObject({ status: 'failed', finished: true });
    expect(run!.error).toMatch(/SQLSTATE 23514/);
    const events = await query<{ event_type: string }>(`select event_type from agent_events where run_id = $1 order by id`, [runId]);
    expect(events.map((event) => event.event_type)).toEqual(['run_started', 'tool_failed', 'run_failed']);

    // A failed run takes no more calls, and nothing more is recorded for it.
    const again = await client.callTool({ name: 'claim', arguments: { journal: { ...journal(runId, 2, 1), of: 3 } } });
    expect(again.isError).toBe(true);
    expect(text(again)).toMatch(/is failed/);
    expect(await query(`select count(*)::int as n from tool_calls where run_id = $1`, [runId])).toEqual([{ n: 1 }]);
  });
});

describe('deliberate breaks', () => {
  it('noIdempotencyKey lands two rows; rawSqlTool exposes a fifth tool; noEvents writes no events', async () => {
    const broken = await startToolServer(sup, {
      databaseUrl: login.url,
      breaks: { noIdempotencyKey: true, rawSqlTool: true, noEvents: true },
      processName: 'tool-server-broken',
    });
    const client = await connectClient(broken);
    const { tools: listed } = await client.listTools();
    expect(listed.map((tool) => tool.name)).toEqual(['claim', 'write', 'queue', 'read', 'sql']);
    const runId = randomUUID();
    const args = { idempotency_key: 'alice:broken', amount_cents: 500, description: 'Break test' };
    await client.callTool({ name: 'write', arguments: { ...args, journal: { ...journal(runId, 1, 1), of: 2 } } });
    await client.callTool({ name: 'write', arguments: { ...args, journal: { ...journal(runId, 1, 2), of: 2 } } });
    expect(await query(`select count(*)::int as n from expenses where description = 'Break test'`)).toEqual([{ n: 2 }]);
    expect(await query(`select count(*)::int as n from agent_events where run_id = $1`, [runId])).toEqual([{ n: 0 }]);
    await sup.stop(broken.name);
  });
});

describe('sor-drills tools (stdio)', () => {
  it('serves the same four tools to a stdio client', async () => {
    const client = new Client({ name: 'stdio-test', version: '0.0.0' });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [cliPath, 'tools', '--db', login.url],
      env: cleanEnv(),
      stderr: 'pipe',
    });
    await client.connect(transport);
    try {
      const { tools: listed } = await client.listTools();
      expect(listed.map((tool) => tool.name)).toEqual(['claim', 'write', 'queue', 'read']);
      const read = await client.callTool({ name: 'read', arguments: { what: 'resume', worker: 'nobody' } });
      expect(read.structuredContent).toEqual({ run: null, turns: [], calls: [] });
    } finally {
      await client.close();
    }
  });
});

describe('a target without the idempotency key', () => {
  it('fails the write with 42P10 instead of papering over it', async () => {
    await query(`alter table expenses drop constraint expenses_tenant_idempotency_key`);
    const client = await connectClient(tools);
    const runId = randomUUID();
    const result = await client.callTool({
      name: 'write',
      arguments: { journal: journal(runId, 1, 1), idempotency_key: 'alice:no-unique', amount_cents: 100, description: 'no unique' },
    });
    expect(result.isError).toBe(true);
    expect(await query(`select status, error_code from tool_calls where run_id = $1`, [runId])).toEqual([
      { status: 'failed', error_code: '42P10' },
    ]);
    expect(await query(`select status from runs where id = $1`, [runId])).toEqual([{ status: 'failed' }]);
  });
});
