// `sor-drills fleet`: the drill beyond the nine. Many Workers at once against one
// database, the history they leave checked from the database alone, and what
// strained, in a JSON file and a markdown report beside it.
// Exit 0 the history held, 1 it did not (the report names the rows), 2 bad usage,
// 3 target unreachable.
import path from 'node:path';
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { integerFlag, roleNameFlag, targetString, writableFile } from './input-checks.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { exitCodes } from '../util/exit-codes.js';
import { UsageError } from '../postgres/url.js';
import { defaultRoles, type Roles } from '../postgres/roles.js';
import type { Target } from '../postgres/target.js';
import { fleetFiles, strainedFirstLine, writeFleetFiles } from '../drills/fleet/files.js';
import { summary } from '../drills/fleet/report.js';
import { defaultHosts, fleetDefaults, fleetTag, planProblems, type FleetOptions } from '../drills/fleet/plan.js';
import type { FleetEvent, FleetRun } from '../drills/fleet/run.js';
import type { FleetOutcome } from '../drills/fleet/report.js';

export const fleetFlags = {
  db: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  profile: { type: 'string' },
  workers: { type: 'string' },
  transactions: { type: 'string' },
  tenants: { type: 'string' },
  kill: { type: 'string' },
  'no-skip-locked': { type: 'boolean' },
  baseline: { type: 'boolean' },
  pooler: { type: 'boolean' },
  json: { type: 'boolean' },
  out: { type: 'string' },
  hosts: { type: 'string' },
  'tool-servers': { type: 'string' },
  pool: { type: 'string' },
  turns: { type: 'string' },
  seed: { type: 'string' },
  'break-claim': { type: 'boolean' },
  'worker-role': { type: 'string' },
} as const;

export const fleetUsage = `Usage: sor-drills fleet [--db URL] [--yes] [--workers N] [--transactions M] [--tenants T] [--kill K]
                        [--no-skip-locked] [--baseline] [--pooler] [--json] [--out FILE]

The drill beyond the nine: the capstone's third prompt (what changes when 100 Workers run in
parallel against the same database?) answered with rows and numbers. It seeds its own tenants and
pending transactions, runs the Workers through the reference tool server, checks from the database
that every transaction was processed exactly once, and reports what strained.

Flags
  --db URL            the target (default: DATABASE_URL, else a throwaway embedded PostgreSQL)
  -y, --yes           consent to writing the fleet's rows into a target that is not the embedded one
  --workers N         Workers, each with its own MCP session and runs (default ${fleetDefaults.workers})
  --transactions M    pending transactions to process (default ${fleetDefaults.transactions})
  --tenants T         tenants the transactions are spread over (default ${fleetDefaults.tenants})
  --kill K            SIGKILL K Worker processes at random moments mid-run and start them again (default 0)
  --no-skip-locked    also run the same load with plain FOR UPDATE claims, and compare
  --baseline          also run pgbench with the SQL the tool server runs per transaction, one client per
                      tool server connection (the fleet's concurrency as the database sees it): the
                      fleet's throughput as a ratio of it (needs pgbench)
  --pooler            also run the load through PgBouncer in transaction pooling mode, and show what
                      transaction pooling breaks (needs pgbouncer)
  --json              print the figures as JSON on stdout
  --out FILE          where to write the JSON (default: evidence/<tag>.json); the report goes beside it (.md)
  --hosts N           Node processes the Workers are spread over (default: 10 Workers each)
  --tool-servers N    tool server processes (default ${fleetDefaults.toolServers}); --pool N their connections each (default ${fleetDefaults.poolSize})
  --turns N           turns per Worker run (default ${fleetDefaults.turns})
  --seed N            seed of the kill moments (default: from the clock; the report prints it)
  --break-claim       the deliberate break: claims take no row lock, so the history check must fail
  --worker-role NAME  the role the tool servers act as (default ${defaultRoles.worker})
  --profile FILE      not supported by the fleet: it seeds and checks the reference schema's tables
${commonFlagsHelp()}

${environmentHelp(['DATABASE_URL', 'SOR_WORKER_URL', 'PG', 'TMPDIR'])}

Exit codes
  0 the history held   1 it did not (the report names the rows)   2 bad usage   3 target unreachable
  ${signalExitsHelp}`;

