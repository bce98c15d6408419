// The Worker as a real process against the tool server and a real Postgres:
// its environment read from the OS, a 5-turn run killed mid-turn 3 and resumed,
// the crash/resume property under 30 random SIGKILLs, resume switched off (the
// deliberate break), and two Workers racing for claims with and without SKIP LOCKED.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, queryRows, type TestDatabase } from '../helpers/db.js';
import { isAlive, Supervisor } from '../../src/reconciler/supervisor.js';
import { credentialVariables, parseEnviron, workerEnvAllowList } from '../../src/reconciler/env.js';
import { parseJsonLine, type JsonLine } from '../../src/reconciler/json-lines.js';
import {
  createWorkerLogin,
  releaseHolds,
  startToolServer,
  startWorker,
  type ToolServer,
  type WorkerLogin,
} from '../../src/reconciler/launch.js';
import { delay, waitFor } from '../../src/util/wait.js';

let db: TestDatabase;
let login: WorkerLogin;
let logDir: string;
let sup: Supervisor;
let tools: ToolServer;

const query = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => queryRows<T>(db.url, sql, params);

/** The one row a query returns. */
const one = async <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => (await query<T>(sql, params))[0]!;

/** Pending transactions for a tenant, ids `<prefix>-<n>` (the superuser bypasses RLS). */
const addPending = (tenant: string, prefix: string, count: number) =>
  query(
    `insert into pending_transactions (id, tenant_id, amount_cents, description)
     select $2 || '-' || lpad(n::text, 3, '0'), $1, 100 + n, 'Generated ' || n from generate_series(1, $3::int) as n`,
    [tenant, prefix, count],
  );

/** A tenant of the test's own with `count` pending transactions `<tenant>-001`, ...: no other test claims them. */
async function ownTenant(label: string, count: number): Promise<string> {
  const tenant = `${label}-${randomBytes(3).toString('hex')}`;
  await query(`insert into tenants (id, name) values ($1, $1)`, [tenant]);
  await addPending(tenant, tenant, count);
  return tenant;
}

