// The reference Reconciler's processes (tool server, Worker, relay) against another
// schema through its profile: fixtures/other-reconciler (users with uuid keys,
// numeric amounts, runs that end 'completed', pending rows 'done', tool_calls
// reaching their run through turns and numbered by seq, outbox_messages with a jsonb
// payload, agent_events without a turn column). A Worker's 2-turn run writes the rows
// that schema expects; a repeated write lands one row; a Worker killed mid-turn resumes
// from that journal; the relay sends a due outbox_messages row (after a failed first
// send) and marks it 'sent' with its attempt_count; and a profile naming a table the
// target lacks stops the tool server at start with one line.
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { queryRows, type TestDatabase } from '../helpers/db.js';
import type { TestSystem } from '../helpers/drills.js';
import { type OtherRoles, useOtherTarget } from '../helpers/other-reconciler.js';
import type { ProfileInUse } from '../../src/postgres/profile/index.js';
import { startRelay, startToolServer, startWorker, type ToolServer } from '../../src/reconciler/launch.js';
import { waitFor } from '../../src/util/wait.js';

const alice = '00000000-0000-4000-8000-00000000a11c';
const bob = '00000000-0000-4000-8000-000000000b0b';

let db: TestDatabase;
let system: TestSystem;
let profile: ProfileInUse;
let roles: OtherRoles;
let tools: ToolServer;
const clients: Client[] = [];

useOtherTarget((target) => {
  ({ db, system, profile, roles } = target);
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => {});
});

const query = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => queryRows<T>(db.url, sql, params);

const sup = () => system.supervisor();

async function toolServer(): Promise<ToolServer> {
  tools ??= await system.toolServer();
  return tools;
}

async function connectClient(server: { url: string; token: string }): Promise<Client> {
  const client = new Client({ name: 'reconciler-profile-test', version: '0.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(server.url), {
      requestInit: { headers: { authorization: `Bearer ${server.token}` } },
    }),
  );
  clients.push(client);
  return client;
}

/** Runs a Worker to its end and returns its run id. */
async function workerRun(name: string, tenant: string, turns: number): Promise<string> {
  await startWorker(sup(), { name, tenant, tools: await toolServer(), pace_ms: 0, turns });
  const started = await sup().waitForEvent(name, 'run_started', { timeoutMs: 15_000 });
  const exit = await sup().waitForExit(name);
  expect(exit.exitCode).toBe(0);
  return String(started.run_id);
}

