// The fleet drill: the capstone's third prompt ("what changes when 100 Workers run
// in parallel against the same database?") run for real. It seeds the fleet's own
// tenants and pending transactions, starts the tool servers and the Worker hosts,
// kills hosts at random moments and starts them again, samples the database while
// it works, and then checks the history the run left, from the database alone.
import { availableParallelism } from 'node:os';
import type pg from 'pg';
import { connect } from '../../postgres/pg.js';
import type { Roles } from '../../postgres/roles.js';
import { startFleetHost, startToolServer, type ToolServer } from '../../reconciler/launch.js';
import { readProcessEnvironment, type EnvironmentRead } from '../../reconciler/proc-env.js';
import type { Supervisor } from '../../reconciler/supervisor.js';
import { delay } from '../../util/wait.js';
import { createDrillSystem } from '../processes.js';
import { activityFigures, claimPlan, cpuTimes, deadlockCount, seesAllActivity, journalFigures, sample, tableFigures, type ActivityFigures, type ClaimPlan, type JournalFigures, type Sample, type TableFigures } from './figures.js';
import { checkHistory, type HistoryCheck } from './history.js';
import { planFleet, random, type FleetOptions, type FleetPlan } from './plan.js';

export type FleetEvent =
  | { type: 'phase'; message: string }
  | { type: 'progress'; processed: number; claimed: number; total: number; tpsNow: number; elapsedMs: number; kills: number }
  | { type: 'kill'; host: string; pid: number | undefined; processed: number }
  | { type: 'restart'; host: string; pid: number | undefined };

export interface FleetInput {
  /** The target's URL (its owner or a superuser): seeds the fleet's rows, samples and checks. */
  url: string;
  /** Whether the target is the embedded cluster sor-drills started (only there may the worker role's password be set). */
  ownCluster: boolean;
  roles: Roles;
  options: FleetOptions;
  when: Date;
  tag: string;
  /** Where the processes' logs go. */
  logDir: string;
  /** How the Worker side logs in, instead of the drills' rule (tests: a throwaway member of the worker role). */
  workerUrl?: () => Promise<string>;
  /** The tool servers connect through this URL instead of the worker login (the pooler); with transaction pooling on. */
  toolsVia?: (workerUrl: string) => Promise<{ url: string; transactionPooling: boolean }>;
  onEvent?: (event: FleetEvent) => void;
  signal?: AbortSignal;
}

export interface KillRecord {
  host: string;
  pid: number | undefined;
  /** Transactions processed when it was killed. */
  processed: number;
  restartedPid: number | undefined;
}

export interface FleetRun {
  plan: FleetPlan;
  options: FleetOptions;
  history: HistoryCheck;
  activity: ActivityFigures;
  journal: JournalFigures;
  tables: TableFigures;
  /** How the claim finds its row once the run is over (EXPLAIN ANALYZE). */
  claim: ClaimPlan;
  kills: KillRecord[];
  /** Wall clock from the first host started to the last one ended (s). */
  elapsed_s: number;
  /** This machine's CPU busy share over the run (all cores), where /proc/stat can be read. */
  cpu_busy_share: number | undefined;
  /** Cores of this machine (the Workers and tool servers ran here; the database too when it is local). */
  cores: number;
  /** One Worker host's environment, read from /proc while it ran: the boundary holds at scale too. */
  boundary: EnvironmentRead | { unreadable: string };
  /** Hosts that ended on their own with a non-zero code (a Worker's call failed or a server was unreachable). */
  hostFailures: string[];
  /** Set when the run stopped making progress and was ended. */
  stalled?: string;
  /** The worker login's URL the fleet used (for a baseline at the same privileges). */
  workerUrl: string;
  /** Every process the fleet started (all stopped when it returns). */
  pids: number[];
}

const sampleEveryMs = 100;
const progressEveryMs = 500;
/** No transaction processed for this long, with hosts still running: the run is ended as stalled. */
const stallMs = 60_000;

