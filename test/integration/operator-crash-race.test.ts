// Drills 2 (run journal crash and resume) and 4 (SKIP LOCKED race) against the
// operator's own Worker side: examples/worker-side (its tool server, Worker and
// relay, written against fixtures/other-reconciler), started from its profile.json
// with this file's roles. Real PostgreSQL, real processes. Each drill passes naming
// the operator's processes and fails with the example's own bug switched on; the
// journal gate stops a Worker whose turns take milliseconds mid-turn 3, every time.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addedRows } from '../helpers/diff-rows.js';
import { runOne, testSystem, type TestSystem } from '../helpers/drills.js';
import { dropOtherRoles, exampleProfile, installOtherReconciler, otherRoles, resolveExample } from '../helpers/other-reconciler.js';
import { concurrencyClaimTest } from '../../src/drills/concurrency-claim-test/index.js';
import { type Journal, journalChanges, JournalGate, stopMidTurn, turnState, type MidTurnStop } from '../../src/drills/journal-gate.js';
import { sessionTag, startOperatorToolServer, startOperatorWorker, taggedUrl } from '../../src/drills/operator-side.js';
import { runJournalResumeDrill } from '../../src/drills/run-journal-resume-drill.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { withPgClient } from '../../src/postgres/pg.js';
import type { Profile, ProfileInUse } from '../../src/postgres/profile/index.js';
import { isAlive } from '../../src/reconciler/supervisor.js';

const roles = otherRoles();
let db: TestDatabase;
let system: TestSystem;
let example: Profile;
let profile: ProfileInUse;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await installOtherReconciler(db.url, roles);
  example = await exampleProfile(roles);
  profile = await resolveExample(db.url, example);
  system = await testSystem(db, example);
});

afterAll(async () => {
  const pids = system?.supervisor().startedPids() ?? [];
  await system?.dispose();
  await db?.dispose();
  if (db) await dropOtherRoles(db.adminUrl, roles);
  // Every process a drill or a try started (tool servers, Workers) has ended.
  expect(pids.filter(isAlive)).toEqual([]);
});

const sql = <T extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []) =>
  withPgClient(db.url, async (client) => (await client.query<T>(text, params)).rows);

function observed(events: RunnerEvent[], label: string): string | undefined {
  const found = events.filter((event) => event.type === 'observation' && event.label === label).at(-1);
  return found?.type === 'observation' ? found.value : undefined;
}

const theirWorker = "the operator's Worker `node worker.mjs`";
const theirToolServer = "the operator's tool server `node tool-server.mjs`";

describe("run_journal_resume_drill on the operator's Worker side", () => {
  it("passes: the example's Worker and tool server killed mid-turn 3 at the journal gate, the run resumed from turn 3 and completed", async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(runJournalResumeDrill, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(
      new RegExp(
        `^Run resumed from turn 3 of 5 by ${escape(theirWorker)}\\. Turns 1 and 2 were not re-executed; ` +
          `turn 3's completed call 1 \\(claim_transaction\\) not repeated\\. Journal shows continuous timeline after one crash`,
      ),
    );
    expect(result.evidence).toContain(`and ${theirToolServer} pid `);
    expect(result.evidence).toContain('killed by SIGKILL at turn 3 call 1 (claim_transaction, completed) while its next write to tool_calls waited at the journal gate');
    expect(observed(events, 'crash_signature')).toBe('status=running, finished_at=null');
    expect(observed(events, 'tool_server_killed_by')).toBe('SIGKILL');
    expect(JSON.parse(observed(events, 'landed_after_kill')!)).toEqual([]);
    const runId = observed(events, 'run_id')!;
    const [tenant] = await sql<{ user_id: string }>('select user_id::text from runs where id = $1', [runId]);
    // One run for the drill tenant, completed; each call of each turn journaled once.
    expect(await sql('select status, ended_at is not null as ended from runs where user_id = $1', [tenant!.user_id])).toEqual([
      { status: 'completed', ended: true },
    ]);
    expect(
      await sql(
        `select t.turn_index, c.seq, count(*)::int as n from tool_calls c join turns t on t.id = c.turn_id
          where t.run_id = $1 group by 1, 2 having count(*) > 1`,
        [runId],
      ),
    ).toEqual([]);
    expect(await sql(`select count(*)::int as n from expenses where user_id = $1`, [tenant!.user_id])).toEqual([{ n: 5 }]);
    // How long after the restart their Worker resumed, on the database's clock: the observed restart to
    // the first call their tool server journaled after it (turn 3's second call), read back here.
    const latency = /; resumed (\d+) ms after the restart\)\.$/.exec(result.evidence);
    expect(latency, result.evidence).not.toBeNull();
    const [first] = await sql<{ turn_index: number; seq: number; after_restart: number }>(
      `select t.turn_index, c.seq, round(extract(epoch from c.started_at - $2::timestamptz) * 1000)::int as after_restart
         from tool_calls c join turns t on t.id = c.turn_id
        where t.run_id = $1 and c.started_at >= $2::timestamptz order by c.started_at limit 1`,
      [runId, observed(events, 'restarted_at')],
    );
    expect(first).toMatchObject({ turn_index: 3, seq: 2 });
    expect(Number(latency![1])).toBeGreaterThanOrEqual(0);
    expect(Math.abs(Number(latency![1]) - first!.after_restart)).toBeLessThanOrEqual(1);
  });

  it("fails with the example's bug no-resume: the restarted Worker begins a new run and leaves the crashed one running", async () => {
    const broken = await resolveExample(db.url, await exampleProfile(roles, { bug: 'no-resume', in: 'worker' }));
    const result = await runOne(runJournalResumeDrill, db, { system, profile: broken });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/^the restarted Worker left crashed run \w{8} running and began a new run \w{8} \(completed\)/);
    expect(result.reason).toMatch(/run \w{8} ended running, not completed/);
  });
});

