// Steps several drills share, written once: the drill's own tenant and the tool
// server (with the drill's break switches). Each puts its handle into the drill's
// state under a fixed field, so a drill's state type says which shared steps it uses.
import type { ToolBreaks, ToolServer } from '../reconciler/launch.js';
import { createDrillTenant, type DrillTenant } from './inputs.js';
import type { DrillContext, Step, StepHint } from './types.js';

export interface TenantState {
  tenant?: DrillTenant;
}

export interface ToolServerState {
  tools?: ToolServer;
}

/**
 * Makes a tenant of the drill's own (`drill-<label>-<hex>`) and keeps it in `state.tenant`.
 * The why and the hint are the drill's: what its own tenant is for there.
 */
export function drillTenantStep<S extends TenantState>(label: string, why: string, hint: StepHint): Step<S> {
  return {
    id: 'tenant',
    title: 'Make a tenant for this drill',
    why,
    hint,
    async run(ctx, state) {
      state.tenant = await createDrillTenant(ctx, label);
    },
  };
}

export interface ToolServerStepOptions<S> {
  title?: string;
  why: string;
  /** What the learner looks for here, and the mistake: the drill's own, as the server's role differs per drill. */
  hint: StepHint;
  /** The tool server's break switches for this drill, used when it runs broken. */
  breaks?: ToolBreaks;
  claimHoldMs?: (ctx: DrillContext) => number;
  leaseMs?: number;
  /** Runs once the server is up (an observation, a query the step also makes). */
  after?: (ctx: DrillContext, state: S) => Promise<void>;
}

/**
 * The tool server for the drill, its address and token kept in `state.tools`. Run
 * unbroken with the server's own settings, it is the session's shared one (started
 * if none runs, left running when the drill ends: processes.ts). With the drill's
 * break switches on, or a hold or lease of its own, it is a fresh one of the drill's
 * own (replacing the shared one), stopped when the drill ends.
 */
export function toolServerStep<S extends ToolServerState>(
  options: ToolServerStepOptions<S>,
): Step<S> {
  return {
    id: 'tool-server',
    title: options.title ?? 'Start the tool server',
    why: options.why,
    hint: options.hint,
    async run(ctx, state) {
      const breaks = ctx.broken ? (options.breaks ?? {}) : {};
      const claimHoldMs = options.claimHoldMs?.(ctx);
      const own = Object.values(breaks).some(Boolean) || claimHoldMs !== undefined || options.leaseMs !== undefined;
      let server: ToolServer;
      if (own) {
        server = await ctx.system.toolServer({ breaks, claimHoldMs, leaseMs: options.leaseMs });
        ctx.defer(() => ctx.system.stop(server.name));
      } else {
        server = await ctx.system.sharedToolServer();
      }
      state.tools = server;
      ctx.observe('tool_server', server.url.replace(/\/mcp$/, ''));
      await options.after?.(ctx, state);
    },
  };
}
