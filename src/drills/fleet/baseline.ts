// The fleet drill's pgbench baseline: the SQL one reconciled pending transaction
// costs in the tool server, run by pgbench at the fleet's concurrency, so that the
// fleet's throughput divided by this one is the overhead of the tool server, MCP
// and the Worker (issue 17, item 4).
//
// Glossary
//   client   one pgbench client: one Worker of the baseline, with its own name
//            (<tag>-w<client_id>), its own worker lock key and its own runs.
//   turn     one pgbench transaction: claim -> write -> queue, each exactly as
//            tools.ts journaled() runs it on the reference schema (see the trace
//            below), ending the turn with the queue call as the Worker does.
//   run      <turnsPerRun> turns of one client (<tag>-c<client_id>-r<n>): the fleet's
//            Workers run SOR_TURNS (10) turns a run, so the baseline opens and
//            finishes runs as often as they do (run_started, the finish and its totals).
//
// What a call costs, as traced from the tool server on the reference schema
// (journaled() in src/reconciler/tools.ts, journal.ts, actions.ts):
//   pg_advisory_lock(worker key)
//   openCall: BEGIN; insert run ON CONFLICT DO NOTHING (+ run_started when new); select
//     the run; openTurn (select the turn; insert it when absent); insert the tool_calls
//     'started' row; COMMIT
//   BEGIN; set_config(app.tenant_id, tenant, true); SAVEPOINT action; the action's SQL;
//     RELEASE SAVEPOINT; completeCall (finishCall update, tool_called event; on ends_turn
//     endTurn, the count, turn_completed; on the run's last turn the run finished, its
//     totals, run_finished); COMMIT
//   pg_advisory_unlock(worker key)
// The script mirrors those statements one for one, tables and columns quoted as the
// tool server quotes them. It differs only where pgbench must: the JSON the tool server
// builds in JavaScript (arguments, result, detail) is built with jsonb_build_object;
// a row count the tool server reads from the driver is read with RETURNING or a CTE;
// constants the tool server binds ('running', 'completed', ...) are literals; and a
// bookkeeping select per client and per run makes the names pgbench cannot concatenate.
//
// The baseline works on its own tenants and rows (<tag>-t<k>, <tag>-T<k>-<n>), seeded
// through the admin URL, and checks from the database afterwards that it did the real
// work: every seeded row processed once, one expense and one outbox row each, the
// journal complete. Its rows stay: agent_events is append-only, by design.
import { access, constants as fsConstants, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { formatUrl, parseConnectionString } from '../../postgres/connection-string.js';
import { errorMessage } from '../../postgres/errors.js';
import { withPgClient } from '../../postgres/pg.js';
import { sql } from '../../postgres/sql.js';
import { maskSecrets, parseUrl } from '../../postgres/url.js';
import { baselineScript } from './baseline-script.js';

export { baselineScript, type ScriptOptions } from './baseline-script.js';

export interface BaselineInput {
  /** Logs in as the worker role, or as a login that may SET ROLE to it (what the tool server uses). */
  workerUrl: string;
  workerRole: string;
  /** Superuser/owner URL of the same database: seeds the baseline's own tenants and pending rows. */
  adminUrl: string;
  clients: number; // concurrency: the fleet's Worker count
  tenants: number; // the rows are spread over this many tenants of the baseline's own
  transactions: number; // pending rows seeded and claimed
  skipLocked: boolean; // false: plain FOR UPDATE (the fleet's --no-skip-locked side)
  tag: string; // unique prefix for the baseline's tenant ids, run ids and row ids, e.g. 'pgb-20261201t1830'
  /** Turns of each run (the fleet Worker's SOR_TURNS); 10 by default. */
  turnsPerRun?: number;
  /** The claim's lease (the tool server's SOR_LEASE_MS); 60 s by default. */
  leaseMs?: number;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface BaselineResult {
  tps: number; // pgbench's "tps = ... (without initial connection time)"
  transactions: number; // processed rows counted in the database after the run (must equal the seeded count)
  clients: number;
  seconds: number; // transactions / tps: pgbench's own measured time, connections excluded
  latency_avg_ms: number;
  command: string; // the pgbench command as shown to a user: no password
  script: string; // the script text
  pgbench: string; // pgbench --version line
}

/** pgbench is not installed: the message says how to install it (one line). */
export class BaselineUnavailable extends Error {
  override name = 'BaselineUnavailable';
}

/** Debian's package holding /usr/lib/postgresql/15/bin/pgbench (postgresql-client-common has only the wrapper). */
export const pgbenchPackage = 'postgresql-15';

const defaultTurnsPerRun = 10;
const defaultLeaseMs = 60_000;

/** How the baseline's rows are named: one place, used by the seed, the script's variables and the check. */
export function baselineNames(tag: string) {
  return {
    tenant: (k: number) => `${tag}-t${k}`,
    worker: (client: number) => `${tag}-w${client}`,
    /** Prefix of the baseline's run ids (starts_with: a LIKE pattern would read '_' in a tag as any character). */
    runs: `${tag}-c`,
    /** Prefix of the baseline's tenant ids. */
    tenants: `${tag}-t`,
  };
}

/** How many of the clients work for tenant k (client_id % tenants = k), so each tenant gets as many rows as its clients claim. */
export function clientsOfTenant(clients: number, tenants: number, k: number): number {
  return Math.floor(clients / tenants) + (k < clients % tenants ? 1 : 0);
}

function checkInput(input: BaselineInput): { perClient: number; turnsPerRun: number; leaseMs: number } {
  const { clients, tenants, transactions } = input;
  const whole = (value: number, name: string) => {
    if (!Number.isInteger(value) || value < 1) throw new Error(`baseline: ${name} must be a whole number from 1 (got ${value})`);
  };
  whole(clients, 'clients');
  whole(tenants, 'tenants');
  whole(transactions, 'transactions');
  if (tenants > clients) {
    throw new Error(
      `baseline: ${tenants} tenants need at least as many clients (got ${clients}): each tenant's rows are claimed by its own clients`,
    );
  }
  if (transactions % clients !== 0) {
    throw new Error(
      `baseline: ${transactions} transactions do not divide among ${clients} clients (pgbench -t is per client): use a multiple of ${clients}`,
    );
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(input.tag)) {
    throw new Error(`baseline: tag ${JSON.stringify(input.tag)} must be letters, digits, '-' or '_' (at most 63)`);
  }
  const turnsPerRun = input.turnsPerRun ?? defaultTurnsPerRun;
  whole(turnsPerRun, 'turnsPerRun');
  const leaseMs = input.leaseMs ?? defaultLeaseMs;
  whole(leaseMs, 'leaseMs');
  return { perClient: transactions / clients, turnsPerRun, leaseMs };
}

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `pgbench --version`'s line, or undefined when the file does not run (Debian's wrapper without a pgbench behind it). */
async function versionOf(file: string): Promise<string | undefined> {
  const result = await execa(file, ['--version'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    extendEnv: false,
    reject: false,
    timeout: 10_000,
  });
  const line = result.stdout.trim().split('\n')[0] ?? '';
  return result.exitCode === 0 && /pgbench/.test(line) ? line : undefined;
}

/** pgbench on PATH, else the newest <libRoot>/<n>/bin/pgbench (Debian's layout); throws BaselineUnavailable. */
export async function findPgbench(
  env: NodeJS.ProcessEnv = process.env,
  libRoot = '/usr/lib/postgresql',
): Promise<{ file: string; version: string }> {
  const candidates: string[] = [];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir) candidates.push(path.join(dir, 'pgbench'));
  }
  const versions = await readdir(libRoot).catch(() => [] as string[]);
  for (const version of versions.filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))) {
    candidates.push(path.join(libRoot, version, 'bin', 'pgbench'));
  }
  for (const file of candidates) {
    if (!(await executable(file))) continue;
    const version = await versionOf(file);
    if (version) return { file, version };
  }
  throw new BaselineUnavailable(
    `pgbench is not installed (not on PATH, not in ${libRoot}/*/bin): on Debian install it with ` +
      `\`apt-get install ${pgbenchPackage}\` (the package that holds /usr/lib/postgresql/15/bin/pgbench)`,
  );
}

