// The launcher the drills call: typed functions that start the Reconciler's
// processes through a Supervisor and hand back what the drills need.
//
// Contracts (the drills rely on them; keep them exact):
//   workerLogin(adminUrl, roles, options)  -> { url, via }  how the tool server and relay log in
//   workerCredentials(adminUrl, roles, o)  -> workerLogin's url
//   checkActAs(url, role)                  -> whether that login may SET ROLE to the worker role
//   startToolServer(sup, options)          -> { name, url, token }   MCP over Streamable HTTP
//   startWorker(sup, options)              -> ProcessInfo            the MCP client Worker
//   startRelay(sup, options)               -> ProcessInfo            the outbox relay
//   startEmailService(sup, options?)       -> EmailService            { url, failNext, report }
//   releaseHolds(sup, name)                -> number                  claim holds ended early (SIGUSR2)
//   goWorker(sup, name)                    -> void                    a Worker started waitForGo makes its calls
// Child processes run the COMPILED scripts (dist/bundle/*.js, else dist/reconciler/*.js),
// never a TS loader: scriptPath() finds them from dist/ and from the TypeScript sources.
import { randomBytes } from 'node:crypto';
import { formatBreaks, type ToolBreaks } from './breaks.js';
import type { EmailReport, FailMode } from './email-report.js';
import { allowListEnv } from './env.js';
import { type Profile, profileEnv } from '../postgres/profile/index.js';
import { parseJsonLine } from './json-lines.js';
import { scriptPath } from './script-path.js';
import type { ProcessInfo, Supervisor } from './supervisor.js';
import type { WorkerMode } from './worker-plan.js';
import { freePort } from '../postgres/embedded.js';
import { ident, literal, sqlState, withPgClient } from '../postgres/pg.js';
import { defaultRoles, type Roles } from '../postgres/roles.js';
import { parseUrl, withCredentials } from '../postgres/url.js';

export type { ToolBreaks } from './actions.js';
export type { EmailReport, FailMode } from './email-report.js';
export type { WorkerMode } from './worker-plan.js';

export { pickScript, scriptPath, type ReconcilerScript } from './script-path.js';

const startTimeoutMs = 15_000;

async function waitListening(sup: Supervisor, name: string): Promise<{ url: string; port: number }> {
  const line = await sup.waitForEvent(name, 'listening', { timeoutMs: startTimeoutMs });
  return { url: String(line.url), port: Number(line.port) };
}

/**
 * How the Worker side's login was obtained: `given` is SOR_WORKER_URL, `rotated` a
 * fresh password set on the worker role of our own embedded cluster, `set-role` the
 * connecting role's own URL (the servers then SET ROLE to the worker role).
 */
export type WorkerLoginSource = 'given' | 'rotated' | 'set-role';

export interface WorkerLoginOptions {
  /**
   * True only for the embedded cluster sor-drills started and removes: there alone may
   * the worker role's password be set. False (the default) for any server the operator
   * owns, where changing a role's password would lock out their own application.
   */
  ownCluster?: boolean;
}

/**
 * The URL the tool server and relay connect with. SOR_WORKER_URL (a URL or
 * keyword/value string) wins everywhere: it is returned as a canonical URL, its
 * gaps filled from PG* variables and ~/.pgpass as for --db, because the tool
 * server's environment holds none of them. Otherwise, on our own embedded cluster
 * a fresh random password is set on the worker role (ALTER ROLE ... PASSWORD, never
 * logged; nothing else about the role changes); on any other server nothing is
 * changed and the connecting role's URL is used as it is: the servers SET ROLE to
 * the worker role on each connection (db.ts), so check that with checkActAs first.
 *
 * Rotating the password is cluster-wide: servers already running keep their
 * connections (they open them all at start), but two callers racing on one
 * cluster (parallel test files) can break each other's startup. Tests use
 * createWorkerLogin() instead.
 */
export async function workerLogin(
  adminUrl: string,
  roles: Roles = defaultRoles,
  options: WorkerLoginOptions = {},
): Promise<{ url: string; via: WorkerLoginSource }> {
  const given = process.env.SOR_WORKER_URL;
  if (given) return { url: parseUrl(given).url, via: 'given' };
  if (!options.ownCluster) return { url: adminUrl, via: 'set-role' };
  const password = randomBytes(24).toString('base64url');
  await withPgClient(adminUrl, (client) => client.query(`alter role ${ident(roles.worker)} password ${literal(password)}`));
  return { url: withCredentials(adminUrl, roles.worker, password), via: 'rotated' };
}

/** workerLogin's URL alone. */
export async function workerCredentials(
  adminUrl: string,
  roles: Roles = defaultRoles,
  options: WorkerLoginOptions = {},
): Promise<string> {
  return (await workerLogin(adminUrl, roles, options)).url;
}

