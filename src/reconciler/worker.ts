// Process entry: the reference Worker, an MCP client of the tool server. It
// holds no database credentials: its environment is the allow-list of env.ts
// (tool server URL and token, its name, tenant, pace, turns, resume, mode, and
// the claim hold it asks for, if any).
//
// On start (mode 'run', resume on) it asks the journal for its latest crashed
// run; if there is one it resumes from the last incomplete turn, reusing the
// recorded results of completed calls; otherwise it starts a new run (a uuid)
// of SOR_TURNS turns. Each turn: claim -> write -> queue (ends_turn), or a claim
// that finds nothing, which ends the turn by itself. It sleeps SOR_PACE_MS
// before each call so an operator can kill it mid-turn.
// Mode 'claim-once' (the race drill): one claim in a new 1-turn run, no resume.
// SOR_WAIT_FOR_GO=1: once connected it says `ready` and makes no call until SIGUSR2
// (the race drill starts B beside A and lets it go once A holds its row).
//
// stdout, one JSON line each:
//   run_started {run_id, worker, tenant, turns}
//   run_resumed {run_id, from_turn, of, reused_calls}
//   call_started {run_id, turn, call, tool}
//   call_reused {run_id, turn, call, tool}        a recorded result, not called again
//   call_completed {run_id, turn, call, tool, result}
//   call_failed {run_id, turn, call, tool, error, error_code}
//   run_finished {run_id, turns}
//   ready {worker}, go {worker}                  SOR_WAIT_FOR_GO: connected and waiting; let go
//   worker_error {message}                       the tool server could not be reached
// Exit: 0 the run finished; 1 a tool call failed (the server recorded it and
// failed the run); 2 bad settings; 3 the tool server could not be reached.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { httpFetch } from './http-fetch.js';
import { emit } from './json-lines.js';
import { readWorkerConfig, type WorkerConfig } from './worker-plan.js';
import { runWorker, stallMs, ToolFailure, workerExitCodes } from './worker-run.js';

/** Resolves true on the first SIGUSR2, false if none comes within the stall bound; a later SIGUSR2 is ignored. */
function goSignal(): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), stallMs);
    process.on('SIGUSR2', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function main(): Promise<number> {
  let config: WorkerConfig;
  try {
    config = readWorkerConfig(process.env);
  } catch (error) {
    process.stderr.write(`worker: ${error instanceof Error ? error.message : String(error)}\n`);
    return workerExitCodes.badSettings;
  }
  const client = new Client({ name: `sor-worker-${config.name}`, version: '0.1.0' });
  const transport = new StreamableHTTPClientTransport(new URL(config.toolsUrl), {
    requestInit: { headers: { authorization: `Bearer ${config.token}` } },
    // node:http, not the global fetch: a process that used fetch waits at exit for V8 to
    // finish compiling undici's WebAssembly parser (http-fetch.ts).
    fetch: httpFetch,
  });
  // Installed before the connection, so a go that comes right after `ready` is not lost.
  const go = config.waitForGo ? goSignal() : undefined;
  try {
    await client.connect(transport);
    if (go) {
      emit('ready', { worker: config.name });
      if (!(await go)) {
        process.stderr.write(`worker: no go (SIGUSR2) within ${stallMs / 60_000} min\n`);
        return workerExitCodes.badSettings;
      }
      emit('go', { worker: config.name });
    }
    await runWorker(config, client, emit);
    return workerExitCodes.finished;
  } catch (error) {
    if (error instanceof ToolFailure) {
      process.stderr.write(`worker: ${error.message}\n`);
      return workerExitCodes.callFailed;
    }
    const message = error instanceof Error ? error.message : String(error);
    emit('worker_error', { message });
    process.stderr.write(`worker: ${message}\n`);
    return workerExitCodes.unreachable;
  } finally {
    await client.close().catch(() => {});
  }
}

main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (error: unknown) => {
    process.stderr.write(`worker: ${String(error)}\n`);
    process.exit(workerExitCodes.unreachable);
  },
);