/**
 * The baseline's tenants and pending rows, through the admin URL, in one transaction:
 * the tenant set for each tenant's rows, so that an owner under FORCE RLS can insert them too.
 */
async function seed(adminUrl: string, tag: string, clients: number, tenants: number, perClient: number): Promise<number> {
  const names = baselineNames(tag);
  return withPgClient(adminUrl, async (client) => {
    let seeded = 0;
    await client.query('begin');
    try {
      for (let k = 0; k < tenants; k += 1) {
        const tenant = names.tenant(k);
        const rows = clientsOfTenant(clients, tenants, k) * perClient;
        await client.query(sql`select set_config('app.tenant_id', ${tenant}::text, true)`);
        await client.query(sql`insert into public.tenants (id, name) values (${tenant}::text, ${`pgbench baseline ${tenant}`}::text)`);
        const inserted = await client.query(
          sql`insert into public.pending_transactions (id, tenant_id, amount_cents, description)
              select ${`${tenant}-T`}::text || lpad(i::text, 7, '0'), ${tenant}::text, 100 + (i * 37) % 90000,
                     'baseline row ' || i
                from generate_series(1, ${rows}::int) as i`,
        );
        seeded += inserted.rowCount ?? 0;
      }
      await client.query('commit');
      // Fresh statistics for the claim's scan, as the fleet takes after its own seed (same plan
      // on both sides). A URL that does not own the table gets a warning, not an error.
      await client.query('analyze public.pending_transactions');
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw new Error(`baseline: could not seed ${tag}'s tenants and rows through the admin URL: ${errorMessage(error)}`, { cause: error });
    }
    return seeded;
  });
}

