// The drills' own MCP client: the same transport and token the Worker uses, so
// a drill calls the tool server exactly as an agent would; and the operator's
// tool server, started for a drill and called through the tools its profile declares.
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { httpFetch } from '../reconciler/http-fetch.js';
import type { ProfileInUse, ToolSpec } from '../postgres/profile/index.js';
import { errorMessage } from '../postgres/errors.js';
import { fillArguments, operatorCommand, startOperatorToolServer, whose, type OperatorToolServer } from './operator-side.js';
import { CouldNotDetermine } from './runner.js';
import type { DrillContext } from './types.js';

export interface ToolAnswer {
  isError: boolean;
  text: string;
  /** The JSON the tool returned, when it returned JSON. */
  value: Record<string, unknown> | undefined;
}

export async function withToolsClient<T>(
  tools: { url: string; token: string },
  callback: (client: Client) => Promise<T>,
): Promise<T> {
  const client = new Client({ name: 'sor-drills-drill', version: '0.1.0' });
  const transport = new StreamableHTTPClientTransport(new URL(tools.url), {
    requestInit: { headers: { authorization: `Bearer ${tools.token}` } },
    // node:http, not the global fetch: a process that used fetch waits at exit for V8 to
    // finish compiling undici's WebAssembly parser (http-fetch.ts).
    fetch: httpFetch,
  });
  await client.connect(transport);
  try {
    return await callback(client);
  } finally {
    await client.close().catch(() => {});
  }
}

/** Calls a tool; an MCP error (thrown, as older SDKs do, or returned as isError) becomes an answer too. */
export async function callTool(client: Client, name: string, args: Record<string, unknown>): Promise<ToolAnswer> {
  try {
    const result = (await client.callTool({ name, arguments: args })) as {
      isError?: boolean;
      content?: Array<{ type: string; text?: string }>;
    };
    const text = (result.content ?? []).map((part) => part.text ?? '').join('');
    let value: Record<string, unknown> | undefined;
    try {
      value = JSON.parse(text) as Record<string, unknown>;
    } catch {
      value = undefined;
    }
    return { isError: Boolean(result.isError), text, value };
  } catch (error) {
    const code = (error as { code?: number }).code;
    const message = error instanceof Error ? error.message : String(error);
    return { isError: true, text: code !== undefined && !message.includes(String(code)) ? `MCP error ${code}: ${message}` : message, value: undefined };
  }
}

export function journalArgs(tenant: string, worker: string, turn: number, of: number, call: number, endsTurn = false, runId = randomUUID()) {
  return { run_id: runId, worker, tenant, turn, of, call, ...(endsTurn ? { ends_turn: true } : {}) };
}

// The operator's tool server (the profile's processes.tool_server): started for a
// drill in place of the reference one, and called through the tools the profile
// declares, their argument templates filled (fillArguments in operator-side.ts).

/** Cents as the major-unit text the `{amount}` placeholder takes: 4200 -> "42.00". */
export function majorAmount(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const whole = Math.abs(Math.trunc(cents));
  return `${sign}${Math.floor(whole / 100)}.${String(whole % 100).padStart(2, '0')}`;
}

/** Whether a tool's argument template sends `{placeholder}` anywhere (alone or inside text). */
export function templateUses(template: unknown, placeholder: string): boolean {
  if (typeof template === 'string') return template.includes(`{${placeholder}}`);
  if (Array.isArray(template)) return template.some((item) => templateUses(item, placeholder));
  if (template && typeof template === 'object') return Object.values(template).some((item) => templateUses(item, placeholder));
  return false;
}

/** What a drill's write carries, in the drills' own units; the template decides where each goes. */
export interface WriteValues {
  tenant: string;
  worker: string;
  key: string;
  amountCents: number;
  description: string;
  transaction?: string | null;
}

/** The arguments of a call to the profile's declared write tool. */
export function writeArguments(spec: ToolSpec, values: WriteValues): Record<string, unknown> {
  return fillArguments(spec.arguments, {
    tenant: values.tenant,
    worker: values.worker,
    key: values.key,
    amount_cents: values.amountCents,
    amount: majorAmount(values.amountCents),
    description: values.description,
    transaction: values.transaction ?? null,
  });
}

/** The profile's declared write tool, or could-not-determine naming the profile key to add. */
export function declaredWrite(profile: ProfileInUse, purpose: string): ToolSpec {
  const write = profile.profile.processes?.tool_server?.tools.write;
  if (!write) {
    throw new CouldNotDetermine(
      `the profile declares the operator's tool server but no processes.tool_server.tools.write, so ${purpose} cannot be sent through it: ` +
        "add the write tool's name and its argument template, with {key} where the idempotency key goes " +
        '(e.g. {"name": "record_expense", "arguments": {"idempotency_key": "{key}", "amount": "{amount}", "memo": "{description}"}})',
    );
  }
  return write;
}

/**
 * Starts the operator's tool server for this drill (stopping a running tool server
 * first) and stops it when the drill ends. One that does not start, or never
 * listens, is could-not-determine: nothing of its habits could be looked at.
 */
export async function startOperatorTools(ctx: DrillContext): Promise<OperatorToolServer> {
  const command = operatorCommand(ctx.profile, 'tool_server');
  const name = 'tool-server';
  await ctx.system.stop(name);
  const databaseUrl = await ctx.system.workerUrl();
  ctx.defer(() => ctx.system.stop(name));
  let server: OperatorToolServer;
  try {
    server = await startOperatorToolServer(ctx.system.supervisor(), ctx.profile, { databaseUrl, processName: name });
  } catch (error) {
    const log = ctx.system.supervisor().get(name)?.logFile;
    throw new CouldNotDetermine(
      `${whose('tool server', command)} did not start: ${errorMessage(error)}` +
        `${log ? ` (its log: ${log})` : ''}; fix processes.tool_server (command, env, url) in the profile`,
      { cause: error },
    );
  }
  ctx.observe('tool_server', server.url.replace(/\/mcp$/, ''));
  ctx.observe('tool_server_process', server.whose);
  return server;
}

/** A drill's deliberate break switches sor-drills' own processes: it cannot be applied to the operator's. */
export function operatorBreakUnavailable(ctx: DrillContext, kinds: string): CouldNotDetermine {
  return new CouldNotDetermine(
    `the deliberate break of ${ctx.key} switches sor-drills' reference ${kinds}; the profile runs the operator's own, which sor-drills cannot break: ` +
      'run the drill without --break, or break your own process and run it',
  );
}