/** Whether a login may act as a role; when not, what is missing. */
export type ActAsCheck =
  | { ok: true; login: string }
  | { ok: false; login: string; missing: 'role' | 'membership' };

/**
 * Whether the URL's login may act as `role`, found out the way the servers do it:
 * SET ROLE, inside a transaction that is rolled back, so nothing is left behind.
 * Trying it rather than reading pg_has_role(..., 'MEMBER') also honours a grant
 * made WITH SET FALSE (PostgreSQL 16+), which is membership without SET ROLE.
 */
export async function checkActAs(url: string, role: string): Promise<ActAsCheck> {
  return withPgClient(url, async (client) => {
    const { rows } = await client.query<{ login: string; exists: boolean }>(
      `select current_user as login, exists (select from pg_roles where rolname = $1) as exists`,
      [role],
    );
    const login = rows[0]?.login ?? '?';
    if (!rows[0]?.exists) return { ok: false, login, missing: 'role' };
    await client.query('begin');
    try {
      await client.query(`set local role ${ident(role)}`);
      return { ok: true, login };
    } catch (error) {
      if (sqlState(error) === '42501') return { ok: false, login, missing: 'membership' };
      throw error;
    } finally {
      await client.query('rollback').catch(() => {});
    }
  });
}

export interface WorkerLogin {
  /** Logs in as `login`, a member of the worker role; the servers `set role` to the worker role. */
  url: string;
  login: string;
  /** Drops the login role (stop every process using it first). */
  drop(): Promise<void>;
}

/**
 * A throwaway LOGIN role that is a member of the worker role, for tests running
 * in parallel on one cluster: no shared password is rotated under another test's
 * feet, and the tool server and relay still act as the worker role (set role).
 */
export async function createWorkerLogin(
  databaseUrl: string,
  roles: Roles = defaultRoles,
  login = `sor_test_${randomBytes(4).toString('hex')}`,
): Promise<WorkerLogin> {
  // databaseUrl: a superuser (or CREATEROLE) URL of the database the login will connect to.
  const password = randomBytes(18).toString('base64url');
  await withPgClient(databaseUrl, (client) =>
    client.query(`create role ${ident(login)} login password ${literal(password)} in role ${ident(roles.worker)}`),
  );
  return {
    url: withCredentials(databaseUrl, login, password),
    login,
    drop: () => withPgClient(databaseUrl, async (client) => void (await client.query(`drop role if exists ${ident(login)}`))),
  };
}

export interface ToolServerOptions {
  /** How the tool server connects (workerLogin's URL: the worker role's, or a login that may SET ROLE to it). */
  databaseUrl: string;
  breaks?: ToolBreaks;
  /** Default claim lock hold (ms) when a claim call does not say; 0 by default. */
  claimHoldMs?: number;
  /** Claim lease (ms); 60 s by default. */
  leaseMs?: number;
  /** The role to act as when the URL's user is another (default worker_write). */
  role?: string;
  /** Supervisor name; 'tool-server' by default. */
  processName?: string;
  /** The target's names (SOR_PROFILE); the reference profile when absent. */
  profile?: Profile;
  /** Database connections the server keeps (SOR_TOOLS_POOL_MAX; 6 by default). */
  poolMax?: number;
  /** databaseUrl is a transaction pooler (PgBouncer): one transaction per call (SOR_TOOLS_TRANSACTION_POOLING). */
  transactionPooling?: boolean;
}

export interface ToolServer {
  name: string;
  /** http://127.0.0.1:<port>/mcp (the port is kept across restarts). */
  url: string;
  /** The bearer token every request must carry. */
  token: string;
}

/** Starts the MCP tool server and resolves once it is connected and listening. */
export async function startToolServer(sup: Supervisor, options: ToolServerOptions): Promise<ToolServer> {
  const name = options.processName ?? 'tool-server';
  const token = randomBytes(24).toString('base64url');
  const port = await freePort();
  await sup.start({
    name,
    args: [scriptPath('tool-server')],
    env: allowListEnv({
      SOR_TOOLS_DATABASE_URL: options.databaseUrl,
      SOR_TOOLS_TOKEN: token,
      SOR_TOOLS_PORT: port,
      SOR_TOOLS_BREAKS: formatBreaks(options.breaks),
      SOR_CLAIM_HOLD_MS: options.claimHoldMs,
      SOR_LEASE_MS: options.leaseMs,
      SOR_WORKER_ROLE: options.role,
      SOR_PROFILE: options.profile ? profileEnv(options.profile) : undefined,
      SOR_TOOLS_POOL_MAX: options.poolMax,
      SOR_TOOLS_TRANSACTION_POOLING: options.transactionPooling ? '1' : undefined,
    }),
  });
  const { url } = await waitListening(sup, name);
  return { name, url, token };
}

