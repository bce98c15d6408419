// The processes a session shares across drills, and the race's hold as an event,
// against real processes and a real Postgres:
//   - one tool server serves every drill that runs it unbroken; a drill that finds it
//     killed gets a fresh one; a drill with a break of the tool server gets its own,
//     and the next unbroken drill a fresh shared one; a drill that needs the target to
//     itself (the migration drill) has the shared one stopped first;
//   - the race's first claim is held until the second Worker's claim is seen: with B's
//     start held back, A keeps its row for as long as B is away, and lets go only once
//     B has locked its own;
//   - without SKIP LOCKED the race still fails, on the shared session's processes too;
//   - a drill's queries and rolled-back attempts share one connection of the drill's own,
//     which leaves no role or transaction behind, is replaced when it dies, and is closed
//     when the drill ends.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { runOne, useDrillTarget, type TestSystem } from '../helpers/drills.js';
import { scratchDir } from '../helpers/scratch.js';
import { idempotencyRetryTest } from '../../src/drills/idempotency-retry-test.js';
import { concurrencyClaimTest } from '../../src/drills/concurrency-claim-test/index.js';
import { rowLockHolders } from '../../src/drills/concurrency-claim-test/locks.js';
import { forensicsDrill } from '../../src/drills/forensics-drill/index.js';
import { createSession } from '../../src/drills/session.js';
import type { DrillSystem } from '../../src/drills/processes.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { humanRaceHoldMs } from '../../src/console/deps.js';
import { connect, withPgClient } from '../../src/postgres/pg.js';
import { attemptAs, query } from '../../src/drills/sql.js';
import { insertPending } from '../../src/drills/inputs.js';
import { referenceProfile } from '../../src/postgres/profile/reference.js';
import { resolveProfile } from '../../src/postgres/profile/index.js';
import { releaseHolds, startToolServer, startWorker } from '../../src/reconciler/launch.js';
import { Supervisor } from '../../src/reconciler/supervisor.js';
import { waitFor } from '../../src/util/wait.js';

let db: TestDatabase;
let system: TestSystem;
useDrillTarget((target) => ({ db, system } = target));

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

/** The tool server's process as the supervisor has it: its pid and how many times that name was started. */
function toolServer() {
  const info = system.supervisor().get('tool-server');
  return { pid: info?.pid, state: info?.state, starts: info?.starts ?? 0 };
}