interface FleetInputFlags {
  db: string | undefined;
  yes: boolean;
  json: boolean;
  out: string | undefined;
  forUpdate: boolean;
  baseline: boolean;
  pooler: boolean;
  roles: Roles;
  options: FleetOptions;
}

export function checkFleetInput(values: Record<string, unknown>): FleetInputFlags {
  if (values.profile !== undefined) {
    throw new UsageError('--profile: the fleet seeds and checks the reference schema\'s own tables; run it on a database set up with sor-drills setup');
  }
  const count = (flag: string, fallback: number, max: number, unit: string) => integerFlag(`--${flag}`, values[flag], { fallback, min: 0, max, unit });
  const workers = count('workers', fleetDefaults.workers, 1_000, 'Workers');
  const options: FleetOptions = {
    workers,
    transactions: count('transactions', fleetDefaults.transactions, 1_000_000, 'transactions'),
    tenants: count('tenants', Math.min(fleetDefaults.tenants, workers), 1_000, 'tenants'),
    kill: count('kill', fleetDefaults.kill, 100, 'kills'),
    skipLocked: true,
    claimWithoutLock: Boolean(values['break-claim']),
    hosts: count('hosts', defaultHosts(workers), 100, 'processes'),
    toolServers: count('tool-servers', fleetDefaults.toolServers, 16, 'tool servers'),
    poolSize: count('pool', fleetDefaults.poolSize, 200, 'connections'),
    turns: count('turns', fleetDefaults.turns, 1_000, 'turns'),
    seed: count('seed', Date.now() % 1_000_000, 2 ** 31, 'seed'),
  };
  const problems = planProblems(options);
  if (problems.length > 0) throw new UsageError(problems[0]!);
  return {
    db: targetString(values.db),
    yes: Boolean(values.yes),
    json: Boolean(values.json),
    out: values.out === undefined ? undefined : writableFile('--out', String(values.out)),
    forUpdate: Boolean(values['no-skip-locked']),
    baseline: Boolean(values.baseline),
    pooler: Boolean(values.pooler),
    roles: { ...defaultRoles, worker: roleNameFlag('--worker-role', values['worker-role'], defaultRoles.worker) },
    options,
  };
}

/** The command as typed, its --db value replaced by the masked target (no password in a report). */
function shownCommand(argv: readonly string[], display: string): string {
  const words: string[] = ['sor-drills', 'fleet'];
  for (let index = 0; index < argv.length; index += 1) {
    const word = argv[index]!;
    if (word === '--db') {
      words.push('--db', display);
      index += 1;
    } else words.push(word.startsWith('--db=') ? `--db=${display}` : word);
  }
  return words.join(' ');
}

const write = (line: string) => process.stderr.write(`${line}\n`);
const shown = (file: string) => path.relative(process.cwd(), file) || file;

/** Progress on stderr: one line rewritten in place on a terminal, a line every 10% otherwise. */
function progress(label: string): (event: FleetEvent) => void {
  const tty = process.stderr.isTTY;
  let lastTenth = -1;
  let open = false;
  const end = () => {
    if (open) process.stderr.write('\n');
    open = false;
  };
  return (event) => {
    switch (event.type) {
      case 'phase':
        end();
        write(`${label}: ${event.message}`);
        break;
      case 'kill':
        end();
        write(`${label}: SIGKILL ${event.host} (pid ${event.pid ?? '?'}) at ${event.processed} processed`);
        break;
      case 'restart':
        write(`${label}: started ${event.host} again (pid ${event.pid ?? '?'}): its Workers resume from the journal`);
        break;
      case 'progress': {
        const text = `${label}: processed ${event.processed}/${event.total} · claimed ${event.claimed} · ${Math.round(event.tpsNow)} tx/s now · ${(event.elapsedMs / 1000).toFixed(1)} s`;
        if (tty) {
          process.stderr.write(`\r\x1b[2K${text}`);
          open = true;
        } else {
          const tenth = Math.floor((event.processed / Math.max(1, event.total)) * 10);
          if (tenth > lastTenth) {
            lastTenth = tenth;
            write(text);
          }
        }
        break;
      }
    }
  };
}