describe("concurrency_claim_test on the operator's Worker side", () => {
  it("passes: the example's Worker A claims first and B while A holds its row, through its tool server, each row done once, no lock waited for", async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(concurrencyClaimTest, db, { system, profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    const pending = JSON.parse(observed(events, 'pending')!) as string[];
    const match = new RegExp(
      `^Two runs of ${escape(theirWorker)} through ${escape(theirToolServer)}, A \\(worker-a\\) first and B \\(worker-b\\) once A held its row: ` +
        `A claimed ([0-9a-f-]{36}), B claimed ([0-9a-f-]{36}) while A's claim was open ` +
        `\\(the claims overlapped \\d+ ms; claim hold 2000 ms\\)\\. No duplicate processing: each of the 2 rows done once, one expenses row each\\. ` +
        `No lock errors raised \\(0 lock waits seen\\)\\.$`,
    ).exec(result.evidence);
    expect(match, result.evidence).not.toBeNull();
    const [, aTook, bTook] = match!;
    expect([aTook, bTook].sort()).toEqual([...pending].sort());
    expect(observed(events, 'lock_waits_seen')).toBe('0');
    // A started alone, and B only once Postgres showed a session of their tool server holding A's row.
    expect(observed(events, 'worker-a holds its row')).toMatch(
      new RegExp(`^yes: session pid \\d+ of ${escape(theirToolServer)} holds Row(Share|Exclusive)Lock on pending_transactions for its claim; worker-b starts now$`),
    );
    // One name per Worker: the row the evidence says A took has claimed_by worker-a, the process's name.
    expect(new Set(JSON.parse(observed(events, 'rows_after')!) as string[])).toEqual(
      new Set([`${aTook}: done by worker-a, 1 expenses`, `${bTook}: done by worker-b, 1 expenses`]),
    );
    const tenant = observed(events, 'tenant')!;
    expect(await sql('select worker_id, count(*)::int as n from runs where user_id = $1 group by worker_id order by worker_id', [tenant])).toEqual([
      { worker_id: 'worker-a', n: 1 },
      { worker_id: 'worker-b', n: 1 },
    ]);
    // The diff shows each row's natural key (external_ref) and who claimed it; the uuid id is a surrogate and stays volatile.
    const added = await addedRows(result.evidenceDirs[0]!);
    const rowsAdded = added.filter((row) => 'external_ref' in row);
    expect(rowsAdded.map((row) => row.claimed_by).sort()).toEqual(['worker-a', 'worker-b']);
    for (const row of rowsAdded) expect(row).not.toHaveProperty('id');
  });

  it("fails with the example's bug no-skip-locked: the second Worker's claim waits for the first one's row", async () => {
    const broken = await resolveExample(db.url, await exampleProfile(roles, { bug: 'no-skip-locked', in: 'tool_server' }));
    const result = await runOne(concurrencyClaimTest, db, { system, profile: broken });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(
      new RegExp(`^Postgres showed [1-9]\\d* sessions? of ${escape(theirToolServer)} waiting on a lock another of its sessions held during the race`),
    );
  });
});

/** A user of the other Reconciler with five pending transactions of its own. */
async function freshTenant(label: string): Promise<string> {
  const token = `${label}-${randomBytes(3).toString('hex')}`;
  const [user] = await sql<{ id: string }>(`insert into users (email, display_name) values ($1, $2) returning id::text as id`, [
    `${token}@sor-drills.invalid`,
    token,
  ]);
  await sql(
    `insert into pending_transactions (user_id, external_ref, amount, memo)
     select $1::uuid, $2 || '-' || n, 10 + n, 'Fast ' || n from generate_series(1, 5) as n`,
    [user!.id, token],
  );
  return user!.id;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\`]/g, '\\$&');
}

/**
 * A Worker side as fast as a journal can be written: one process (the tool server's
 * part and the Worker's in one), one tagged connection, every call two autocommit
 * statements in the contract's shape (the 'started' row, then its completion, which
 * also completes the turn on its last call). It does no actions: the gate watches
 * tool_calls, and that is all this stand-in writes besides its run and turns.
 */
const fastWorkerSide = `
import { randomUUID } from 'node:crypto';
import pg from 'pg';
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
client.on('error', () => {});
await client.connect();
const user = process.env.USER_ID;
const run = randomUUID();
await client.query("insert into runs (id, user_id, worker_id, status) values ($1, $2, $3, 'running')", [run, user, process.env.WORKER_ID]);
const turns = Number(process.env.TURNS);
const tools = ['claim_transaction', 'record_expense', 'queue_email'];
for (let turn = 1; turn <= turns; turn += 1) {
  for (let call = 1; call <= 3; call += 1) {
    const { rows } = await client.query(
      \`with opened as (insert into turns (run_id, turn_index, status) values ($1, $2, 'running')
                          on conflict (run_id, turn_index) do nothing returning id),
            turn as (select id from opened union all select id from turns where run_id = $1 and turn_index = $2)
       insert into tool_calls (turn_id, seq, tool_name, input, status)
       select (select id from turn limit 1), $3, $4, '{}'::jsonb, 'started'
       returning id, turn_id\`,
      [run, turn, call, tools[call - 1]],
    );
    await client.query(
      \`with done as (update tool_calls set status = 'completed', output = '{}'::jsonb, ended_at = clock_timestamp() where id = $1)
       update turns set status = 'completed', ended_at = clock_timestamp() where id = $2 and $3::boolean\`,
      [rows[0].id, rows[0].turn_id, call === 3],
    );
  }
}
await client.query("update runs set status = 'completed', ended_at = clock_timestamp() where id = $1", [run]);
await client.end();
`;

describe('the journal gate against a fast Worker', () => {
  it('A Worker that finishes a turn in under 10 ms is still killed mid-turn 3 (30 tries, 30 mid-turn kills)', async () => {
    const sup = system.supervisor();
    const side = 'fast-side';
    const start = async (tenant: string) =>
      sup.start({
        name: side,
        args: ['--input-type=module', '-e', fastWorkerSide],
        cwd: process.cwd(),
        env: { DATABASE_URL: taggedUrl(db.url, side), USER_ID: tenant, WORKER_ID: `fast-${randomBytes(3).toString('hex')}`, TURNS: '5' },
      });

    // Ungated: its turns, as the journal times them.
    const timed = await freshTenant('timed');
    await start(timed);
    expect((await sup.waitForExit(side)).exitCode).toBe(0);
    const durations = await sql<{ turn_index: number; ms: number }>(
      `select t.turn_index, extract(epoch from t.ended_at - t.started_at)::float8 * 1000 as ms
         from turns t join runs r on r.id = t.run_id where r.user_id = $1 and t.status = 'completed' order by 1`,
      [timed],
    );
    expect(durations.map((row) => row.turn_index)).toEqual([1, 2, 3, 4, 5]);
    const shown = durations.map((row) => `${row.ms.toFixed(1)} ms`).join(', ');
    // Turns of a few ms (3 to 7 on an idle machine); a loaded CI runner may slow some, so the
    // fastest is what shows this side is faster than any poll could catch.
    expect(Math.min(...durations.map((row) => row.ms)), `turns took ${shown}`).toBeLessThan(10);

    const stops: MidTurnStop[] = [];
    for (let attempt = 1; attempt <= 30; attempt += 1) {
      const tenant = await freshTenant(`fast-${attempt}`);
      const gate = await JournalGate.take({ url: db.url, names: profile.names, tenant, sessionTag: sessionTag(side) });
      try {
        await start(tenant);
        const stop = await stopMidTurn(gate, {
          sup,
          worker: side,
          toolServer: side,
          turn: 3,
          timeoutMs: 20_000,
          ended: () => (sup.get(side)?.state === 'exited' ? `${side} exited` : undefined),
        });
        stops.push(stop);
      } finally {
        await gate.close();
        await system.stop(side);
      }
    }
    const midTurn = stops.filter((stop) => {
      const journal = stop.after.journal;
      const run = journal.runs.find((entry) => entry.id === stop.frozen.run);
      const turns = journal.turns.filter((turn) => turn.run === stop.frozen.run);
      const third = turns.find((turn) => turn.number === 3);
      return (
        stop.worker.signal === 'SIGKILL' &&
        stop.after.landed.length === 0 &&
        // One write through per pass: six calls of two writes each, then turn 3's claim started and completed.
        stop.frozen.passes === 14 &&
        stop.frozen.point === 'turn 3 call 1 (claim_transaction, completed)' &&
        run?.status === 'running' &&
        turns.filter((turn) => turn.status === 'completed').map((turn) => turn.number).join() === '1,2' &&
        third?.status === 'running' &&
        journal.calls.some((call) => call.run === stop.frozen.run && call.turn === 3 && call.status === 'completed')
      );
    });
    expect(midTurn).toHaveLength(30);
  }, 60_000);
});

describe("the journal gate against the example's Worker side", () => {
  it("stops the example's Worker with no pace mid-turn 3 every time, its tool server's write in flight cancelled (10 tries)", async () => {
    const sup = system.supervisor();
    const databaseUrl = await system.workerUrl();
    const points: string[] = [];
    for (let attempt = 1; attempt <= 10; attempt += 1) {
      const tenant = await freshTenant(`example-${attempt}`);
      const gate = await JournalGate.take({ url: db.url, names: profile.names, tenant, sessionTag: sessionTag('tool-server') });
      try {
        const tools = await startOperatorToolServer(sup, profile, { databaseUrl, processName: 'tool-server' });
        await startOperatorWorker(sup, profile, { name: `example-${attempt}-${randomBytes(3).toString('hex')}`, processName: 'worker', tenant, tools, turns: 5 });
        const stop = await stopMidTurn(gate, {
          sup,
          worker: 'worker',
          toolServer: 'tool-server',
          turn: 3,
          timeoutMs: 20_000,
          ended: () => (['worker', 'tool-server'].some((name) => sup.get(name)?.state === 'exited') ? 'a process exited' : undefined),
        });
        const third = stop.after.journal.turns.find((turn) => turn.run === stop.frozen.run && turn.number === 3);
        expect(stop.worker.signal).toBe('SIGKILL');
        expect(stop.toolServer.signal).toBe('SIGKILL');
        expect(stop.after.landed).toEqual([]);
        expect(stop.after.leftover).toEqual([]);
        expect(stop.after.canceled).toHaveLength(1);
        expect(third?.status).toBe('running');
        points.push(stop.frozen.point);
      } finally {
        await gate.close();
        await system.stop('worker');
        await system.stop('tool-server');
      }
    }
    // Its claim of turn 3 done, its record_expense not yet journaled: the same point every time.
    expect(new Set(points)).toEqual(new Set(['turn 3 call 1 (claim_transaction, completed)']));
  }, 60_000);
});

describe('the journal gate reads the journal', () => {
  const journal = (calls: Array<[number, number, string]>, turn3 = 'running'): Journal => ({
    runs: [{ id: 'r1', status: 'running', worker: 'w' }],
    turns: [
      { run: 'r1', number: 1, status: 'completed' },
      { run: 'r1', number: 2, status: 'completed' },
      ...(calls.some(([turn]) => turn === 3) ? [{ run: 'r1', number: 3, status: turn3 }] : []),
    ],
    calls: calls.map(([turn, number, status], index) => ({ id: `c${index}`, run: 'r1', turn, number, tool: `tool${number}`, status })),
  });

  it('freezes only once a call of the turn has completed and the turn has not', () => {
    const n = profile.names;
    expect(turnState(journal([[2, 3, 'completed']]), n, 3).kind).toBe('before');
    expect(turnState(journal([[3, 1, 'started']]), n, 3).kind).toBe('before');
    expect(turnState(journal([[3, 1, 'completed']]), n, 3)).toMatchObject({ kind: 'mid', run: 'r1', last: { turn: 3, number: 1 } });
    expect(turnState(journal([[3, 1, 'completed'], [3, 2, 'started']]), n, 3)).toMatchObject({ kind: 'mid', last: { number: 2, status: 'started' } });
    expect(turnState(journal([[3, 1, 'completed'], [3, 2, 'completed'], [3, 3, 'completed']], 'completed'), n, 3).kind).toBe('past');
  });

  it('names every change between the freeze and after the kill', () => {
    const frozen = journal([[3, 1, 'completed'], [3, 2, 'started']]);
    expect(journalChanges(frozen, frozen)).toEqual([]);
    const landed = journal([[3, 1, 'completed'], [3, 2, 'completed'], [3, 3, 'started']]);
    expect(journalChanges(frozen, landed)).toEqual(['turn 3 call 2 (tool2) went started -> completed', 'turn 3 call 3 (tool3, started) appeared']);
  });
});