describe('the shared tool server', () => {
  it('serves every drill that runs it unbroken: one process, one start', async () => {
    const first = await runOne(idempotencyRetryTest, db, { system });
    expect(first.verdict, first.reason).toBe('pass');
    const shared = toolServer();
    expect(shared.state).toBe('running');
    expect(system.sharedPid()).toBe(shared.pid);
    for (const drill of [concurrencyClaimTest, forensicsDrill, idempotencyRetryTest]) {
      const result = await runOne(drill, db, { system });
      expect(result.verdict, `${drill.key}: ${result.reason}`).toBe('pass');
      // The same process, never started again, still running for the next drill.
      expect(toolServer()).toEqual(shared);
    }
  });

  it('a drill that finds it killed gets a fresh one, and passes', async () => {
    const before = await system.sharedToolServer();
    const killed = toolServer();
    await system.kill('tool-server', 'SIGKILL');
    expect(system.sharedPid()).toBeUndefined();
    const result = await runOne(idempotencyRetryTest, db, { system });
    expect(result.verdict, result.reason).toBe('pass');
    const fresh = toolServer();
    expect(fresh.state).toBe('running');
    expect(fresh.pid).not.toBe(killed.pid);
    expect(fresh.starts).toBe(killed.starts + 1);
    expect(system.sharedPid()).toBe(fresh.pid);
    // A fresh process has a fresh token: the old address and token are not handed out again.
    expect((await system.sharedToolServer()).token).not.toBe(before.token);
  });

  it('a drill run with its break gets a tool server of its own, stopped when it ends; the next unbroken drill starts a shared one again', async () => {
    await system.sharedToolServer();
    const shared = toolServer();
    const events: RunnerEvent[] = [];
    const broken = await runOne(concurrencyClaimTest, db, { system, broken: true, events });
    // Without SKIP LOCKED, B waited on A's row lock: Postgres showed it, and the drill fails.
    expect(broken.verdict).toBe('fail');
    expect(Number(observed(events, 'lock_waits_seen'))).toBeGreaterThan(0);
    expect(broken.reason).toMatch(/B got its lock only after A released/);
    const own = toolServer();
    expect(own.pid).not.toBe(shared.pid);
    expect(own.state).not.toBe('running');
    expect(system.sharedPid()).toBeUndefined();
    const next = await runOne(concurrencyClaimTest, db, { system });
    expect(next.verdict, next.reason).toBe('pass');
    expect(toolServer().state).toBe('running');
    expect(system.sharedPid()).toBe(toolServer().pid);
  });

  it('a shared one still starting and a drill\u2019s own asked for meanwhile start one after the other, the own one last', async () => {
    await system.stopShared();
    const warming = system.sharedToolServer();
    const own = await system.toolServer({ breaks: { noIdempotencyKey: true } });
    const warmed = await warming;
    expect(warmed.token).not.toBe(own.token);
    const info = toolServer();
    expect(info.state).toBe('running');
    expect(system.supervisor().get('tool-server')?.recentLines.filter((line) => line.includes('"event":"listening"')).at(-1)).toContain('noIdempotencyKey');
    // The own one replaced the shared one: the next drill that wants the shared one starts it again.
    expect(system.sharedPid()).toBeUndefined();
    await system.stop('tool-server');
  });

  it('is stopped before a drill that needs the target to itself (the migration drill copies the database as a template), and started again once the copy is made', async () => {
    const evidenceRoot = path.join(scratchDir('evidence-'), 'oracle');
    const session = createSession({
      target: { kind: 'url', url: db.url, display: db.name, database: db.name, close: async () => {} },
      breaks: new Set(),
      options: { paceMs: 0, claimHoldMs: 0, evidenceRoot, branchName: `cap_shared_${db.name}` },
    });
    const operator = { request: async (_ask: unknown, perform: () => Promise<void>) => perform() };
    // This file's own shared tool server is connected to the same database: out of the way first.
    await system.stopShared();
    try {
      const idempotency = await session.runOne('idempotency_retry_test', false, operator, () => {});
      expect(idempotency.verdict, idempotency.reason).toBe('pass');
      const pid = session.processes.sharedPid();
      expect(pid).toBeDefined();
      // CREATE DATABASE ... TEMPLATE fails (55006) while any session is connected to the target:
      // the shared tool server's pool would be, had the session not stopped it first.
      const steps: Array<{ index: number; at: number }> = [];
      const migration = await session.runOne('migration_review', false, operator, (event) => {
        if (event.type === 'step-finished') steps.push({ index: event.index, at: Date.now() });
      });
      expect(migration.verdict, migration.reason).toBe('pass');
      expect(session.processes.list().find((process) => process.pid === pid)?.state).not.toBe('running');
      // Once the branch existed (the copy passed, so no session was in its way), a fresh shared
      // tool server was started for the drills after it, while the drill went on on its branch.
      const branchIndex = session.drills.find((drill) => drill.key === 'migration_review')!.steps.findIndex((step) => step.id === 'branch');
      const beforeBranch = steps.find((step) => step.index === branchIndex - 1)!.at;
      const fresh = await session.processes.sharedToolServer();
      const info = session.processes.supervisor().get(fresh.name)!;
      expect(info.pid).not.toBe(pid);
      expect(info.starts).toBe(2);
      expect(Date.parse(info.startedAt!)).toBeGreaterThanOrEqual(beforeBranch);
      expect(Date.parse(info.startedAt!)).toBeLessThan(steps.at(-1)!.at);
    } finally {
      await session.close();
    }
  });
});

/**
 * The system with Worker B's process start held back until `gate` resolves: B's claim,
 * which the drill lets go only once it has seen A hold its row and B wait, then comes
 * as late as the test says.
 */
