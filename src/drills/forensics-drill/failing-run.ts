// The run the forensics drill investigates: a refund the expenses check refuses,
// claimed and written by a real Worker, which exits once its call has failed.
// runWorkerToExit is any one-turn Worker run waited for to its end: the
// append-only drill makes its replay run with it too.
import { jsonLines, startWorker, type ToolServer } from '../../reconciler/launch.js';
import type { DrillTenant } from '../inputs.js';
import type { DrillContext } from '../types.js';

/** The input that makes the run fail: a refund, which the expenses check refuses. */
export const failingInput = { amount_cents: -1250, description: 'Refund: returned monitor' } as const;

const workerExitTimeoutMs = 30_000;

export interface WorkerOutcome {
  exitCode: number | null;
  signal: string | null;
  runId: string | undefined;
  /** The Worker's own call_failed line, if it printed one. */
  failed: { turn?: unknown; call?: unknown; tool?: unknown; error?: unknown; error_code?: unknown } | undefined;
}

/**
 * Starts the tenant's Worker on a one-turn run, waits (with a deadline) for it to
 * exit, and reads from its own lines which run it started and which call failed.
 */
export async function runWorkerToExit(
  ctx: DrillContext,
  tenant: DrillTenant,
  tools: ToolServer,
  log: (line: string) => void,
): Promise<WorkerOutcome> {
  const supervisor = ctx.system.supervisor();
  await startWorker(supervisor, {
    name: tenant.worker,
    tenant: tenant.id,
    tools,
    pace_ms: Math.min(ctx.options.paceMs, 500),
    turns: 1,
  });
  ctx.defer(() => ctx.system.stop(tenant.worker));
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    supervisor.waitForExit(tenant.worker),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), workerExitTimeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  if (!exited) {
    await ctx.system.stop(tenant.worker);
    throw new Error(`the Worker did not exit within ${workerExitTimeoutMs / 1000} s`);
  }
  const lines = jsonLines(supervisor, tenant.worker);
  const started = lines.find((line) => line.event === 'run_started');
  const failed = lines.find((line) => line.event === 'call_failed');
  const outcome: WorkerOutcome = {
    exitCode: exited.exitCode ?? null,
    signal: exited.signal ?? null,
    runId: typeof started?.run_id === 'string' ? started.run_id : undefined,
    failed: failed ? { turn: failed.turn, call: failed.call, tool: failed.tool, error: failed.error, error_code: failed.error_code } : undefined,
  };
  for (const line of exited.recentLines.slice(-10)) log(`worker: ${line}`);
  log(`worker exited with code ${String(outcome.exitCode)}${outcome.signal ? ` (${outcome.signal})` : ''}`);
  return outcome;
}
