// The Worker as a real process against the tool server and a real Postgres:
// its environment read from the OS, a 5-turn run killed mid-turn 3 and resumed,
// the crash/resume property under 30 random SIGKILLs, resume switched off (the
// deliberate break), and two Workers racing for claims with and without SKIP LOCKED.
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
  startToolServer,
  startWorker,
  type ToolServer,
  type WorkerLogin,
} from '../../src/reconciler/launch.js';
import { delay } from '../../src/util/wait.js';

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
    await addPending('bob', 'T-5', 2);
    const slow = await startToolServer(sup, { databaseUrl: login.url, claimHoldMs: 1_200, processName: 'tools-slow' });
    await startWorker(sup, { name: 'inflight', tenant: 'bob', tools: slow, pace_ms: 0, turns: 1 });
    const started = await sup.waitForEvent('inflight', 'run_started', { timeoutMs: 10_000 });
    await sup.waitForEvent(slow.name, 'claim_locked', { timeoutMs: 10_000, match: (line) => line.worker === 'inflight' });
    await sup.kill('inflight');
    // Restarted at once: its resume read waits on the Worker's lock until the claim commits.
    await sup.restart('inflight');
    const resumed = await sup.waitForEvent('inflight', 'run_resumed', { timeoutMs: 10_000 });
    expect(resumed).toMatchObject({ run_id: started.run_id, from_turn: 1, reused_calls: 1 });
    expect((await sup.waitForExit('inflight')).exitCode).toBe(0);
    expect(await query(`select tool, status from tool_calls where run_id = $1 order by id`, [started.run_id])).toEqual([
      { tool: 'claim', status: 'completed' },
      { tool: 'write', status: 'completed' },
      { tool: 'queue', status: 'completed' },
    ]);
    expect(await query(`select id, status from pending_transactions where id like 'T-5-%' order by id`)).toEqual([
      { id: 'T-5-001', status: 'processed' },
      { id: 'T-5-002', status: 'pending' },
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

  const race = async (server: ToolServer, a: string, b: string) => {
    await startWorker(sup, { name: a, tenant: 'bob', tools: server, pace_ms: 0, mode: 'claim-once' });
    await sup.waitForEvent(server.name, 'claim_locked', { timeoutMs: 10_000, match: (line) => line.worker === a });
    await startWorker(sup, { name: b, tenant: 'bob', tools: server, pace_ms: 0, mode: 'claim-once' });
    const [exitA, exitB] = await Promise.all([sup.waitForExit(a), sup.waitForExit(b)]);
    expect([exitA.exitCode, exitB.exitCode]).toEqual([0, 0]);
    return { a: await claimOf(a), b: await claimOf(b) };
  };

  it('with SKIP LOCKED: different transactions, and B claimed while A still held its lock', async () => {
    await addPending('bob', 'T-4', 4);
    const server = await startToolServer(sup, { databaseUrl: login.url, claimHoldMs: 3_000, processName: 'tools-race' });
    const { a, b } = await race(server, 'race-a', 'race-b');
    expect(a.transaction_id).toBe('T-4-001');
    expect(b.transaction_id).toBe('T-4-002');
    // Neither waited: B's lock was taken before A's was released. The hold is long
    // enough that B's process start, even on a loaded machine, lands inside it.
    expect(Date.parse(b.locked_at)).toBeLessThan(Date.parse(a.released_at));
    await sup.stop(server.name);
  });

  it('without SKIP LOCKED (the deliberate break): B waits for A', async () => {
    const server = await startToolServer(sup, {
      databaseUrl: login.url,
      claimHoldMs: 3_000,
      breaks: { noSkipLocked: true },
      processName: 'tools-race-broken',
    });
    const { a, b } = await race(server, 'wait-a', 'wait-b');
    expect(a.transaction_id).toBe('T-4-003');
    expect(Date.parse(b.locked_at)).toBeGreaterThanOrEqual(Date.parse(a.released_at));
    await sup.stop(server.name);
  });
});