describe('a Worker run through the tool server, in the other schema', () => {
  it('writes expenses in major units, marks pending rows done, and journals runs, turns, tool_calls, outbox_messages and agent_events', async () => {
    const runId = await workerRun('profile-worker', alice, 2);

    expect(await query(`select user_id::text, worker_id, status, ended_at is not null as ended from runs where id = $1`, [runId])).toEqual([
      { user_id: alice, worker_id: 'profile-worker', status: 'completed', ended: true },
    ]);
    expect(await query(`select turn_index, status, ended_at is not null as ended from turns where run_id = $1 order by turn_index`, [runId])).toEqual([
      { turn_index: 1, status: 'completed', ended: true },
      { turn_index: 2, status: 'completed', ended: true },
    ]);
    const calls = await query<{ turn_index: number; seq: number; tool_name: string; status: string; output: Record<string, unknown> | null }>(
      `select t.turn_index, c.seq, c.tool_name, c.status, c.output
         from tool_calls c join turns t on t.id = c.turn_id
        where t.run_id = $1 and c.ended_at is not null
        order by t.turn_index, c.seq`,
      [runId],
    );
    expect(calls.map(({ turn_index, seq, tool_name, status }) => ({ turn_index, seq, tool_name, status }))).toEqual(
      [1, 2].flatMap((turn) =>
        ['claim', 'write', 'queue'].map((tool, index) => ({ turn_index: turn, seq: index + 1, tool_name: tool, status: 'completed' })),
      ),
    );

    // The claimed transactions: done, with an expense each in the same (major) units.
    const claimed = calls.filter((call) => call.tool_name === 'claim').map((call) => String(call.output!.transaction_id));
    expect(new Set(claimed).size).toBe(2);
    const pending = await query<{ id: string; status: string; claimed_by: string; lease: boolean; done: boolean; amount: string; memo: string }>(
      `select id::text, status, claimed_by, lease_expires_at is not null as lease, done_at is not null as done, amount::text, memo
         from pending_transactions where id::text = any($1::text[]) order by id`,
      [claimed],
    );
    expect(pending.map(({ status, claimed_by, lease, done }) => ({ status, claimed_by, lease, done }))).toEqual([
      { status: 'done', claimed_by: 'profile-worker', lease: false, done: true },
      { status: 'done', claimed_by: 'profile-worker', lease: false, done: true },
    ]);
    const expenses = await query<{ bank_txn_id: string; idempotency_key: string; amount: string; memo: string }>(
      `select bank_txn_id::text, idempotency_key, amount::text, memo from expenses where bank_txn_id::text = any($1::text[]) order by bank_txn_id`,
      [claimed],
    );
    expect(expenses).toEqual(
      pending.map((row) => ({ bank_txn_id: row.id, idempotency_key: `${alice}:${row.id}`, amount: row.amount, memo: row.memo })),
    );

    const outbox = await query<{ dedup_key: string; payload: Record<string, string>; status: string; attempt_count: number }>(
      `select dedup_key, payload, status, attempt_count from outbox_messages where run_id = $1 order by dedup_key`,
      [runId],
    );
    expect(outbox).toHaveLength(2);
    for (const row of outbox) {
      const id = row.dedup_key.replace(`expense-recorded:${alice}:`, '');
      expect(claimed).toContain(id);
      expect(row).toMatchObject({ status: 'pending', attempt_count: 0 });
      expect(row.payload).toMatchObject({ to: `finance@${alice}.example`, subject: `Expense recorded: ${id}` });
      expect(row.payload.body).toMatch(new RegExp(`^Transaction ${id} \\(\\d+\\.\\d\\d\\) was recorded as expense `));
    }

    const events = await query<{ event_type: string; user_id: string; payload: Record<string, unknown> }>(
      `select event_type, user_id::text, payload from agent_events where run_id = $1 order by id`,
      [runId],
    );
    const turn = ['tool_called', 'tool_called', 'tool_called', 'turn_completed'];
    expect(events.map((event) => event.event_type)).toEqual(['run_started', ...turn, ...turn, 'run_finished']);
    expect(events.every((event) => event.user_id === alice)).toBe(true);
    expect(events[0]!.payload).toMatchObject({ total_turns: 2, worker: 'profile-worker' });
    expect(events.at(-1)!.payload).toMatchObject({ status: 'finished', transactions_processed: 2, expenses_written: 2, emails_queued: 2 });

    // The read tool answers in the drills' words whatever the schema stores.
    const client = await connectClient(await toolServer());
    const read = await client.callTool({ name: 'read', arguments: { what: 'journal', run_id: runId } });
    expect(read.structuredContent).toMatchObject({
      run: { id: runId, tenant_id: alice, worker: 'profile-worker', status: 'finished', total_turns: 2 },
      turns: [{ turn_no: 1, status: 'completed' }, { turn_no: 2, status: 'completed' }],
    });
    expect((read.structuredContent as { calls: unknown[] }).calls).toHaveLength(6);
    const probe = await client.callTool({ name: 'read', arguments: { what: 'journal', run_id: `R-44' or '1'='1` } });
    expect(probe.structuredContent).toEqual({ run: null, turns: [], calls: [] });
  });

  it('lands one expense for a repeated write with the same key (its single-column idempotency key)', async () => {
    const client = await connectClient(await toolServer());
    const runId = randomUUID();
    const journal = (call: number) => ({ run_id: runId, worker: 'profile-idem', tenant: alice, turn: 1, of: 1, call });
    const args = { idempotency_key: `${alice}:idem-${runId}`, amount_cents: 1234, description: 'Repeated write' };
    const first = await client.callTool({ name: 'write', arguments: { ...args, journal: journal(1) } });
    const second = await client.callTool({ name: 'write', arguments: { ...args, journal: { ...journal(2), ends_turn: true } } });
    expect(first.structuredContent).toMatchObject({ inserted: true });
    expect(second.structuredContent).toMatchObject({
      inserted: false,
      expense_id: (first.structuredContent as { expense_id: string }).expense_id,
    });
    expect(await query(`select amount::text, memo from expenses where idempotency_key = $1`, [args.idempotency_key])).toEqual([
      { amount: '12.34', memo: 'Repeated write' },
    ]);
    expect(await query(`select status from runs where id = $1`, [runId])).toEqual([{ status: 'completed' }]);
  });

  it('resumes a Worker killed mid-turn from that journal (runs has no total_turns: the run_started event says 2)', async () => {
    const name = 'profile-resume';
    await startWorker(sup(), { name, tenant: bob, tools: await toolServer(), pace_ms: 0, turns: 2, pauseAfter: '1.2' });
    const started = await sup().waitForEvent(name, 'run_started', { timeoutMs: 15_000 });
    const runId = String(started.run_id);
    await sup().waitForEvent(name, 'paused', { timeoutMs: 15_000 });
    await sup().kill(name);
    expect(await query(`select status, ended_at from runs where id = $1`, [runId])).toEqual([{ status: 'running', ended_at: null }]);

    await sup().restart(name);
    const resumed = await sup().waitForEvent(name, 'run_resumed', { timeoutMs: 15_000 });
    expect(resumed).toMatchObject({ run_id: runId, from_turn: 1, of: 2, reused_calls: 2 });
    expect((await sup().waitForExit(name)).exitCode).toBe(0);
    expect(await query(`select status from runs where id = $1`, [runId])).toEqual([{ status: 'completed' }]);
    // No completed call twice: the claim and the write of turn 1 were reused, not redone.
    expect(
      await query(
        `select t.turn_index, c.seq from tool_calls c join turns t on t.id = c.turn_id
          where t.run_id = $1 and c.status = 'completed' group by 1, 2 having count(*) > 1`,
        [runId],
      ),
    ).toEqual([]);
    expect(await query(`select count(*)::int as n from turns where run_id = $1 and status = 'completed'`, [runId])).toEqual([{ n: 2 }]);
  });
});

