// The Reconciler's processes as the drills and the console see them. The drills
// start what they need (tool server, Workers, relay, email service) through
// this; the console's kill and restart keys act on the same processes.
import { Supervisor, type ProcessState } from '../reconciler/supervisor.js';
import {
  startEmailService,
  startToolServer,
  workerCredentials,
  type EmailService,
  type ToolBreaks,
  type ToolServer,
} from '../reconciler/launch.js';
import type { Roles } from '../postgres/roles.js';

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
  /** The URL the Worker side connects with (the worker role), made once per session. */
  workerUrl(): Promise<string>;
  /** Starts the tool server (stopping a running one first), with the drill's breaks. */
  toolServer(options?: { breaks?: ToolBreaks; claimHoldMs?: number; leaseMs?: number }): Promise<ToolServer>;
  /** Starts the email service (stopping a running one first). */
  emailService(): Promise<EmailService>;
  /** Stops and forgets one process if it runs. */
  stop(name: string): Promise<void>;
}

export interface DrillSystemOptions {
  url: string;
  roles: Roles;
  logDir: string;
  /** How the Worker side logs in; by default a fresh password is set on the worker role. */
  workerUrl?: () => Promise<string>;
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
      await supervisor?.stopAll();
    },
    stop,
    workerUrl() {
      workerUrl ??= options.workerUrl ? options.workerUrl() : workerCredentials(options.url, options.roles);
      return workerUrl;
    },
    async toolServer(toolOptions = {}) {
      await stop('tool-server');
      return startToolServer(get(), {
        databaseUrl: await system.workerUrl(),
        breaks: toolOptions.breaks,
        claimHoldMs: toolOptions.claimHoldMs,
        leaseMs: toolOptions.leaseMs,
        role: options.roles.worker,
      });
    },
    async emailService() {
      await stop('email-service');
      return startEmailService(get());
    },
  };
  return system;
}