/** What a person at the terminal reads last: the figures beside each other and what strained first. */
function closingLines(outcome: FleetOutcome, report: string): string[] {
  const figures = (label: string, run: FleetRun) => {
    const s = summary(run);
    return `${label}: ${s.throughput_tps} tx/s, claim p50 ${s.p50_ms} ms / p99 ${s.p99_ms} ms, ${s.backends_peak} backends at peak, ${s.duplicates} duplicates, ${s.lost} lost, ${s.lock_errors} lock errors`;
  };
  const lines = [figures('fleet', outcome.main)];
  if (outcome.forUpdate) lines.push(figures('for update', outcome.forUpdate));
  if (outcome.pooled) lines.push('unavailable' in outcome.pooled ? `pooler: not run: ${outcome.pooled.unavailable}` : figures('pooler', outcome.pooled));
  if (outcome.baseline) {
    const fleetTps = summary(outcome.main).throughput_tps;
    lines.push(
      'unavailable' in outcome.baseline
        ? `baseline: not measured: ${outcome.baseline.unavailable}`
        : `baseline: pgbench ${Math.round(outcome.baseline.tps * 10) / 10} tx/s at ${outcome.baseline.clients} clients; the fleet ${fleetTps} tx/s, ${outcome.baseline.tps > 0 ? (fleetTps / outcome.baseline.tps).toFixed(2) : '?'}x it (goal 0.5x)`,
    );
  }
  const strained = strainedFirstLine(report);
  if (strained) lines.push(`fleet: ${strained}`);
  return lines;
}

async function readyTarget(input: FleetInputFlags): Promise<Target> {
  const { resolveTarget } = await import('../postgres/target.js');
  const { prepareTarget } = await import('../postgres/prepare.js');
  const target = await resolveTarget({ db: input.db, onProgress: write });
  try {
    const preparation = await prepareTarget(target, { consent: input.yes, onProgress: write });
    if (preparation.kind === 'needs-consent') throw new UsageError(`${preparation.why}; pass --yes to consent`);
    return target;
  } catch (error) {
    await target.close();
    throw error;
  }
}

