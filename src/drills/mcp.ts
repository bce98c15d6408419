// The drills' own MCP client: the same transport and token the Worker uses, so
// a drill calls the tool server exactly as an agent would.
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

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