interface Shortfall {
  what: string;
  count: number;
  examples: string[];
}

/**
 * What the database holds after the run, from the baseline's own rows alone: the
 * shortfalls (empty when every seeded row was processed once, with its expense and
 * outbox row, and the journal is what the tool server would have written).
 */
export async function checkBaseline(
  adminUrl: string,
  tag: string,
  expected: { transactions: number; runs: number },
): Promise<{ processed: number; shortfalls: Shortfall[] }> {
  const names = baselineNames(tag);
  return withPgClient(adminUrl, async (client) => {
    await client.query('begin');
    try {
      const { rows: tenantRows } = await client.query<{ id: string }>(
        sql`select id from public.tenants where starts_with(id, ${names.tenants}::text) order by id`,
      );
      const shortfalls: Shortfall[] = [];
      let processed = 0;
      const add = (what: string, rows: Array<{ id: string }>, count = rows.length) => {
        if (count > 0) shortfalls.push({ what, count, examples: rows.slice(0, 5).map((row) => row.id) });
      };
      const perRow: Record<string, Array<{ id: string }>> = { unprocessed: [], expenses: [], outbox: [] };
      for (const { id: tenant } of tenantRows) {
        // Row-level security: the tenant set, so an owner URL (FORCE RLS) sees the tenant's rows too.
        await client.query(sql`select set_config('app.tenant_id', ${tenant}::text, true)`);
        const { rows } = await client.query<{ id: string; status: string; expenses: number; outbox: number }>(
          sql`select p.id, p.status,
                     (select count(*)::int from public.expenses e where e.tenant_id = p.tenant_id and e.transaction_id = p.id) as expenses,
                     (select count(*)::int from public.outbox o
                       where o.dedup_key = 'expense-recorded:' || p.tenant_id || ':' || p.id) as outbox
                from public.pending_transactions p
               where p.tenant_id = ${tenant}::text
               order by p.id`,
        );
        for (const row of rows) {
          if (row.status === 'processed') processed += 1;
          else perRow.unprocessed!.push(row);
          if (row.expenses !== 1) perRow.expenses!.push({ id: `${row.id} (${row.expenses})` });
          if (row.outbox !== 1) perRow.outbox!.push({ id: `${row.id} (${row.outbox})` });
        }
      }
      add('pending rows not processed', perRow.unprocessed!);
      add('rows without exactly one expense (count in brackets)', perRow.expenses!);
      add('rows without exactly one outbox row (count in brackets)', perRow.outbox!);
      if (processed !== expected.transactions) {
        const what = `processed rows (${processed}) differ from the seeded count (${expected.transactions})`;
        shortfalls.push({ what, count: Math.abs(expected.transactions - processed), examples: [] });
      }
      const { rows: journal } = await client.query<{
        runs_finished: number;
        runs_other: number;
        turns_completed: number;
        calls_completed: number;
        calls_other: number;
        run_started: number;
        tool_called: number;
        turn_completed: number;
        run_finished: number;
      }>(
        sql`select
              (select count(*)::int from public.runs where starts_with(id, ${names.runs}::text) and status = 'finished') as runs_finished,
              (select count(*)::int from public.runs where starts_with(id, ${names.runs}::text) and status <> 'finished') as runs_other,
              (select count(*)::int from public.turns where starts_with(run_id, ${names.runs}::text) and status = 'completed') as turns_completed,
              (select count(*)::int from public.tool_calls where starts_with(run_id, ${names.runs}::text) and status = 'completed') as calls_completed,
              (select count(*)::int from public.tool_calls where starts_with(run_id, ${names.runs}::text) and status <> 'completed') as calls_other,
              (select count(*)::int from public.agent_events where starts_with(run_id, ${names.runs}::text) and event_type = 'run_started') as run_started,
              (select count(*)::int from public.agent_events where starts_with(run_id, ${names.runs}::text) and event_type = 'tool_called') as tool_called,
              (select count(*)::int from public.agent_events where starts_with(run_id, ${names.runs}::text) and event_type = 'turn_completed') as turn_completed,
              (select count(*)::int from public.agent_events where starts_with(run_id, ${names.runs}::text) and event_type = 'run_finished') as run_finished`,
      );
      const j = journal[0]!;
      const want = (what: string, got: number, expectedCount: number) => {
        if (got === expectedCount) return;
        shortfalls.push({ what: `${what}: ${got}, expected ${expectedCount}`, count: Math.abs(expectedCount - got), examples: [] });
      };
      want('finished runs', j.runs_finished, expected.runs);
      want('runs not finished', j.runs_other, 0);
      want('completed turns', j.turns_completed, expected.transactions);
      want('completed tool calls', j.calls_completed, 3 * expected.transactions);
      want('tool calls not completed', j.calls_other, 0);
      want('run_started events', j.run_started, expected.runs);
      want('tool_called events', j.tool_called, 3 * expected.transactions);
      want('turn_completed events', j.turn_completed, expected.transactions);
      want('run_finished events', j.run_finished, expected.runs);
      await client.query('commit');
      return { processed, shortfalls };
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    }
  });
}

