// The Reconciler's processes as the drills and the console see them. The drills
// start what they need (tool server, Workers, relay, email service) through
// this; the console's kill and restart keys act on the same processes.
//
// One tool server is shared across the drills that run it unbroken (no break, the
// server's default hold and lease): started by the first drill that asks for it and
// kept until the session ends, so each of those drills does not wait for a process
// start. A drill that needs its own (a deliberate break of the tool server, or other
// settings) gets a fresh one, which replaces the shared one and is stopped when that
// drill ends; the next drill that asks for the shared one then starts it again. So
// does a drill that finds it no longer running as it was started (killed, stopped,
// restarted by the operator's key).
import { Supervisor, type ProcessState } from '../reconciler/supervisor.js';
import {
  checkActAs,
  startEmailService,
  startToolServer,
  workerLogin,
  type ActAsCheck,
  type EmailService,
  type ToolBreaks,
  type ToolServer,
  type WorkerLoginSource,
} from '../reconciler/launch.js';
import { errorMessage } from '../postgres/errors.js';
import { type Profile, referenceWithRoles } from '../postgres/profile/index.js';
import type { Roles } from '../postgres/roles.js';
import { CouldNotDetermine } from './runner.js';

/** One supervised process as the console shows it. */
export interface ProcessView {
  name: string;
  pid: number | undefined;
  state: ProcessState;
  exitCode?: number | null;
  signal?: string | null;
  lastLine?: string;
}

export type SystemEvent = { type: 'process'; process: ProcessView } | { type: 'line'; name: string; line: string };

export interface ProcessControl {
  /** Every process started in this run, in start order. */
  list(): ProcessView[];
  /** Sends the signal to the process group and resolves once it has exited. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts the process again with the same specification. */
  restart(name: string): Promise<void>;
  /** Subscribes to state changes and log lines; returns the unsubscribe function. */
  subscribe(listener: (event: SystemEvent) => void): () => void;
  stopAll(): Promise<void>;
}

export interface DrillSystem extends ProcessControl {
  /** The supervisor, created on first use. */
  supervisor(): Supervisor;
  /**
   * The URL the Worker side connects with: it logs in as the worker role or as a
   * login that may SET ROLE to it (checked). Made once per session; when no such
   * login is possible it throws CouldNotDetermine saying what would make one.
   */
  workerUrl(): Promise<string>;
  /**
   * Starts a tool server of the drill's own (stopping a running one first, the shared one
   * included), with the drill's breaks and settings: the drill stops it when it ends.
   */
  toolServer(options?: { breaks?: ToolBreaks; claimHoldMs?: number; leaseMs?: number }): Promise<ToolServer>;
  /**
   * The session's unbroken tool server, shared across drills: the one already running when
   * it is still the process this started (same pid), else a fresh one (stopping whatever
   * runs under its name first). Drills do not stop it; stopAll() and stop() do.
   */
  sharedToolServer(): Promise<ToolServer>;
  /** Stops the shared tool server if it runs: before a drill that needs the target to itself (no session on it). */
  stopShared(): Promise<void>;
  /** The shared tool server's pid while it runs as started, else undefined (what tells it from a drill's own). */
  sharedPid(): number | undefined;
  /** Starts the email service (stopping a running one first); `dedupKey`: where senders put their key. */
  emailService(options?: { dedupKey?: { header: string } | { body: string } }): Promise<EmailService>;
  /** Stops and forgets one process if it runs. */
  stop(name: string): Promise<void>;
}

export interface DrillSystemOptions {
  url: string;
  roles: Roles;
  /** Handed to the tool server (SOR_PROFILE); the reference profile with these roles when absent. */
  profile?: Profile;
  logDir: string;
  /**
   * Whether the target is the embedded cluster sor-drills started: only there may the
   * worker role's password be set. Anywhere else (and by default) no role is changed (workerLogin).
   */
  ownCluster?: boolean;
  /** How the Worker side logs in, instead of workerLogin (tests: a throwaway member of the worker role). */
  workerUrl?: () => Promise<string>;
}

/** A role name as it would be typed in SQL: bare when it can be, quoted otherwise. */
function sqlName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** Why the Worker side cannot act as the worker role, and the two ways out, in one line. */
export function cannotActAs(check: Extract<ActAsCheck, { ok: false }>, role: string, via: WorkerLoginSource | 'custom'): string {
  const login = via === 'given' ? `SOR_WORKER_URL's login ${check.login}` : `the connecting role ${check.login}`;
  if (check.missing === 'role') {
    return `the target has no role ${role} for the tool server and relay to act as: name the Worker's role with --worker-role`;
  }
  return (
    `${login} may not SET ROLE ${role} (neither superuser nor a member of ${role}), so the tool server and relay cannot act as the Worker role; ` +
    `have the operator run \`grant ${sqlName(role)} to ${sqlName(check.login)}\`, or set SOR_WORKER_URL to a login of ${role}`
  );
}

