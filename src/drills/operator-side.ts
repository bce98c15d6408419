// The operator's own Worker side (the profile's `processes`): their tool server,
// Worker and relay, started by the same supervisor as the reference ones. Each
// gets its own process group, its log captured, and an environment of the
// allow-list (PATH, LANG, TZ) plus exactly the variables its `env` declares, the
// placeholders filled by the drill. Nothing else of the console's environment
// reaches it. Commands run in the profile file's folder.
//
// {database_url} carries an application_name of the drill's own, so the drills
// can tell the sessions of the processes they started from anyone else's (the
// race drill's lock waits, the crash drill's in-flight writes).
import { randomBytes } from 'node:crypto';
import { connect as connectTcp } from 'node:net';
import type { Processes, ProfileInUse, ToolSpec } from '../postgres/profile/index.js';
import { CouldNotDetermine } from './runner.js';
import type { DrillContext } from './types.js';
import { formatUrl, parseConnectionString } from '../postgres/connection-string.js';
import { freePort } from '../postgres/embedded.js';
import { allowListEnv } from '../reconciler/env.js';
import type { Supervisor } from '../reconciler/supervisor.js';
import type { ToolServer } from '../reconciler/launch.js';
import { waitFor } from '../util/wait.js';


/** The values the placeholders of a process's env take; unset ones are left empty. */
export type EnvValues = Partial<Record<'database_url' | 'port' | 'token' | 'tools_url' | 'tenant' | 'worker' | 'turns' | 'claim_hold_ms' | 'email_url', string | number>>;

/** `{name}` replaced by its value in a template ('' when the drill has none for it). */
export function fillTemplate(template: string, values: Readonly<Record<string, string | number | null | undefined>>): string {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, name: string) => {
    const value = values[name];
    return value === undefined || value === null ? '' : String(value);
  });
}

/** A process's whole environment: the allow-list plus its declared variables, filled. */
export function operatorEnv(declared: Readonly<Record<string, string>>, values: EnvValues): Record<string, string> {
  return allowListEnv(Object.fromEntries(Object.entries(declared).map(([name, template]) => [name, fillTemplate(template, values)])));
}

/** How an evidence line names a process: "the operator's Worker `node worker.mjs`". */
export function whose(kind: 'tool server' | 'Worker' | 'relay', command: readonly string[] | undefined): string {
  return command ? `the operator's ${kind} \`${command.join(' ')}\`` : `the reference ${kind}`;
}

/** The application_name the drill's URL hands a process: its sessions are found by it. */
export function sessionTag(processName: string): string {
  return `sor-drills-${processName}`.slice(0, 63);
}

/** The URL with application_name set (any connection-string form in, a URL out: what their code reads). */
export function taggedUrl(url: string, processName: string): string {
  return formatUrl({ ...parseConnectionString(url), application_name: sessionTag(processName) });
}

function commandOf(profile: ProfileInUse, command: readonly string[]): { command: string; args: string[]; cwd: string } {
  const [program, ...args] = command;
  return { command: program!, args, cwd: profile.baseDir };
}

/** Whether a TCP connection to 127.0.0.1:port is accepted now. */
export async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface OperatorToolServer extends ToolServer {
  /** The evidence's name for it. */
  whose: string;
  /** The tools the drills call, as the profile declares them. */
  tools: Partial<Record<'claim' | 'write' | 'queue' | 'read', ToolSpec>>;
  /** The tool list the boundary drill expects. */
  allowed: string[];
}