/** Tool server sessions Postgres shows waiting on a lock (a row lock, or a Worker's advisory lock). */
const toolSessionsWaiting = async () =>
  (
    await one<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name = 'sor-tool-server' and wait_event_type = 'Lock'`,
    )
  ).n;

/** A claim hold that only releaseHolds() ends: the tests wait on what they see, never on its length. */
const heldUntilReleased = 60_000;

/** A small deterministic PRNG (mulberry32), so a failing run can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const events = (name: string): JsonLine[] =>
  (sup.get(name)?.recentLines ?? []).map(parseJsonLine).filter((line): line is JsonLine => line !== undefined);

beforeAll(async () => {
  db = await createTestDatabase();
  login = await createWorkerLogin(db.url);
  logDir = await mkdtemp(path.join(tmpdir(), 'sor-reconciler-worker-'));
  sup = new Supervisor({ logDir, recentLines: 5_000 });
  tools = await startToolServer(sup, { databaseUrl: login.url, claimHoldMs: 20 });
});

afterAll(async () => {
  const pids = sup?.startedPids() ?? [];
  await sup?.close();
  try {
    expect(pids.filter(isAlive)).toEqual([]);
    await login?.drop();
    await db?.dispose();
  } finally {
    if (logDir) await rm(logDir, { recursive: true, force: true });
  }
});

describe("the Worker's environment", () => {
  it('holds no DATABASE_URL and no PG* variable, read from /proc, while the console has them', async () => {
    const saved = { DATABASE_URL: process.env.DATABASE_URL, PGPASSWORD: process.env.PGPASSWORD };
    process.env.DATABASE_URL = db.url;
    process.env.PGPASSWORD = 'console-secret';
    try {
      const info = await startWorker(sup, { name: 'env-worker', tenant: 'bob', tools, pace_ms: 10_000 });
      const environ = parseEnviron(await readFile(`/proc/${info.pid}/environ`, 'utf8'));
      expect(credentialVariables(environ)).toEqual([]);
      expect(Object.keys(environ).every((name) => (workerEnvAllowList as readonly string[]).includes(name))).toBe(true);
      expect(environ.SOR_TOOLS_URL).toBe(tools.url);
      expect(Object.values(environ).join('\n')).not.toContain(login.url);
      await sup.kill('env-worker');

      // The boundary drill's deliberate break really hands the URL over (so the check above can fail).
      const leaky = await startWorker(sup, {
        name: 'leaky-worker',
        tenant: 'bob',
        tools,
        pace_ms: 10_000,
        leakDatabaseUrl: login.url,
      });
      const leaked = parseEnviron(await readFile(`/proc/${leaky.pid}/environ`, 'utf8'));
      expect(credentialVariables(leaked)).toEqual(['DATABASE_URL']);
      await sup.kill('leaky-worker');
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});

describe('run journal resume', () => {
  it('runs 5 turns, is SIGKILLed mid-turn 3, and resumes from turn 3 without redoing a completed call', async () => {
    await startWorker(sup, { name: 'resume-worker', tenant: 'alice', tools, pace_ms: 10 });
    const started = await sup.waitForEvent('resume-worker', 'run_started', { timeoutMs: 10_000 });
    const runId = String(started.run_id);
    await sup.waitForEvent('resume-worker', 'call_completed', { timeoutMs: 10_000, match: (line) => line.turn === 3 && line.call === 1 });
    const killed = await sup.kill('resume-worker');
    expect(killed.signal).toBe('SIGKILL');
    // The crash signature.
    expect(await query(`select status, finished_at from runs where id = $1`, [runId])).toEqual([{ status: 'running', finished_at: null }]);
    const { last: lastBefore } = await one<{ last: string }>(`select max(id)::text as last from tool_calls where run_id = $1`, [runId]);

    await sup.restart('resume-worker');
    const resumed = await sup.waitForEvent('resume-worker', 'run_resumed', { timeoutMs: 10_000 });
    expect(resumed).toMatchObject({ run_id: runId, from_turn: 3, of: 5 });
    const exit = await sup.waitForExit('resume-worker');
    expect(exit.exitCode).toBe(0);

    expect(await query(`select status, finished_at is not null as finished from runs where id = $1`, [runId])).toEqual([
      { status: 'finished', finished: true },
    ]);
    // Turns 1 and 2 got no new calls after the restart; turn 3 call 1 (completed before the kill) was reused.
    const after = await query<{ turn_no: number; call_no: number }>(
      `select turn_no, call_no from tool_calls where run_id = $1 and id > $2 order by id`,
      [runId, lastBefore],
    );
    expect(after.filter((call) => call.turn_no < 3)).toEqual([]);
    expect(after.some((call) => call.turn_no === 3 && call.call_no === 1)).toBe(false);
    expect(events('resume-worker').some((line) => line.event === 'call_reused' && line.turn === 3 && line.call === 1)).toBe(true);
    const duplicates = await query(
      `select turn_no, call_no from tool_calls where run_id = $1 and status = 'completed' group by 1, 2 having count(*) > 1`,
      [runId],
    );
    expect(duplicates).toEqual([]);
    expect(await query(`select count(*)::int as n from expenses where idempotency_key like 'alice:T-1%'`)).toEqual([{ n: 5 }]);
  });

  it('a Worker killed while its call is still in flight resumes after that call lands, and reuses it', async () => {
    const tenant = await ownTenant('inflight', 2);
    const slow = await startToolServer(sup, { databaseUrl: login.url, claimHoldMs: heldUntilReleased, processName: 'tools-slow' });
    await startWorker(sup, { name: 'inflight', tenant, tools: slow, pace_ms: 0, turns: 1 });
    const started = await sup.waitForEvent('inflight', 'run_started', { timeoutMs: 10_000 });
    await sup.waitForEvent(slow.name, 'claim_locked', { timeoutMs: 10_000, match: (line) => line.worker === 'inflight' });
    await sup.kill('inflight');
    // Restarted while its claim is still held: its resume read waits on the Worker's lock.
    await sup.restart('inflight');
    await waitFor('the restarted Worker to wait on its lock', async () => (await toolSessionsWaiting()) > 0, { timeoutMs: 10_000 });
    expect(events('inflight').filter((line) => line.event === 'run_resumed')).toEqual([]);
    // The claim lands; only then does the resume read go on, and it finds the claim recorded.
    expect(await releaseHolds(sup, slow.name)).toBe(1);
    const resumed = await sup.waitForEvent('inflight', 'run_resumed', { timeoutMs: 10_000 });
    expect(resumed).toMatchObject({ run_id: started.run_id, from_turn: 1, reused_calls: 1 });
    expect((await sup.waitForExit('inflight')).exitCode).toBe(0);
    expect(await query(`select tool, status from tool_calls where run_id = $1 order by id`, [started.run_id])).toEqual([
      { tool: 'claim', status: 'completed' },
      { tool: 'write', status: 'completed' },
      { tool: 'queue', status: 'completed' },
    ]);
    expect(await query(`select id, status from pending_transactions where tenant_id = $1 order by id`, [tenant])).toEqual([
      { id: `${tenant}-001`, status: 'processed' },
      { id: `${tenant}-002`, status: 'pending' },
    ]);
    await sup.stop(slow.name);
  });

  it('keeps every run whole under 30 SIGKILLs at random moments (crash/resume property)', async () => {
    await addPending('alice', 'T-2', 40);
    const seed = Number(process.env.SOR_CRASH_SEED ?? Date.now() % 1_000_000);
    const next = random(seed);
    const name = 'crash-worker';
    const kills: string[] = [];
    for (let kill = 0; kill < 30; kill += 1) {
      const info = kill === 0 ? await startWorker(sup, { name, tenant: 'alice', tools, pace_ms: 5 }) : await sup.restart(name);
      // A random moment: right after a random line of this start (a call in flight or between calls), plus jitter.
      const lines = 1 + Math.floor(next() * 10);
      let seen = 0;
      await sup
        .waitForLine(name, () => ++seen >= lines, { timeoutMs: 15_000 })
        .catch(() => undefined); // it may finish its run before: then it is simply started again
      await delay(Math.floor(next() * 15));
      const ended = await sup.kill(name);
      kills.push(`${info.pid}:${ended.signal ?? `exit ${ended.exitCode}`}`);
    }
    // Let it finish whatever run it was in, then nothing is left running.
    await sup.restart(name);
    const last = await sup.waitForExit(name);
    expect(last.exitCode, `seed ${seed}`).toBe(0);

    const context = `seed ${seed}, kills ${kills.join(' ')}`;
    expect(kills.filter((kill) => kill.endsWith('SIGKILL')).length, context).toBeGreaterThanOrEqual(25);
    expect(await query(`select id, status from runs where worker = $1 and status <> 'finished'`, [name]), context).toEqual([]);
    const { runs } = await one<{ runs: number }>(`select count(*)::int as runs from runs where worker = $1`, [name]);
    expect(runs, context).toBeGreaterThan(0);
    expect(
      await query(
        `select c.run_id, c.turn_no, c.call_no, count(*)::int as n
           from tool_calls c join turns t on t.id = c.turn_id
          where c.run_id in (select id from runs where worker = $1) and c.status = 'completed' and t.status = 'completed'
          group by 1, 2, 3 having count(*) > 1`,
        [name],
      ),
      context,
    ).toEqual([]);
    expect(
      await query(`select transaction_id, count(*)::int as n from expenses where transaction_id like 'T-2-%' group by 1 having count(*) > 1`),
      context,
    ).toEqual([]);
    expect(
      await query(`select subject, count(*)::int as n from outbox where subject like 'Expense recorded: T-2-%' group by 1 having count(*) > 1`),
      context,
    ).toEqual([]);
    // Every transaction this Worker claimed was written and processed: no claim was lost with a killed process.
    expect(
      await query(
        `select p.id, p.status from pending_transactions p
          where p.id like 'T-2-%' and p.claimed_by = $1
            and (p.status <> 'processed' or not exists (select 1 from expenses e where e.transaction_id = p.id))`,
        [name],
      ),
      context,
    ).toEqual([]);
  });

  it('a resumed run makes its first call at once, whatever its pace', async () => {
    const tenant = await ownTenant('unpaced', 3);
    await startWorker(sup, { name: 'unpaced', tenant, tools, pace_ms: 0, turns: 3, pauseAfter: '2.1' });
    const started = await sup.waitForEvent('unpaced', 'paused', { timeoutMs: 10_000 });
    await sup.kill('unpaced');
    // Restarted with a pace no test would wait out: the resumed call must come at once.
    await startWorker(sup, { name: 'unpaced', tenant, tools, pace_ms: 600_000, turns: 3 });
    const resumed = await sup.waitForEvent('unpaced', 'run_resumed', { timeoutMs: 10_000 });
    expect(resumed).toMatchObject({ run_id: started.run_id, from_turn: 2 });
    const first = await sup.waitForEvent('unpaced', 'call_started', { timeoutMs: 10_000 });
    expect(first).toMatchObject({ run_id: started.run_id, turn: 2, call: 2, tool: 'write' });
    await sup.waitForEvent('unpaced', 'call_completed', { timeoutMs: 10_000, match: (line) => line.call === 2 });
    await sup.kill('unpaced');
  });

  it('with resume off (the deliberate break) starts over and leaves the crashed run behind', async () => {
    await addPending('alice', 'T-3', 10);
    await startWorker(sup, { name: 'no-resume', tenant: 'alice', tools, pace_ms: 5 });
    const started = await sup.waitForEvent('no-resume', 'run_started', { timeoutMs: 10_000 });
    await sup.waitForEvent('no-resume', 'call_completed', { timeoutMs: 10_000, match: (line) => line.turn === 2 });
    await sup.kill('no-resume');
    await startWorker(sup, { name: 'no-resume', tenant: 'alice', tools, pace_ms: 5, resume: false });
    const second = await sup.waitForEvent('no-resume', 'run_started', { timeoutMs: 10_000 });
    expect(second.run_id).not.toBe(started.run_id);
    expect((await sup.waitForExit('no-resume')).exitCode).toBe(0);
    expect(await query(`select status from runs where id = $1`, [started.run_id])).toEqual([{ status: 'running' }]);
    expect(await query(`select status from runs where id = $1`, [second.run_id])).toEqual([{ status: 'finished' }]);
    expect(await query(`select min(turn_no) as first from tool_calls where run_id = $1`, [second.run_id])).toEqual([{ first: 1 }]);
  });
});

describe('two Workers racing for claims', () => {
  interface Claim {
    transaction_id: string;
    locked_at: string;
    released_at: string;
  }

  const claimOf = async (worker: string): Promise<Claim> => {
    const [row] = await query<{ result: Claim }>(
      `select c.result from tool_calls c join runs r on r.id = c.run_id
        where r.worker = $1 and c.tool = 'claim' and c.status = 'completed' order by c.id desc limit 1`,
      [worker],
    );
    return row!.result;
  };

  /** The journal's status of the Worker's latest claim call: 'started' while its row is held. */
  const claimStatus = async (worker: string) =>
    (
      await query<{ status: string }>(
        `select c.status from tool_calls c join runs r on r.id = c.run_id
          where r.worker = $1 and c.tool = 'claim' order by c.id desc limit 1`,
        [worker],
      )
    )[0]?.status ?? 'none';

  /** Whether the tool server has said the Worker's claim holds its row lock. */
  const locked = (server: ToolServer, worker: string) =>
    events(server.name).some((line) => line.event === 'claim_locked' && line.worker === worker);

  /**
   * A claims first and holds its row until released; B claims while A holds it. Returns
   * what the journal and Postgres showed once B had either locked a row of its own (and
   * holds it in turn) or begun to wait on a lock.
   */
  async function whileAHolds(server: ToolServer, tenant: string, a: string, b: string) {
    await startWorker(sup, { name: a, tenant, tools: server, pace_ms: 0, mode: 'claim-once' });
    await sup.waitForEvent(server.name, 'claim_locked', { timeoutMs: 10_000, match: (line) => line.worker === a });
    await startWorker(sup, { name: b, tenant, tools: server, pace_ms: 0, mode: 'claim-once' });
    return waitFor(
      'B to lock a row, or to wait on a lock',
      async () => {
        const waiting = await toolSessionsWaiting();
        const bLocked = locked(server, b);
        if (waiting === 0 && !bLocked) return undefined;
        return { aClaim: await claimStatus(a), bLocked, waitingOnALock: waiting };
      },
      { timeoutMs: 20_000 },
    );
  }

  const exits = async (a: string, b: string) => (await Promise.all([sup.waitForExit(a), sup.waitForExit(b)])).map((info) => info.exitCode);

  it('with SKIP LOCKED: B locks the next transaction at once, while A still holds its lock', async () => {
    const tenant = await ownTenant('race-skip', 2);
    const server = await startToolServer(sup, { databaseUrl: login.url, claimHoldMs: heldUntilReleased, processName: 'tools-race' });
    expect(await whileAHolds(server, tenant, 'race-a', 'race-b')).toEqual({ aClaim: 'started', bLocked: true, waitingOnALock: 0 });
    // Both hold a row at once: one release ends both holds.
    expect(await releaseHolds(sup, server.name)).toBe(2);
    expect(await exits('race-a', 'race-b')).toEqual([0, 0]);
    const [a, b] = [await claimOf('race-a'), await claimOf('race-b')];
    expect([a.transaction_id, b.transaction_id]).toEqual([`${tenant}-001`, `${tenant}-002`]);
    expect(Date.parse(b.locked_at)).toBeLessThan(Date.parse(a.released_at));
    await sup.stop(server.name);
  });

  it('without SKIP LOCKED (the deliberate break): B waits for the lock A holds and claims only after A released it', async () => {
    const tenant = await ownTenant('race-wait', 2);
    const server = await startToolServer(sup, {
      databaseUrl: login.url,
      claimHoldMs: heldUntilReleased,
      breaks: { noSkipLocked: true },
      processName: 'tools-race-broken',
    });
    expect(await whileAHolds(server, tenant, 'wait-a', 'wait-b')).toEqual({ aClaim: 'started', bLocked: false, waitingOnALock: 1 });
    expect(await releaseHolds(sup, server.name)).toBe(1);
    // B gets the lock once A commits, and then holds its own row in turn.
    await sup.waitForEvent(server.name, 'claim_locked', { timeoutMs: 10_000, match: (line) => line.worker === 'wait-b' });
    expect(await releaseHolds(sup, server.name)).toBe(1);
    expect(await exits('wait-a', 'wait-b')).toEqual([0, 0]);
    const [a, b] = [await claimOf('wait-a'), await claimOf('wait-b')];
    // A's row, claimed meanwhile, no longer matched B's query: B went on to the next one.
    expect([a.transaction_id, b.transaction_id]).toEqual([`${tenant}-001`, `${tenant}-002`]);
    expect(Date.parse(b.locked_at)).toBeGreaterThanOrEqual(Date.parse(a.released_at));
    await sup.stop(server.name);
  });
});