export interface WorkerOptions {
  /** The Worker's name: its runs are found by it; also the supervisor name unless processName. */
  name: string;
  tenant: string;
  tools: { url: string; token: string };
  /** Sleep before each call (ms). */
  pace_ms: number;
  /** Turns of a new run (default 5). */
  turns?: number;
  /** Resume a crashed run (default true); false is the resume drill's deliberate break. */
  resume?: boolean;
  /** 'run' (default) or 'claim-once' (one claim in a 1-turn run: the race drill). */
  mode?: WorkerMode;
  /** `turn.call`: stall after executing that call (not after reusing it), so it can be killed mid-turn. */
  pauseAfter?: string;
  /**
   * Each claim asks the tool server to hold its row lock this long (hold_ms): the race
   * drill's Workers, whose holds the drill ends early (releaseHolds) once it has seen the race.
   */
  claimHoldMs?: number;
  /** Connect and wait for goWorker() before the first call (the race's B, started beside A). */
  waitForGo?: boolean;
  /** The boundary drill's deliberate break: hands the Worker DATABASE_URL. Never otherwise. */
  leakDatabaseUrl?: string;
  processName?: string;
}

/** The Worker's whole environment: the allow-list of env.ts (plus DATABASE_URL only under the leak break). */
export function workerEnv(options: WorkerOptions, source: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return allowListEnv(
    {
      SOR_TOOLS_URL: options.tools.url,
      SOR_TOOLS_TOKEN: options.tools.token,
      SOR_WORKER_NAME: options.name,
      SOR_TENANT: options.tenant,
      SOR_PACE_MS: options.pace_ms,
      SOR_TURNS: options.turns ?? 5,
      SOR_RESUME: (options.resume ?? true) ? '1' : '0',
      SOR_MODE: options.mode ?? 'run',
      SOR_PAUSE_AFTER: options.pauseAfter,
      SOR_CLAIM_HOLD_MS: options.claimHoldMs,
      SOR_WAIT_FOR_GO: options.waitForGo ? '1' : undefined,
      DATABASE_URL: options.leakDatabaseUrl,
    },
    source,
  );
}

/** Starts a Worker; resolves once it runs (wait on its JSON lines for progress). Restart it with sup.restart(name). */
export async function startWorker(sup: Supervisor, options: WorkerOptions): Promise<ProcessInfo> {
  const name = options.processName ?? options.name;
  const info = await sup.start({ name, args: [scriptPath('worker')], env: workerEnv(options) });
  // Ready means connected to the tool server and waiting: only then can it be let go.
  if (options.waitForGo) await sup.waitForEvent(name, 'ready', { timeoutMs: startTimeoutMs });
  return info;
}

export interface FleetHostOptions {
  /** Supervisor name of the host process. */
  name: string;
  tools: ReadonlyArray<{ url: string; token: string }>;
  /** The Workers it hosts; `tools` indexes the tool servers above. */
  workers: ReadonlyArray<{ name: string; tenant: string; tools: number }>;
  /** Turns of each run (a Worker runs until a claim finds nothing left). */
  turns: number;
  pace_ms: number;
}

/** Starts a host of fleet Workers (fleet-worker.ts): each its own MCP session and runs. Restart it with sup.restart(name). */
export async function startFleetHost(sup: Supervisor, options: FleetHostOptions): Promise<ProcessInfo> {
  return sup.start({
    name: options.name,
    args: [scriptPath('fleet-worker')],
    env: allowListEnv({
      SOR_FLEET_TOOLS: JSON.stringify(options.tools.map(({ url, token }) => ({ url, token }))),
      SOR_FLEET_WORKERS: JSON.stringify(options.workers),
      SOR_TURNS: options.turns,
      SOR_PACE_MS: options.pace_ms,
    }),
  });
}

/** Lets a Worker started with waitForGo make its calls (SIGUSR2); resolves once it has said `go`. */
export async function goWorker(sup: Supervisor, name: string): Promise<void> {
  const pid = sup.get(name)?.pid;
  if (pid === undefined || sup.get(name)?.state !== 'running') throw new Error(`${name} is not running: it cannot be let go`);
  const since = sup.cursor(name);
  process.kill(pid, 'SIGUSR2');
  await sup.waitForEvent(name, 'go', { timeoutMs: startTimeoutMs, since });
}

