// Process entry: a host of the fleet drill's Workers. Each Worker it hosts is a
// whole reference Worker (worker-run.ts): its own MCP client and session with a
// tool server, its own name, tenant and runs in the journal. The host only runs
// them side by side, so that 100 Workers need 10 Node processes on 2 cores, not
// 100. Nothing is shared between them but the process: the database is their
// only coordination. A SIGKILL takes all of the host's Workers down mid-call;
// started again, each resumes its crashed run from the journal by its name.
//
// Settings (the allow-listed environment of launch.ts):
//   SOR_FLEET_TOOLS    JSON [{url, token}]: the tool servers
//   SOR_FLEET_WORKERS  JSON [{name, tenant, tools}]: the Workers, tools an index into SOR_FLEET_TOOLS
//   SOR_TURNS          turns of each run (10); a Worker runs until a claim finds nothing left
//   SOR_PACE_MS        pause before each call (0)
//
// stdout, one JSON line each (per-call lines are left out: the journal has them):
//   worker_started {worker}, run_started / run_resumed / run_finished (as worker.ts, plus worker),
//   call_failed {worker, ...}, worker_done {worker, runs}, worker_failed {worker, message}
// Exit: 0 every Worker drained; 1 a Worker's call failed; 2 bad settings; 3 a tool server unreachable.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { emit, intSetting, requiredSetting } from './json-lines.js';
import type { WorkerConfig } from './worker-plan.js';
import { runWorker, ToolFailure, workerExitCodes } from './worker-run.js';

interface ToolsEntry {
  url: string;
  token: string;
}

interface WorkerEntry {
  name: string;
  tenant: string;
  tools: number;
}

const keptEvents = new Set(['run_started', 'run_resumed', 'run_finished', 'call_failed']);

function parseList<T>(name: string, raw: string, check: (value: Record<string, unknown>) => value is T & Record<string, unknown>): T[] {
  const value = JSON.parse(raw) as unknown;
  if (!Array.isArray(value) || value.length === 0 || !value.every((item) => item && typeof item === 'object' && check(item))) {
    throw new Error(`${name} must be a non-empty JSON array of the documented objects`);
  }
  return value as T[];
}

/** One Worker: runs until a claim finds nothing left. Resolves with the exit code it stands for. */
async function fleetWorker(entry: WorkerEntry, tools: ToolsEntry, base: Pick<WorkerConfig, 'turns' | 'paceMs'>): Promise<number> {
  const config: WorkerConfig = {
    toolsUrl: tools.url,
    token: tools.token,
    name: entry.name,
    tenant: entry.tenant,
    paceMs: base.paceMs,
    turns: base.turns,
    resume: true,
    mode: 'run',
    pauseAfter: undefined,
    claimHoldMs: undefined,
    waitForGo: false,
  };
  const quiet = (event: string, fields: Record<string, unknown> = {}) => {
    if (keptEvents.has(event)) emit(event, { worker: entry.name, ...fields });
  };
  const client = new Client({ name: `sor-fleet-${entry.name}`, version: '0.1.0' });
  const transport = new StreamableHTTPClientTransport(new URL(tools.url), {
    requestInit: { headers: { authorization: `Bearer ${tools.token}` } },
  });
  try {
    await client.connect(transport);
    emit('worker_started', { worker: entry.name });
    let runs = 0;
    for (;;) {
      runs += 1;
      const outcome = await runWorker(config, client, quiet);
      if (outcome.drained) break;
    }
    emit('worker_done', { worker: entry.name, runs });
    return workerExitCodes.finished;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    emit('worker_failed', { worker: entry.name, message });
    return error instanceof ToolFailure ? workerExitCodes.callFailed : workerExitCodes.unreachable;
  } finally {
    await client.close().catch(() => {});
  }
}

async function main(): Promise<number> {
  let tools: ToolsEntry[];
  let workers: WorkerEntry[];
  let base: Pick<WorkerConfig, 'turns' | 'paceMs'>;
  try {
    tools = parseList<ToolsEntry>('SOR_FLEET_TOOLS', requiredSetting(process.env, 'SOR_FLEET_TOOLS'), (item): item is ToolsEntry & Record<string, unknown> =>
      typeof item.url === 'string' && typeof item.token === 'string',
    );
    workers = parseList<WorkerEntry>('SOR_FLEET_WORKERS', requiredSetting(process.env, 'SOR_FLEET_WORKERS'), (item): item is WorkerEntry & Record<string, unknown> =>
      typeof item.name === 'string' && typeof item.tenant === 'string' && Number.isInteger(item.tools) && (item.tools as number) >= 0 && (item.tools as number) < tools.length,
    );
    base = { turns: intSetting(process.env, 'SOR_TURNS', 10), paceMs: intSetting(process.env, 'SOR_PACE_MS', 0) };
  } catch (error) {
    process.stderr.write(`fleet-worker: ${error instanceof Error ? error.message : String(error)}\n`);
    return workerExitCodes.badSettings;
  }
  const codes = await Promise.all(workers.map((entry) => fleetWorker(entry, tools[entry.tools]!, base)));
  return Math.max(...codes);
}

main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`fleet-worker: ${String(error)}\n`);
    process.exit(workerExitCodes.unreachable);
  },
);
