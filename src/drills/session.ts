// A drill session: the nine drills against one prepared target, with the
// Reconciler's processes under one supervisor. The headless run and the console
// both drive drills only through a session.
import path from 'node:path';
import type { Target } from '../postgres/target.js';
import { builtInSource, type GivenProfile, ProfileError, type ProfileInUse, type ProfileNames, profileNames, referenceWithRoles, resolveProfile } from '../postgres/profile/index.js';
import { withPgClient } from '../postgres/pg.js';
import { defaultRoles, type Roles } from '../postgres/roles.js';
import { defaultEvidenceRoot } from './evidence-root.js';
import { drills as allDrills } from './index.js';
import { runDrill, runDrills } from './runner.js';
import { createDrillSystem, type DrillSystem } from './processes.js';
import type { BundleKey, Drill, DrillContext, DrillOptions, DrillResult, Operator, RunnerEvent } from './types.js';

export interface SessionOptions {
  target: Target;
  roles?: Roles;
  /**
   * The profile the drills go through, resolved on the target (resolveProfile). Absent:
   * the built-in reference profile with the session's roles, resolved at the first run.
   */
  profile?: ProfileInUse;
  breaks: ReadonlySet<BundleKey>;
  only?: ReadonlySet<BundleKey>;
  options: DrillOptions;
}

export interface DrillSession {
  drills: readonly Drill[];
  /** The profile's names (before the first run: as given, or the reference profile's). */
  names: ProfileNames;
  options: DrillOptions;
  processes: DrillSystem;
  run(operator: Operator, emit: (event: RunnerEvent) => void, signal?: AbortSignal): Promise<DrillResult[]>;
  runOne(key: BundleKey, broken: boolean, operator: Operator, emit: (event: RunnerEvent) => void): Promise<DrillResult>;
  close(): Promise<void>;
}

/**
 * A run nobody watches (the headless run, tests): the Worker does not pause between
 * calls and the race's first claim is held exactly until the second Worker's claim is
 * seen. The console sets its own, a person's, pace (src/console/deps.ts).
 */
export const defaultDrillOptions: DrillOptions = {
  paceMs: 0,
  claimHoldMs: 0,
  evidenceRoot: defaultEvidenceRoot(),
  neon:
    process.env.NEON_API_KEY && process.env.NEON_PROJECT_ID
      ? { apiKey: process.env.NEON_API_KEY, projectId: process.env.NEON_PROJECT_ID }
      : undefined,
};

/**
 * The profile a session drills through, held against the target: the one given, or
 * the built-in reference one with the run's roles. A given profile that does not fit
 * refuses the run (ProfileError, exit 2) naming the key; the reference one never does:
 * a drill whose names the target lacks ends could-not-determine instead.
 */
export async function resolveSessionProfile(target: Pick<Target, 'url' | 'display'>, given: GivenProfile | undefined, roles: Roles): Promise<ProfileInUse> {
  const profile = given?.profile ?? referenceWithRoles(roles);
  const inUse = await withPgClient(target.url, (client) => resolveProfile(client, profile, given?.source ?? builtInSource, Boolean(given)));
  if (given && inUse.problems.length > 0) {
    const more = inUse.problems.length > 1 ? ` (and ${inUse.problems.length - 1} more)` : '';
    throw new ProfileError(`profile ${given.source} does not fit ${target.display}: ${inUse.problems[0]}${more}; edit the profile, or draft one with \`sor-drills profile\``);
  }
  return inUse;
}

/**
 * The drill as the session runs it: one that needs the target to itself (no other session
 * on it: the migration drill's CREATE DATABASE ... TEMPLATE) first stops the shared tool
 * server, whose pool keeps its connections open between drills; once its last step that
 * needs the target to itself is done (exclusiveThrough), the shared tool server is started
 * again in the background when `warm` says a later drill may use it, so the next drill
 * does not wait for that process start. Nothing else changes.
 */
function withTargetToItself<S>(drill: Drill<S>, system: DrillSystem, warm: () => boolean): Drill<S> {
  if (!drill.needsExclusiveDatabase || drill.steps.length === 0) return drill;
  const steps = drill.steps.map((step, index) => {
    const first = index === 0;
    const freesTarget = step.id === drill.exclusiveThrough;
    if (!first && !freesTarget) return step;
    return {
      ...step,
      async run(ctx: DrillContext, state: S) {
        if (first) await system.stopShared();
        await step.run(ctx, state);
        // Not awaited: a start that fails is tried again, and said, by the drill that needs it.
        // Only on a target the drills' names fit: one they do not fit starts no process at all (the drills after it
        // are could-not-determine before their first step), so no role gets a password for a tool server nobody uses.
        if (freesTarget && warm() && ctx.profile.problems.length === 0) void system.sharedToolServer().catch(() => {});
      },
    };
  });
  return { ...drill, steps };
}

export function createSession(options: SessionOptions): DrillSession {
  const roles = options.profile?.profile.roles ?? options.roles ?? defaultRoles;
  const profile = options.profile?.profile ?? referenceWithRoles(roles);
  let inUse: Promise<ProfileInUse> | undefined = options.profile ? Promise.resolve(options.profile) : undefined;
  const resolved = () =>
    (inUse ??= withPgClient(options.target.url, (client) => resolveProfile(client, profile, builtInSource, false)).catch((error: unknown) => {
      inUse = undefined;
      throw error;
    }));
  const system = createDrillSystem({
    url: options.target.url,
    roles,
    profile,
    // Only the cluster we started may have its worker role's password set; a server given by URL is left as it is.
    ownCluster: options.target.kind === 'embedded',
    logDir: path.join(path.dirname(options.options.evidenceRoot), 'processes'),
  });
  const base = {
    url: options.target.url,
    display: options.target.display,
    database: options.target.database,
    embedded: options.target.kind === 'embedded',
    serverLog: options.target.cluster?.logFile,
    roles,
    options: options.options,
    system,
  };
  // Whether a drill after the exclusive one will run: `only` may leave none that starts a tool server.
  const laterDrillRuns = (drill: Drill) => allDrills.some((other) => other.number > drill.number && (!options.only || options.only.has(other.key)));
  const sessionDrills = allDrills.map((drill) => withTargetToItself(drill as Drill<unknown>, system, () => laterDrillRuns(drill)));
  // The processes' own events (state changes, log lines) are not runner events: whoever
  // shows them subscribes to `processes` for the session's life, between drills too.
  return {
    drills: allDrills,
    names: options.profile?.names ?? profileNames(profile),
    options: options.options,
    processes: system,
    async run(operator, emit, signal) {
      const profileInUse = await resolved();
      return runDrills({ ...base, profile: profileInUse, drills: sessionDrills, operator, breaks: options.breaks, only: options.only, signal, emit });
    },
    async runOne(key, broken, operator, emit) {
      const drill = sessionDrills.find((candidate) => candidate.key === key);
      if (!drill) throw new Error(`no drill ${key}`);
      const profileInUse = await resolved();
      return runDrill(drill, { ...base, profile: profileInUse, operator, breaks: new Set(broken ? [key] : []), emit });
    },
    async close() {
      await system.stopAll();
    },
  };
}