export interface RelayOptions {
  /** How the relay connects (the worker role's URL). */
  databaseUrl: string;
  /**
   * The one tenant whose outbox rows the relay claims. Required: on someone's staging
   * database an unscoped relay would send their pending emails to the loopback email
   * service and mark them dispatched.
   */
  tenant: string;
  /** The email service's base URL (startEmailService().url); the relay POSTs to <emailUrl>/send. */
  emailUrl: string;
  /** Sleep when no row is due (ms). */
  pollMs: number;
  /** First retry delay (ms); doubled per attempt. */
  backoffMs: number;
  /** Sleep after a successful send and before the commit (ms), logging sent_pausing: the drill's kill point. */
  pauseAfterSendMs?: number;
  /**
   * Hold each claimed row this long (ms) before sending it, logging claim_held: a second
   * relay then meets a locked row. releaseHolds() ends a hold early.
   */
  claimHoldMs?: number;
  /** The outbox drill's deliberate break: no Idempotency-Key header. */
  noKey?: boolean;
  role?: string;
  processName?: string;
  /** The target's names (SOR_PROFILE); the reference profile when absent. */
  profile?: Profile;
}

/** Starts the outbox relay and resolves once it is connected (relay_started). */
export async function startRelay(sup: Supervisor, options: RelayOptions): Promise<ProcessInfo> {
  const name = options.processName ?? 'relay';
  await sup.start({
    name,
    args: [scriptPath('relay')],
    env: allowListEnv({
      SOR_RELAY_DATABASE_URL: options.databaseUrl,
      SOR_TENANT: options.tenant,
      SOR_EMAIL_URL: options.emailUrl,
      SOR_POLL_MS: options.pollMs,
      SOR_BACKOFF_MS: options.backoffMs,
      SOR_PAUSE_AFTER_SEND_MS: options.pauseAfterSendMs,
      SOR_CLAIM_HOLD_MS: options.claimHoldMs,
      SOR_NO_KEY: options.noKey ? '1' : undefined,
      SOR_WORKER_ROLE: options.role,
      SOR_PROFILE: options.profile ? profileEnv(options.profile) : undefined,
    }),
  });
  await sup.waitForEvent(name, 'relay_started', { timeoutMs: startTimeoutMs });
  return sup.get(name)!;
}

/**
 * Ends every claim hold in progress in a tool server or relay (SIGUSR2 to that
 * process) and resolves with how many there were, once it has said so.
 */
export async function releaseHolds(sup: Supervisor, name: string): Promise<number> {
  const pid = sup.get(name)?.pid;
  if (pid === undefined) throw new Error(`${name} is not running: no hold to release`);
  const since = sup.cursor(name);
  process.kill(pid, 'SIGUSR2');
  const line = await sup.waitForEvent(name, 'holds_released', { timeoutMs: startTimeoutMs, since });
  return Number(line.count);
}

export interface EmailService {
  name: string;
  /** Base URL, http://127.0.0.1:<port> (kept across restarts). */
  url: string;
  /** The next `count` sends answer 503 ('status503') or have their connection destroyed ('reset'). */
  failNext(count: number, mode: FailMode): Promise<void>;
  /** Requests and deliveries, in total, per dedup_key and per idempotency key. */
  report(): Promise<EmailReport>;
  /** The next `count` sends are delivered but their answer is held (logged `held`) until release(). */
  holdNext(count: number): Promise<void>;
  /** Answers every held send. */
  release(): Promise<void>;
}

/** Starts the email service and resolves once it listens. */
export async function startEmailService(
  sup: Supervisor,
  options: {
    processName?: string;
    /** Where a request's idempotency key is: a header (default Idempotency-Key) or a body field. */
    dedupKey?: { header: string } | { body: string };
  } = {},
): Promise<EmailService> {
  const name = options.processName ?? 'email-service';
  const port = await freePort();
  const keyFrom = options.dedupKey ? ('header' in options.dedupKey ? `header:${options.dedupKey.header}` : `body:${options.dedupKey.body}`) : undefined;
  await sup.start({ name, args: [scriptPath('email-service')], env: allowListEnv({ SOR_EMAIL_PORT: port, SOR_EMAIL_KEY_FROM: keyFrom }) });
  const { url } = await waitListening(sup, name);
  const call = async (path: string, init?: RequestInit): Promise<unknown> => {
    const response = await fetch(new URL(path, url), { ...init, signal: AbortSignal.timeout(5_000) });
    const text = await response.text();
    if (!response.ok) throw new Error(`email service ${path}: HTTP ${response.status} ${text}`);
    return JSON.parse(text) as unknown;
  };
  return {
    name,
    url,
    async failNext(count, mode) {
      await call('/control/fail-next', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ count, mode }),
      });
    },
    report: async () => (await call('/report')) as EmailReport,
    async holdNext(count) {
      await call('/control/hold-next', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ count }) });
    },
    async release() {
      await call('/control/release', { method: 'POST' });
    },
  };
}

/** The JSON lines among a process's recent lines (every start; other lines skipped). */
export function jsonLines(sup: Supervisor, name: string) {
  return (sup.get(name)?.recentLines ?? []).map(parseJsonLine).filter((line) => line !== undefined);
}