export async function runFleetCommand(input: FleetInputFlags, argv: string[]): Promise<number> {
  const when = new Date();
  const tag = fleetTag(when);
  const files = fleetFiles(tag, { out: input.out ?? writableFile('--out', path.join('evidence', `${tag}.json`)) });
  const logDir = files.logDir;
  const { runFleet } = await import('../drills/fleet/run.js');
  const { fleetPassed } = await import('../drills/fleet/report.js');
  const target = await readyTarget(input);
  try {
    const base = { url: target.url, ownCluster: target.kind === 'embedded', roles: input.roles, when, logDir };
    const main = await runFleet({ ...base, options: input.options, tag, onEvent: progress('fleet') });
    const outcome: FleetOutcome = { main, target: target.display, when, command: shownCommand(argv, target.display) };
    write(`fleet: ${main.history.ok ? 'history held' : 'history DID NOT hold'}: ${main.history.processed}/${main.history.transactions} processed, ${main.history.duplicates} duplicates, ${main.history.lost} lost, ${main.history.lock_errors} lock errors`);
    // One worker login for the whole command: on the embedded cluster each new login would set
    // the worker role's password again, and the runs after this one would hold a stale one.
    const workerUrl = async () => main.workerUrl;
    // pgbench first, on the table as the fleet left it: each claim reads the rows before its own,
    // so a baseline run after the other runs' rows would meet a bigger table than the fleet did.
    if (input.baseline) outcome.baseline = await baseline(input, main, tag, target.url);
    if (input.forUpdate) {
      outcome.forUpdate = await runFleet({ ...base, workerUrl, options: { ...input.options, skipLocked: false }, tag: `${tag}-fu`, onEvent: progress('for update') });
    }
    if (input.pooler) Object.assign(outcome, await pooled(input, base, tag, main));
    const { json, report } = await writeFleetFiles(outcome, files);
    for (const line of closingLines(outcome, report)) write(line);
    write(`fleet: figures in ${shown(files.json)}, report in ${shown(files.report)}`);
    if (input.json) await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(json, null, 2)}\n`, () => resolve()));
    return fleetPassed(outcome) ? exitCodes.ok : exitCodes.blocked;
  } finally {
    await target.close();
  }
}

async function baseline(input: FleetInputFlags, main: FleetRun, tag: string, adminUrl: string): Promise<FleetOutcome['baseline']> {
  const { runBaseline, BaselineUnavailable } = await import('../drills/fleet/baseline.js');
  // The concurrency the database sees from the fleet: its tool servers' connections, however
  // many Workers share them (100 pgbench clients would be 100 backends, past the embedded
  // cluster's max_connections, and a different load). Transactions: a multiple of the clients.
  const clients = Math.min(input.options.toolServers * input.options.poolSize, input.options.transactions);
  const transactions = input.options.transactions - (input.options.transactions % clients);
  const tenants = Math.min(input.options.tenants, clients);
  write(`baseline: pgbench at ${clients} clients (the fleet's ${clients} database connections) over ${transactions} transactions`);
  try {
    return await runBaseline({
      workerUrl: main.workerUrl,
      workerRole: input.roles.worker,
      adminUrl,
      clients,
      tenants,
      transactions,
      skipLocked: true,
      tag: `${tag}-pgb`,
      onProgress: write,
    });
  } catch (error) {
    // The fleet's own figures are written whatever happened to pgbench.
    const { errorMessage } = await import('../postgres/errors.js');
    const why = error instanceof BaselineUnavailable ? error.message : `pgbench failed: ${errorMessage(error)}`;
    write(`baseline: not measured: ${why}`);
    return { unavailable: why };
  }
}

async function pooled(
  input: FleetInputFlags,
  base: { url: string; ownCluster: boolean; roles: Roles; when: Date; logDir: string },
  tag: string,
  main: FleetRun,
): Promise<Pick<FleetOutcome, 'pooled' | 'poolingChecks'>> {
  const { startPgBouncer, transactionPoolingChecks, PoolerUnavailable } = await import('../drills/fleet/pooler.js');
  const { runFleet } = await import('../drills/fleet/run.js');
  // PgBouncer's log goes beside the fleet's process logs (its config, with the password, lives in
  // a private temporary folder of its own, removed on stop).
  const workDir = (name: string) => path.join(base.logDir, `pgbouncer-${name}`);
  // The checks on a pooler of their own, a pool of 2, logged in as the target's own user (it may
  // SET ROLE to both roles); the fleet's through another, logged in as the Worker side.
  let checksPooler;
  try {
    checksPooler = await startPgBouncer({ serverUrl: base.url, poolSize: 2, workDir: workDir('checks') });
  } catch (error) {
    if (error instanceof PoolerUnavailable) {
      write(`pooler: not run: ${error.message}`);
      return { pooled: { unavailable: error.message } };
    }
    throw error;
  }
  let poolingChecks;
  try {
    write(`pooler: what transaction pooling breaks, through PgBouncer on port ${checksPooler.port}`);
    poolingChecks = await transactionPoolingChecks(checksPooler, { tenantSetting: 'app.tenant_id', workerRole: input.roles.worker, otherRole: input.roles.reader });
  } finally {
    await checksPooler.stop();
  }
  const pooler = await startPgBouncer({
    serverUrl: main.workerUrl,
    poolSize: input.options.toolServers * input.options.poolSize,
    workDir: workDir('fleet'),
    maxClientConn: 1_000,
  });
  try {
    write(`pooler: the same load through PgBouncer on port ${pooler.port} (transaction pooling)`);
    const run = await runFleet({
      ...base,
      workerUrl: async () => main.workerUrl,
      // One pooler connection per Worker, multiplexed by PgBouncer onto as many server
      // connections as the direct run had: the floor a pooler buys is fewer backends.
      options: { ...input.options, poolSize: Math.ceil(input.options.workers / input.options.toolServers) },
      tag: `${tag}-pb`,
      toolsVia: async () => ({ url: pooler.url, transactionPooling: true }),
      onEvent: progress('pooler'),
    });
    return { pooled: run, poolingChecks };
  } finally {
    await pooler.stop();
  }
}

export async function fleetCommand(args: string[]): Promise<number> {
  const { values } = parse(args, fleetFlags);
  if (values.help) {
    await printHelp(fleetUsage);
    return exitCodes.ok;
  }
  return runFleetCommand(checkFleetInput(values), args);
}