async function seed(client: pg.Client, plan: FleetPlan): Promise<void> {
  const missing = await client.query<{ name: string }>(
    `select name from unnest($1::text[]) name where to_regclass(name) is null`,
    [['tenants', 'pending_transactions', 'expenses', 'outbox', 'runs', 'turns', 'tool_calls', 'agent_events']],
  );
  if (missing.rows.length > 0) {
    throw new Error(
      `the target has no ${missing.rows.map((row) => row.name).join(', ')}: the fleet runs on the reference schema (sor-drills setup installs it)`,
    );
  }
  await client.query('begin');
  try {
    await client.query(`insert into tenants (id, name) select id, 'Fleet tenant ' || id from unnest($1::text[]) id`, [plan.tenants]);
    for (const [index, tenant] of plan.tenants.entries()) {
      await client.query(
        `insert into pending_transactions (id, tenant_id, amount_cents, description)
         select $1 || '-' || lpad(g::text, 5, '0'), $1, 100 + (g * 7919) % 99900, 'Fleet transaction ' || g
           from generate_series(1, $2::int) g`,
        [tenant, plan.perTenant[index]],
      );
    }
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
  // Fresh statistics for the claim's index scan over rows that did not exist a moment ago.
  await client.query('analyze pending_transactions');
}

function hostName(plan: FleetPlan, index: number): string {
  return `${plan.tag}-host${String(index + 1).padStart(2, '0')}`;
}

function running(sup: Supervisor, name: string): boolean {
  const state = sup.get(name)?.state;
  return state === 'running' || state === 'starting';
}

export async function runFleet(input: FleetInput): Promise<FleetRun> {
  const { options, tag } = input;
  const emit = input.onEvent ?? (() => {});
  const plan = planFleet(options, tag);
  const system = createDrillSystem({ url: input.url, roles: input.roles, logDir: input.logDir, ownCluster: input.ownCluster, workerUrl: input.workerUrl });
  const sup = system.supervisor();
  const watcher = await connect(input.url, { applicationName: 'sor-fleet-watch' });
  try {
    emit({ type: 'phase', message: `seeding ${options.transactions} pending transactions over ${options.tenants} tenants (${tag})` });
    await seed(watcher, plan);
    const deadlocksBefore = await deadlockCount(watcher);
    const visible = await seesAllActivity(watcher);

    const workerUrl = await system.workerUrl();
    const via = input.toolsVia ? await input.toolsVia(workerUrl) : { url: workerUrl, transactionPooling: false };
    emit({ type: 'phase', message: `starting ${options.toolServers} tool servers (${options.poolSize} connections each)` });
    const tools: ToolServer[] = await Promise.all(
      Array.from({ length: options.toolServers }, (_, index) =>
        startToolServer(sup, {
          databaseUrl: via.url,
          processName: `${tag}-tools${index + 1}`,
          role: input.roles.worker,
          poolMax: options.poolSize,
          breaks: { noSkipLocked: !options.skipLocked, claimWithoutLock: options.claimWithoutLock },
          transactionPooling: via.transactionPooling,
        }),
      ),
    );

    emit({ type: 'phase', message: `starting ${options.workers} Workers in ${options.hosts} processes` });
    const hosts = Array.from({ length: options.hosts }, (_, index) => hostName(plan, index));
    const started = Date.now();
    const cpuBefore = await cpuTimes();
    await Promise.all(
      hosts.map((name, index) =>
        startFleetHost(sup, {
          name,
          tools,
          workers: plan.workers.filter((worker) => worker.host === index).map(({ name: worker, tenant, tools: server }) => ({ name: worker, tenant, tools: server })),
          turns: options.turns,
          pace_ms: 0,
        }),
      ),
    );
    let boundary: FleetRun['boundary'];
    const firstPid = sup.get(hosts[0]!)?.pid;
    try {
      if (firstPid === undefined) throw new Error('the first Worker host has no pid');
      boundary = await readProcessEnvironment(firstPid);
    } catch (error) {
      boundary = { unreadable: error instanceof Error ? error.message : String(error) };
    }

    const samples: Sample[] = [];
    const kills: KillRecord[] = [];
    const pick = random(options.seed ^ 0x5eed);
    let lastProgress = 0;
    let lastProcessed = -1;
    let lastChange = Date.now();
    const recent: Array<{ at: number; processed: number }> = [];
    let stalled: string | undefined;
    while (hosts.some((name) => running(sup, name))) {
      if (input.signal?.aborted) throw input.signal.reason ?? new Error('the fleet was interrupted');
      const now = Date.now();
      const current = await sample(watcher, plan.tenants, now - started);
      samples.push(current);
      if (current.processed !== lastProcessed) {
        lastProcessed = current.processed;
        lastChange = now;
      } else if (now - lastChange > stallMs) {
        stalled = `no transaction processed for ${stallMs / 1000} s with ${hosts.filter((name) => running(sup, name)).length} Worker hosts still running: ended`;
        break;
      }
      recent.push({ at: now, processed: current.processed });
      while (recent.length > 1 && now - recent[0]!.at > 2_000) recent.shift();
      while (kills.length < plan.killAt.length && current.processed >= plan.killAt[kills.length]!) {
        const alive = hosts.filter((name) => sup.get(name)?.state === 'running');
        if (alive.length === 0) break;
        const host = alive[Math.floor(pick() * alive.length)]!;
        const pid = sup.get(host)?.pid;
        emit({ type: 'kill', host, pid, processed: current.processed });
        await sup.kill(host, 'SIGKILL');
        const again = await sup.restart(host);
        emit({ type: 'restart', host, pid: again.pid });
        kills.push({ host, pid, processed: current.processed, restartedPid: again.pid });
      }
      if (now - lastProgress >= progressEveryMs) {
        lastProgress = now;
        const first = recent[0]!;
        const tpsNow = now > first.at ? ((current.processed - first.processed) * 1000) / (now - first.at) : 0;
        emit({ type: 'progress', processed: current.processed, claimed: current.claimed, total: options.transactions, tpsNow, elapsedMs: now - started, kills: kills.length });
      }
      await delay(sampleEveryMs, input.signal);
    }
    const elapsed = (Date.now() - started) / 1000;
    const cpuAfter = await cpuTimes();
    const cpu = cpuBefore && cpuAfter && cpuAfter.total > cpuBefore.total ? (cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total) : undefined;
    const hostFailures = hosts.flatMap((name) => {
      const info = sup.get(name);
      return info && info.state === 'exited' && info.exitCode !== 0 ? [`${name} exited with code ${info.exitCode} (its log: ${info.logFile})`] : [];
    });
    await system.stopAll();

    emit({ type: 'phase', message: 'checking the history the fleet left, from the database' });
    const deadlocks = Math.max(0, (await deadlockCount(watcher)) - deadlocksBefore);
    const history = await checkHistory(watcher, plan.tenants, deadlocks);
    const journal = await journalFigures(watcher, plan.tenants);
    const tables = await tableFigures(watcher);
    const claim = await claimPlan(watcher, plan.tenants[0]!);
    return {
      plan,
      options,
      history,
      activity: activityFigures(samples, visible),
      journal,
      tables,
      claim,
      kills,
      elapsed_s: elapsed,
      cpu_busy_share: cpu,
      cores: availableParallelism(),
      boundary,
      hostFailures,
      stalled,
      workerUrl,
      pids: sup.startedPids(),
    };
  } finally {
    await system.stopAll().catch(() => {});
    await watcher.end().catch(() => {});
  }
}