/** The operator's tool server, started and listening (its port accepts connections). */
export async function startOperatorToolServer(
  sup: Supervisor,
  profile: ProfileInUse,
  options: { databaseUrl: string; claimHoldMs?: number; processName?: string },
): Promise<OperatorToolServer> {
  const spec = profile.profile.processes?.tool_server;
  if (!spec) throw new Error('internal: the profile declares no tool server');
  const name = options.processName ?? 'tool-server';
  const port = await freePort();
  const token = randomBytes(24).toString('base64url');
  const values: EnvValues = {
    database_url: taggedUrl(options.databaseUrl, name),
    port,
    token,
    claim_hold_ms: options.claimHoldMs ?? 0,
  };
  const url = fillTemplate(spec.url, values);
  await sup.start({ name, ...commandOf(profile, spec.command), env: operatorEnv(spec.env, { ...values, tools_url: url }) });
  await waitFor(
    `the operator's tool server to listen on port ${port}`,
    async () => {
      const info = sup.get(name);
      if (info && info.state !== 'running' && info.state !== 'starting') {
        throw new Error(`the operator's tool server \`${spec.command.join(' ')}\` exited before it listened (${info.signal ?? `code ${info.exitCode}`}); its log: ${info.logFile}`);
      }
      return portOpen(port);
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
  const tools = spec.tools;
  const allowed = spec.allowed ?? (Object.keys(tools).length > 0 ? Object.values(tools).map((tool) => tool!.name) : ['claim', 'write', 'queue', 'read']);
  return { name, url, token, whose: whose('tool server', spec.command), tools, allowed };
}

/** The operator's Worker, started (it runs until its run is finished). */
export async function startOperatorWorker(
  sup: Supervisor,
  profile: ProfileInUse,
  options: {
    name: string;
    processName?: string;
    tenant: string;
    tools: { url: string; token: string };
    turns: number;
    extraEnv?: Record<string, string>;
    /**
     * Filled in only when the profile hands the Worker {database_url} (a mistake of theirs):
     * then it really gets one, so the boundary drill sees the leak instead of an empty value.
     */
    databaseUrl?: () => Promise<string>;
  },
): Promise<void> {
  const spec = profile.profile.processes?.worker;
  if (!spec) throw new Error('internal: the profile declares no Worker');
  const leaks = Object.values(spec.env).some((template) => template.includes('{database_url}'));
  const values: EnvValues = {
    tools_url: options.tools.url,
    token: options.tools.token,
    tenant: options.tenant,
    worker: options.name,
    turns: options.turns,
    database_url: leaks && options.databaseUrl ? await options.databaseUrl() : undefined,
  };
  await sup.start({
    name: options.processName ?? options.name,
    ...commandOf(profile, spec.command),
    env: { ...operatorEnv(spec.env, values), ...options.extraEnv },
  });
}

/** The operator's relay, started. */
export async function startOperatorRelay(
  sup: Supervisor,
  profile: ProfileInUse,
  options: { databaseUrl: string; emailUrl: string; tenant: string; processName?: string },
): Promise<void> {
  const spec = profile.profile.processes?.relay;
  if (!spec) throw new Error('internal: the profile declares no relay');
  const name = options.processName ?? 'relay';
  const values: EnvValues = { database_url: taggedUrl(options.databaseUrl, name), email_url: options.emailUrl, tenant: options.tenant };
  await sup.start({ name, ...commandOf(profile, spec.command), env: operatorEnv(spec.env, values) });
}

/** Tool arguments from a template: a string that is exactly one placeholder takes the typed value. */
export function fillArguments(
  template: Readonly<Record<string, unknown>>,
  values: Readonly<Record<string, string | number | null | undefined>>,
): Record<string, unknown> {
  const fill = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const whole = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value);
      if (whole) return values[whole[1]!] ?? null;
      return fillTemplate(value, values);
    }
    if (Array.isArray(value)) return value.map(fill);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, fill(item)]));
    return value;
  };
  return fill(template) as Record<string, unknown>;
}

/** Whether the profile declares the operator's process of this kind. */
export function hasOperator(profile: ProfileInUse, kind: keyof Processes): boolean {
  return Boolean(profile.profile.processes?.[kind]);
}

/** The command line, for evidence, of a declared process. */
export function operatorCommand(profile: ProfileInUse, kind: keyof Processes): string[] | undefined {
  return profile.profile.processes?.[kind]?.command;
}

/**
 * Whether a drill that drives a Worker (the crash and race drills) runs the operator's
 * Worker side: false for the reference one. Their tool server without their Worker, or the
 * drill's deliberate break (a switch of the reference processes only), cannot be judged.
 */
export function drivesTheirWorker(ctx: DrillContext, what: { drive: string; breakName: string; breakOf: string }): boolean {
  const theirWorker = hasOperator(ctx.profile, 'worker');
  if (!theirWorker && !hasOperator(ctx.profile, 'tool_server')) return false;
  if (!theirWorker) {
    throw new CouldNotDetermine(
      'the profile declares processes.tool_server but no processes.worker: the reference Worker speaks only the reference tools ' +
        `(claim, write, queue, read), so it cannot ${what.drive} that tool server; declare processes.worker, the Worker that calls its tools`,
    );
  }
  if (ctx.broken) {
    throw new CouldNotDetermine(
      `the deliberate break (${what.breakName}) is a switch of the ${what.breakOf}, and the operator's Worker side has none: ` +
        'run this drill without the break on their Worker side',
    );
  }
  return true;
}
