// The fleet drill, small: 10 real Workers in 2 host processes through 2 real tool
// servers against this file's database, hosts SIGKILLed mid-run and resumed. The
// history check must pass on the reference claim and fail, naming the rows, on a
// claim that takes no row lock.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planFleet, type FleetOptions } from '../../src/drills/fleet/plan.js';
import { fleetJson, renderFleetReport } from '../../src/drills/fleet/report.js';
import { runFleet, type FleetRun } from '../../src/drills/fleet/run.js';
import { checkHistory } from '../../src/drills/fleet/history.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { defaultRoles } from '../../src/postgres/roles.js';
import { createWorkerLogin, type WorkerLogin } from '../../src/reconciler/launch.js';
import { isAlive } from '../../src/reconciler/supervisor.js';
import { readFile } from 'node:fs/promises';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
let login: WorkerLogin;
let logDir: string;
const started: number[] = [];

const small: FleetOptions = {
  workers: 10,
  transactions: 300,
  tenants: 2,
  kill: 2,
  skipLocked: true,
  claimWithoutLock: false,
  hosts: 2,
  toolServers: 2,
  poolSize: 4,
  turns: 10,
  seed: Number(process.env.SOR_FLEET_SEED ?? Date.now() % 1_000_000),
};

async function fleet(options: FleetOptions, tag: string): Promise<FleetRun> {
  const run = await runFleet({
    url: db.url,
    ownCluster: false,
    roles: defaultRoles,
    options,
    when: new Date(),
    tag,
    logDir,
    workerUrl: async () => login.url,
  });
  started.push(...run.pids);
  return run;
}

beforeAll(async () => {
  db = await createTestDatabase();
  login = await createWorkerLogin(db.url);
  logDir = await mkdtemp(path.join(tmpdir(), 'sor-fleet-'));
});

afterAll(async () => {
  try {
    expect(started.filter(isAlive)).toEqual([]);
    await login?.drop();
    await db?.dispose();
  } finally {
    if (logDir) await rm(logDir, { recursive: true, force: true });
  }
});