describe('the relay, in the other schema', () => {
  it("sends a due outbox_messages row from its payload and marks it 'sent' with attempt_count, after a failed first send", async () => {
    const dedupKey = `profile-relay:${randomUUID()}`;
    // The rows earlier tests left pending are parked: this test relays its own row only.
    await query(`update outbox_messages set status = 'dead' where status = 'pending'`);
    const [row] = await query<{ id: string }>(
      `insert into outbox_messages (user_id, dedup_key, payload) values ($1, $2, $3) returning id::text`,
      [alice, dedupKey, { to: 'alice@example.com', subject: 'Relay test', body: 'body' }],
    );
    const email = await system.emailService();
    await email.failNext(1, 'status503');
    await startRelay(sup(), {
      databaseUrl: await system.workerUrl(),
      tenant: alice,
      emailUrl: email.url,
      pollMs: 25,
      backoffMs: 150,
      role: roles.worker_write,
      profile: profile.profile,
    });
    try {
      const failed = await sup().waitForEvent('relay', 'send_failed', { timeoutMs: 15_000 });
      expect(failed).toMatchObject({ outbox_id: row!.id, attempts: 1 });
      const sent = await waitFor(
        'the row sent',
        async () => {
          const [state] = await query<{ status: string; attempt_count: number; sent: boolean; last_error: string | null }>(
            `select status, attempt_count, sent_at is not null as sent, last_error from outbox_messages where id = $1`,
            [row!.id],
          );
          return state?.status === 'sent' ? state : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect(sent).toMatchObject({ status: 'sent', attempt_count: 2, sent: true, last_error: expect.stringMatching(/503/) });
      const report = await email.report();
      expect(report.by_dedup_key[dedupKey]).toEqual({ requests: 2, deliveries: 1 });
    } finally {
      await system.stop('relay');
    }
  });
});

describe('a profile that does not fit', () => {
  it('stops the tool server at start with one line naming the table the target lacks', async () => {
    const misfit = { ...profile.profile, outbox: { ...profile.profile.outbox, table: 'outbox' } };
    const name = 'tool-server-misfit';
    await expect(
      startToolServer(sup(), { databaseUrl: await system.workerUrl(), role: roles.worker_write, profile: misfit, processName: name }),
    ).rejects.toThrow(/exited with code 1/);
    expect(sup().get(name)?.recentLines).toEqual([
      'tool server: profile SOR_PROFILE does not fit the target: outbox.table names outbox, which is not a table in schema public',
    ]);
  });
});