/**
 * The Worker side's URL, once it is known to act as the worker role. Whatever stops
 * it (no membership, a login refused) is could-not-determine: the drills that need
 * the tool server cannot look, which says nothing about the habit they check.
 */
async function checkedWorkerUrl(options: DrillSystemOptions): Promise<string> {
  const role = options.roles.worker;
  let login: { url: string; via: WorkerLoginSource | 'custom' };
  let check: ActAsCheck;
  try {
    login = options.workerUrl
      ? { url: await options.workerUrl(), via: 'custom' }
      : await workerLogin(options.url, options.roles, { ownCluster: options.ownCluster });
    check = await checkActAs(login.url, role);
  } catch (error) {
    throw new CouldNotDetermine(`the Worker side cannot log in to act as ${role}: ${errorMessage(error)}`, { cause: error });
  }
  if (!check.ok) throw new CouldNotDetermine(cannotActAs(check, role, login.via));
  return login.url;
}

function view(info: {
  name: string;
  pid: number | undefined;
  state: ProcessState;
  exitCode?: number;
  signal?: string;
  recentLines: string[];
}): ProcessView {
  return {
    name: info.name,
    pid: info.pid,
    state: info.state,
    exitCode: info.exitCode ?? null,
    signal: info.signal ?? null,
    lastLine: info.recentLines.at(-1),
  };
}

export function createDrillSystem(options: DrillSystemOptions): DrillSystem {
  let supervisor: Supervisor | undefined;
  let workerUrl: Promise<string> | undefined;
  /** The shared tool server and the pid it was started with; a start in flight is shared too. */
  let shared: { server: ToolServer; pid: number | undefined } | undefined;
  let sharedStart: Promise<ToolServer> | undefined;
  const listeners = new Set<(event: SystemEvent) => void>();
  const get = () => {
    if (!supervisor) {
      supervisor = new Supervisor({ logDir: options.logDir });
      supervisor.on('process', (info) => {
        for (const listener of listeners) listener({ type: 'process', process: view(info) });
      });
      supervisor.on('line', (name, line) => {
        for (const listener of listeners) listener({ type: 'line', name, line });
      });
    }
    return supervisor;
  };
  const stop = async (name: string) => {
    const info = supervisor?.get(name);
    if (info && (info.state === 'running' || info.state === 'starting')) await supervisor!.stop(name);
  };
  /** A fresh tool server under the one name, whatever ran there stopped first. */
  const freshToolServer = async (toolOptions: { breaks?: ToolBreaks; claimHoldMs?: number; leaseMs?: number } = {}) => {
    shared = undefined;
    await stop('tool-server');
    return startToolServer(get(), {
      databaseUrl: await system.workerUrl(),
      breaks: toolOptions.breaks,
      claimHoldMs: toolOptions.claimHoldMs,
      leaseMs: toolOptions.leaseMs,
      role: options.roles.worker,
      profile: options.profile ?? referenceWithRoles(options.roles),
    });
  };
  const system: DrillSystem = {
    supervisor: get,
    list: () => (supervisor?.list() ?? []).map(view),
    async kill(name, signal = 'SIGKILL') {
      await get().kill(name, signal);
    },
    async restart(name) {
      await get().restart(name);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stopAll() {
      // A shared tool server still starting (started ahead of the drill that needs it) is stopped too.
      await sharedStart?.catch(() => {});
      await supervisor?.stopAll();
    },
    async stop(name) {
      // A shared tool server still starting would otherwise come up after this stop.
      await sharedStart?.catch(() => {});
      await stop(name);
    },
    workerUrl() {
      // A failure is not kept: the operator may grant the membership and run the next drill.
      workerUrl ??= checkedWorkerUrl(options).catch((error: unknown) => {
        workerUrl = undefined;
        throw error;
      });
      return workerUrl;
    },
    async toolServer(toolOptions = {}) {
      // A shared one still starting (started ahead of the drills) finishes first: one name, one start at a time.
      await sharedStart?.catch(() => {});
      return freshToolServer(toolOptions);
    },
    sharedToolServer() {
      if (shared) {
        const info = supervisor?.get(shared.server.name);
        if (info?.state === 'running' && info.pid === shared.pid) return Promise.resolve(shared.server);
        shared = undefined;
      }
      sharedStart ??= (async () => {
        try {
          const server = await freshToolServer();
          shared = { server, pid: get().get(server.name)?.pid };
          return server;
        } finally {
          sharedStart = undefined;
        }
      })();
      return sharedStart;
    },
    sharedPid() {
      if (!shared) return undefined;
      const info = supervisor?.get(shared.server.name);
      return info?.state === 'running' && info.pid === shared.pid ? shared.pid : undefined;
    },
    async stopShared() {
      await sharedStart?.catch(() => {});
      if (!shared) return;
      const { server, pid } = shared;
      shared = undefined;
      if (supervisor?.get(server.name)?.pid === pid) await stop(server.name);
    },
    async emailService(emailOptions = {}) {
      await stop('email-service');
      return startEmailService(get(), emailOptions);
    },
  };
  return system;
}