describe('the fleet drill', () => {
  it('plans Workers over hosts, tool servers and tenants, and kill moments in the middle of the run', () => {
    const plan = planFleet({ ...small, kill: 3, seed: 7 }, 'fleet-x');
    expect(plan.tenants).toEqual(['fleet-x-t01', 'fleet-x-t02']);
    expect(plan.perTenant).toEqual([150, 150]);
    expect(new Set(plan.workers.map((worker) => worker.name)).size).toBe(10);
    expect(plan.workers.filter((worker) => worker.host === 0)).toHaveLength(5);
    expect(plan.killAt).toHaveLength(3);
    expect(plan.killAt.every((at) => at >= 30 && at <= 270)).toBe(true);
    expect(planFleet({ ...small, kill: 3, seed: 7 }, 'fleet-x').killAt).toEqual(plan.killAt);
  });

  it(`10 Workers over 300 transactions with 2 hosts killed mid-run: every transaction processed exactly once (seed ${small.seed})`, async () => {
    const run = await fleet(small, 'fleet-ok');
    expect(run.kills).toHaveLength(2);
    expect(run.kills.every((kill) => kill.restartedPid !== undefined && kill.restartedPid !== kill.pid)).toBe(true);
    expect(run.history.violations).toEqual([]);
    expect(run).toMatchObject({ hostFailures: [], stalled: undefined });
    expect(run.history).toMatchObject({ ok: true, transactions: 300, processed: 300, duplicates: 0, lost: 0, lock_errors: 0 });
    // Checked again here with the test's own queries, not the drill's.
    const counts = await withPgClient(db.url, async (client) => {
      const { rows } = await client.query<{ pending: number; expenses: number; outbox: number; unfinished: number }>(
        `select (select count(*) from pending_transactions where tenant_id like 'fleet-ok-%' and status <> 'processed')::int as pending,
                (select count(distinct transaction_id) from expenses where tenant_id like 'fleet-ok-%')::int as expenses,
                (select count(*) from outbox where tenant_id like 'fleet-ok-%')::int as outbox,
                (select count(*) from runs where tenant_id like 'fleet-ok-%' and status <> 'finished')::int as unfinished`,
      );
      return rows[0];
    });
    expect(counts).toEqual({ pending: 0, expenses: 300, outbox: 300, unfinished: 0 });
    expect(run.boundary).toMatchObject({ credentials: [], urlValued: [] });

    const json = fleetJson({ main: run, target: 'test', when: new Date(), command: 'sor-drills fleet' });
    expect(Object.keys(json).slice(0, 10)).toEqual([
      'workers', 'transactions', 'processed', 'duplicates', 'lost', 'lock_errors', 'throughput_tps', 'p50_ms', 'p99_ms', 'backends_peak',
    ]);
    expect(json).toMatchObject({ workers: 10, transactions: 300, processed: 300, duplicates: 0, lost: 0, lock_errors: 0, ok: true });
    expect(json.throughput_tps as number).toBeGreaterThan(0);
    expect(json.backends_peak as number).toBeGreaterThan(0);
    const report = renderFleetReport({ main: run, target: 'test', when: new Date(), command: 'sor-drills fleet' });
    expect(report).toContain('# Fleet drill: 10 Workers over 300 transactions: PASS');
    expect(report).toContain('## What strained first');
    expect(report).toMatch(/^(Strained first: \*\*.+\*\*\.|Nothing crossed its line: .+)$/m);
    expect(report).toMatch(/- CPU: this machine's \d+ cores busy \d+(\.\d)?% of the run/);
    expect(report).toMatch(/2 Worker hosts SIGKILLed mid-run/);
    expect(run.activity.visible).toBe(true);
    // A login that cannot see other roles' wait events ranks nothing rather than report no waits.
    const blind = renderFleetReport({ main: { ...run, activity: { ...run.activity, visible: false } }, target: 'test', when: new Date(), command: 'sor-drills fleet' });
    expect(blind).toContain('Could not be determined: the login the fleet samples with is neither superuser nor a member of pg_read_all_stats');
    expect(blind).not.toContain('Strained first');
  }, 180_000);

  it('a transaction nobody processed is lost, and named', async () => {
    const history = await withPgClient(db.url, async (client) => {
      await client.query(`insert into tenants (id, name) values ('fleet-idle-t01', 'idle')`);
      await client.query(
        `insert into pending_transactions (id, tenant_id, amount_cents, description)
         select 'fleet-idle-t01-' || g, 'fleet-idle-t01', 100, 'never claimed' from generate_series(1, 3) g`,
      );
      return checkHistory(client, ['fleet-idle-t01'], 0);
    });
    // The verdict and the count first, each on its own: a toMatchObject failure reads as wording to the mutants runner.
    expect(history.ok).toBe(false);
    expect(history.lost).toBe(3);
    expect(history).toMatchObject({ ok: false, transactions: 3, processed: 0, lost: 3, duplicates: 0 });
    expect(history.violations[0]).toMatchObject({ count: 3, rows: expect.arrayContaining(['fleet-idle-t01-1 (pending, 0 expense, 0 outbox)']) });
  });

  it('with a claim that takes no row lock, the history check fails and names the transactions two Workers held at once', async () => {
    // One tenant: all ten Workers read the same next row.
    const run = await fleet({ ...small, transactions: 200, tenants: 1, kill: 0, claimWithoutLock: true }, 'fleet-broken');
    expect(run.history.ok).toBe(false);
    expect(run.history.duplicates).toBeGreaterThan(0);
    const held = run.history.violations.find((violation) => violation.what.startsWith('held by two Workers at once'));
    // Most double claims overlap; one whose second claim came after the first Worker's write shows
    // up instead as a second processing write (or a row left claimed): a duplicate all the same.
    expect(held?.count).toBeGreaterThan(0);
    expect(held!.count).toBeLessThanOrEqual(run.history.duplicates);
    expect(held?.rows[0]).toMatch(/^fleet-broken-t01-\d{5}: fleet-broken-w\d{3} and fleet-broken-w\d{3}$/);
    // The idempotency key still kept one expense per transaction: the journal shows the double claim.
    expect(run.history.violations.map((violation) => violation.what)).not.toContain('more than one expense');
    const report = renderFleetReport({ main: run, target: 'test', when: new Date(), command: 'sor-drills fleet --break-claim' });
    expect(report).toContain(': FAIL');
    expect(report).toContain('**VIOLATION** held by two Workers at once');
  }, 180_000);
});

describe('sor-drills fleet', () => {
  it('refuses what it cannot do in one line (exit 2) before touching any database', async () => {
    for (const [args, line] of [
      [['--profile', 'p.json'], "--profile: the fleet seeds and checks the reference schema's own tables"],
      [['--workers', '4', '--tenants', '8'], '--tenants must not exceed --workers (every tenant needs a Worker)'],
      [['--workers', 'many'], '--workers "many": expected a whole number of Workers'],
    ] as const) {
      const result = await runCli(['fleet', ...args]);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr).toContain(line);
      expect(result.stderr.split('\n')).toHaveLength(1);
    }
  });

  it('on a URL target with --yes: the JSON on stdout and in --out, the report beside it, no password in either', async () => {
    const out = path.join(logDir, 'cli', 'fleet.json');
    const result = await runCli(['fleet', '--db', db.url, '--yes', '--workers', '4', '--transactions', '40', '--tenants', '2', '--json', '--out', out], {
      cwd: logDir,
      env: { SOR_WORKER_URL: login.url },
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const json = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ workers: 4, transactions: 40, processed: 40, duplicates: 0, lost: 0, lock_errors: 0, ok: true });
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual(json);
    const report = await readFile(out.replace(/\.json$/, '.md'), 'utf8');
    expect(report).toContain('# Fleet drill: 4 Workers over 40 transactions: PASS');
    const password = new URL(db.url).password;
    expect(password.length).toBeGreaterThan(0);
    expect(report).not.toContain(password);
    expect(result.stderr).not.toContain(password);
    expect(result.stderr).toMatch(/fleet: history held: 40\/40 processed/);
    expect(result.stderr).toMatch(/^fleet: [\d.]+ tx\/s, claim p50 [\d.]+ ms \/ p99 [\d.]+ ms, \d+ backends at peak, 0 duplicates, 0 lost, 0 lock errors$/m);
    expect(result.stderr).toMatch(/^fleet: (Strained first: .+|Nothing crossed its line: .+)$/m);
  }, 120_000);
});