/** pgbench's summary figures, from its stdout. */
export function parsePgbenchSummary(stdout: string): { tps: number; latencyAvgMs: number; processed: number; failed: number } | undefined {
  const tps = /^tps = ([\d.]+) \(without initial connection time\)/m.exec(stdout);
  const latency = /^latency average = ([\d.]+) ms/m.exec(stdout);
  const processed = /^number of transactions actually processed: (\d+)/m.exec(stdout);
  if (!tps || !latency || !processed) return undefined;
  const failed = /^number of failed transactions: (\d+)/m.exec(stdout);
  return { tps: Number(tps[1]), latencyAvgMs: Number(latency[1]), processed: Number(processed[1]), failed: failed ? Number(failed[1]) : 0 };
}

/** A value as a shell reads it back (for the command shown to a user). */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The connection pgbench is given: the worker URL canonical (PG* and .pgpass read here,
 * since pgbench inherits none of them), its password moved to PGPASSWORD, and the role
 * as a startup option (-c role=...: a member login acts as the worker role from its
 * first statement, as the tool server does after its SET ROLE).
 */
function pgbenchConnection(workerUrl: string, role: string): { uri: string; password: string } {
  const keywords = parseConnectionString(parseUrl(workerUrl).url);
  const password = keywords.password ?? '';
  delete keywords.password;
  const roleOption = `-c role=${role}`;
  keywords.options = keywords.options ? `${keywords.options} ${roleOption}` : roleOption;
  if (!keywords.application_name) keywords.application_name = 'sor-fleet-baseline';
  return { uri: formatUrl(keywords), password };
}