function withBHeldBack(inner: DrillSystem, gate: () => Promise<void>): DrillSystem {
  const sup = inner.supervisor();
  const held = new Proxy(sup, {
    get(target, property, receiver) {
      if (property === 'start') {
        return async (spec: Parameters<Supervisor['start']>[0]) => {
          if (spec.name === 'worker-b') await gate();
          return target.start(spec);
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { ...inner, supervisor: () => held };
}

describe("the race's hold: A keeps its row until B's claim is seen", () => {
  it('with B held back longer than any fixed hold, A holds its row the whole time and lets go only after B locked its own', async () => {
    const observer = await connect(db.url);
    // Every look at A's row while B is away: whether a session of the tool server still held it.
    const looks: boolean[] = [];
    let bAllowedAt = 0;
    const aHolds = async () => (await observer.query(rowLockHolders, ['sor-tool-server', 'pending_transactions'])).rows.length > 0;
    const gate = async () => {
      // B's process may be asked for beside A's: first A's claim holds its row.
      await waitFor('A to hold its row', aHolds, { timeoutMs: 20_000, intervalMs: 20 });
      const since = Date.now();
      // Held back until A has kept its row longer than the console's visible hold (the longest
      // fixed hold the drills know), looking at pg_locks all along; A must hold at every look.
      await waitFor(
        `A to have held its row for more than ${humanRaceHoldMs} ms with B away`,
        async () => {
          looks.push(await aHolds());
          return Date.now() - since > humanRaceHoldMs && looks.length >= 10;
        },
        { timeoutMs: 20_000, intervalMs: 50 },
      );
      bAllowedAt = Date.now();
    };
    try {
      const events: RunnerEvent[] = [];
      const result = await runOne(concurrencyClaimTest, db, { system: withBHeldBack(system, gate), events });
      expect(result.verdict, result.reason).toBe('pass');
      expect(looks.length).toBeGreaterThanOrEqual(10);
      expect(looks.every(Boolean), JSON.stringify(looks)).toBe(true);
      // From the journal: A's claim committed only after B had locked its row, and A held its
      // lock at least as long as B was kept away (so not a fixed time; the headless options ask for none).
      const tenant = observed(events, 'tenant')!;
      const { rows } = await sql(
        `select r.worker, c.result ->> 'locked_at' as locked_at, c.result ->> 'released_at' as released_at
           from tool_calls c join turns t on t.id = c.turn_id join runs r on r.id = t.run_id
          where r.tenant_id = $1 and c.tool = 'claim' order by r.worker`,
        [tenant],
      );
      const [a, b] = rows as Array<{ worker: string; locked_at: string; released_at: string }>;
      expect([a!.worker, b!.worker]).toEqual(['worker-a', 'worker-b']);
      expect(Date.parse(a!.released_at)).toBeGreaterThanOrEqual(Date.parse(b!.locked_at));
      expect(Date.parse(a!.released_at) - Date.parse(a!.locked_at)).toBeGreaterThan(humanRaceHoldMs);
      expect(bAllowedAt).toBeGreaterThan(0);
    } finally {
      await observer.end();
    }
  });

  it("a Worker's claim hold is the bound it asked for: held until released, or until it elapses", async () => {
    const sup = new Supervisor({ logDir: scratchDir('processes-') });
    const tenant = `hold-${Math.random().toString(16).slice(2, 8)}`;
    await sql(`insert into tenants (id, name) values ($1, $1)`, [tenant]);
    await sql(
      `insert into pending_transactions (id, tenant_id, amount_cents, description, status)
       values ($2 || '-1', $1, 100, 'held', 'pending'), ($2 || '-2', $1, 200, 'elapsed', 'pending')`,
      [tenant, tenant],
    );
    try {
      // A server with no default hold, as the shared one: the hold is the Worker's own ask.
      const tools = await startToolServer(sup, { databaseUrl: await system.workerUrl(), processName: 'tools-hold' });
      await startWorker(sup, { name: 'held', tenant, tools, pace_ms: 0, mode: 'claim-once', claimHoldMs: 60_000 });
      await sup.waitForEvent(tools.name, 'claim_locked', { timeoutMs: 15_000, match: (line) => line.worker === 'held' });
      expect(sup.get('held')?.state).toBe('running');
      expect(await releaseHolds(sup, tools.name)).toBe(1);
      expect((await sup.waitForExit('held')).exitCode).toBe(0);
      // A hold nobody releases ends by itself at its bound: a stuck race never holds a row forever.
      await startWorker(sup, { name: 'elapsed', tenant, tools, pace_ms: 0, mode: 'claim-once', claimHoldMs: 300 });
      expect((await sup.waitForExit('elapsed')).exitCode).toBe(0);
      const { rows } = await sql(
        `select r.worker, (c.arguments ->> 'hold_ms')::int as hold_ms,
                extract(epoch from ((c.result ->> 'released_at')::timestamptz - (c.result ->> 'locked_at')::timestamptz)) * 1000 as held_ms
           from tool_calls c join turns t on t.id = c.turn_id join runs r on r.id = t.run_id
          where r.tenant_id = $1 order by r.worker desc`,
        [tenant],
      );
      expect(rows.map((row: { worker: string; hold_ms: number }) => [row.worker, row.hold_ms])).toEqual([
        ['held', 60_000],
        ['elapsed', 300],
      ]);
      expect(Number((rows[1] as { held_ms: number }).held_ms)).toBeGreaterThanOrEqual(300);
    } finally {
      await sup.close();
    }
  });
});

describe("a drill's own connection", () => {
  /** The backends of this database that the drills' helpers opened (application_name sor-drills), but the asker's. */
  const drillBackends = async () =>
    (
      await sql(
        `select pid from pg_stat_activity where datname = current_database() and application_name = 'sor-drills' and pid <> pg_backend_pid() order by pid`,
      )
    ).rows.map((row: { pid: number }) => row.pid);

  async function drillContext() {
    const profile = await withPgClient(db.url, (client) => resolveProfile(client, referenceProfile, 'reference', false));
    const cleanups: Array<() => Promise<void> | void> = [];
    const ctx = {
      url: db.url,
      profile,
      showSql: () => {},
      defer: (cleanup: () => Promise<void> | void) => void cleanups.push(cleanup),
    } as unknown as Parameters<typeof query>[0];
    const end = async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    };
    return { ctx, end };
  }

  it('serves every query and attempt of the drill, leaves no role or transaction behind, and is closed when the drill ends', async () => {
    const { ctx, end } = await drillContext();
    const before = await drillBackends();
    const pids = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const [row] = await query<{ pid: number; who: string; xact: boolean }>(
        ctx,
        `select pg_backend_pid() as pid, current_user as who, now() <> statement_timestamp() as xact`,
      );
      pids.add(row!.pid);
      expect(row).toMatchObject({ who: 'postgres', xact: false });
      // An attempt as the worker role, rolled back: the next query is the connecting role again.
      const attempt = await attemptAs(ctx, 'worker_write', `update agent_events set event_type = event_type where false`);
      expect(attempt.code).toBe('42501');
    }
    // Uses at once take turns on the one connection.
    const together = await Promise.all(
      Array.from({ length: 4 }, () => query<{ pid: number; who: string }>(ctx, `select pg_backend_pid() as pid, current_user as who`)),
    );
    for (const [row] of together) {
      pids.add(row!.pid);
      expect(row!.who).toBe('postgres');
    }
    // What sets the tenant setting goes over a connection of its own: once set, even locally, a
    // session reads '' where a fresh one reads NULL, and the drill's connection must read NULL.
    await attemptAs(ctx, 'worker_write', `select count(*) from expenses`, { tenant: 'alice' });
    await insertPending(ctx, 'alice', [{ amount_cents: 100, description: 'own connection' }]);
    const [setting] = await query<{ pid: number; value: string | null }>(
      ctx,
      `select pg_backend_pid() as pid, current_setting('app.tenant_id', true) as value`,
    );
    expect(setting).toEqual({ pid: [...pids][0], value: null });
    expect(pids.size).toBe(1);
    expect((await drillBackends()).filter((pid) => !before.includes(pid))).toEqual([...pids]);
    await end();
    await waitFor('the drill connection to close', async () => !(await drillBackends()).includes([...pids][0]!), { timeoutMs: 5_000 });
    // After the drill, a use gets a connection for itself alone.
    const [after] = await query<{ pid: number }>(ctx, 'select pg_backend_pid() as pid');
    expect(after!.pid).not.toBe([...pids][0]);
  });

  it('is replaced when its backend dies', async () => {
    const { ctx, end } = await drillContext();
    try {
      const [first] = await query<{ pid: number }>(ctx, 'select pg_backend_pid() as pid');
      await sql('select pg_terminate_backend($1)', [first!.pid]);
      await waitFor('the backend to be gone', async () => !(await drillBackends()).includes(first!.pid), { timeoutMs: 5_000 });
      // The first use after the kill may meet the dead connection and fail; the drill's next use opens another.
      const next = await query<{ pid: number }>(ctx, 'select pg_backend_pid() as pid').catch(() =>
        query<{ pid: number }>(ctx, 'select pg_backend_pid() as pid'),
      );
      expect(next[0]!.pid).not.toBe(first!.pid);
    } finally {
      await end();
    }
  });
});