/** Runs the baseline: seeds its rows, runs pgbench over them, checks the database. Throws BaselineUnavailable without pgbench. */
export async function runBaseline(input: BaselineInput): Promise<BaselineResult> {
  const { perClient, turnsPerRun, leaseMs } = checkInput(input);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(input.workerRole)) {
    // A role name goes into a startup option, where libpq splits on spaces.
    throw new Error(`baseline: worker role ${JSON.stringify(input.workerRole)} must be a plain identifier`);
  }
  const progress = input.onProgress ?? (() => {});
  input.signal?.throwIfAborted();
  const pgbench = await findPgbench();
  const { uri, password } = pgbenchConnection(input.workerUrl, input.workerRole);
  const script = baselineScript({ skipLocked: input.skipLocked });
  const runsPerClient = Math.ceil(perClient / turnsPerRun);

  const seeded = await seed(input.adminUrl, input.tag, input.clients, input.tenants, perClient);
  if (seeded !== input.transactions) throw new Error(`baseline: seeded ${seeded} rows, expected ${input.transactions}`);
  progress(`baseline: seeded ${seeded} pending rows over ${input.tenants} tenant(s) (${input.tag}-t*)`);

  const dir = await mkdtemp(path.join(tmpdir(), 'sor-pgbench-'));
  try {
    const scriptFile = path.join(dir, 'turn.sql');
    await writeFile(scriptFile, script, { mode: 0o600 });
    const threads = Math.max(1, Math.min(input.clients, availableParallelism()));
    const variables: Record<string, string | number> = {
      tag: input.tag,
      tenants: input.tenants,
      per: turnsPerRun,
      t: perClient,
      lease_ms: leaseMs,
      k: 0,
    };
    const args = [
      '-n',
      // Unnamed extended protocol, as node-pg sends a parameterised query.
      '-M',
      'extended',
      '-c',
      String(input.clients),
      '-j',
      String(threads),
      '-t',
      String(perClient),
      '-P',
      '1',
      ...Object.entries(variables).flatMap(([name, value]) => ['-D', `${name}=${value}`]),
      '-f',
      scriptFile,
      uri,
    ];
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    if (password) env.PGPASSWORD = password;
    const command = ['pgbench', ...args.map((arg) => (arg === scriptFile ? 'turn.sql' : arg))].map(shellWord).join(' ');
    progress(`baseline: ${command}`);

    const child = execa(pgbench.file, args, {
      env,
      extendEnv: false,
      cwd: dir,
      detached: true,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: false,
    });
    // Killed as a process group: on abort, and on any way out of here while it runs.
    const killGroup = () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    input.signal?.addEventListener('abort', killGroup, { once: true });
    const stdout: string[] = [];
    const stderr: string[] = [];
    const readers = (['stdout', 'stderr'] as const).map(async (stream) => {
      const source = child[stream];
      if (!source) return;
      for await (const line of createInterface({ input: source, crlfDelay: Infinity })) {
        const clean = maskSecrets(line, password ? [password] : []);
        (stream === 'stdout' ? stdout : stderr).push(clean);
        if (stream === 'stderr' && clean.startsWith('progress:')) progress(`baseline ${clean}`);
      }
    });
    let result;
    try {
      result = await child;
      await Promise.all(readers);
    } finally {
      killGroup();
      input.signal?.removeEventListener('abort', killGroup);
    }
    input.signal?.throwIfAborted();
    const out = stdout.join('\n');
    const errors = stderr.filter((line) => !line.startsWith('progress:'));
    const summary = parsePgbenchSummary(out);
    if (result.exitCode !== 0 || !summary || summary.failed > 0 || summary.processed !== input.transactions) {
      const tail = errors.slice(-6).join(' | ') || out.split('\n').slice(-4).join(' | ');
      const hint = /too many clients|remaining connection slots/i.test(tail)
        ? ` (the server's max_connections leaves fewer than ${input.clients} connections for the worker login: raise it, or run fewer clients)`
        : '';
      throw new Error(
        `baseline: pgbench ${result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`}` +
          `${summary ? `, ${summary.processed}/${input.transactions} transactions, ${summary.failed} failed` : ''}: ${tail}${hint}`,
      );
    }

    const checked = await checkBaseline(input.adminUrl, input.tag, {
      transactions: input.transactions,
      runs: input.clients * runsPerClient,
    });
    if (checked.shortfalls.length > 0) {
      const listed = checked.shortfalls
        .map((s) => {
          if (s.examples.length === 0) return s.what;
          return `${s.what}: ${s.count} (${s.examples.join(', ')}${s.count > s.examples.length ? ', ...' : ''})`;
        })
        .join('; ');
      throw new Error(`baseline: pgbench finished but the database does not hold the work it should (${input.tag}): ${listed}`);
    }
    return {
      tps: summary.tps,
      transactions: checked.processed,
      clients: input.clients,
      seconds: summary.tps > 0 ? summary.processed / summary.tps : 0,
      latency_avg_ms: summary.latencyAvgMs,
      command,
      script,
      pgbench: pgbench.version,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
