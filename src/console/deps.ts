// What the console reaches for after its first frame: the target, its
// preparation, the drill session and the live-count poller. Everything heavy
// (pg, the drills, the Reconciler, the MCP SDK) is imported only in loadDeps(),
// once the boot screen is drawn. Tests hand the controller fakes instead.
import type { ProcessControl } from '../drills/processes.js';
import type { GivenProfile, ProfileInUse, ProfileNames } from '../postgres/profile/index.js';
import type { Roles } from '../postgres/roles.js';
import type { BundleKey, Drill, DrillOptions, DrillResult, Operator, RunnerEvent } from '../drills/types.js';
import type { Preparation } from '../postgres/prepare.js';
import type { Target } from '../postgres/target.js';
import { maskUrl } from '../postgres/url.js';
import type { CapstoneState, CapstoneTarget, LoadedCapstone } from './capstone.js';
import { LiveCounts } from './live-counts.js';

/** The part of a drill session (src/drills/session.ts) the console uses. */
export interface ConsoleSession {
  drills: readonly Drill[];
  /** The profile's names, for the steps' statements before a drill runs (reference ones when absent). */
  names?: ProfileNames;
  /** The options the drills run with (a drill's proposal is read with them); fakes may leave it out. */
  options?: DrillOptions;
  processes: ProcessControl;
  runOne(key: BundleKey, broken: boolean, operator: Operator, emit: (event: RunnerEvent) => void): Promise<DrillResult>;
  close(): Promise<void>;
}

/** The capstone saved for this console's target in .sor-drills/ (src/console/capstone.ts). */
export interface CapstoneStore {
  /** The embedded target only: where its cluster is kept while the capstone is unfinished. */
  home?: string;
  load(): Promise<LoadedCapstone>;
  save(state: CapstoneState): Promise<void>;
  /** Before the target is reached (starting over): removes the saved capstone and, for the embedded target, its kept cluster. */
  discard(): Promise<void>;
  /** The capstone is finished: removes the saved state (the running cluster goes when it stops: Target.retain(false)). */
  finish(): Promise<void>;
  /** After the target is closed: removes the capstone's directory if nothing is left in it. */
  tidy(): Promise<void>;
}

/** The poller as the console drives it (src/console/live-counts.ts). */
export type Poller = Pick<LiveCounts, 'setTables' | 'pause' | 'resume' | 'stop'>;

export interface ConsoleDeps {
  resolveTarget(options: { db?: string; keep?: boolean; onProgress?: (line: string) => void; home?: string }): Promise<Target>;
  /** The capstone of the target --db (or DATABASE_URL, or the embedded default) names; fakes may leave it out. */
  openCapstone?(options: { db?: string; profile?: string }): Promise<CapstoneStore>;
  /** The same preparation as `sor-drills run` (src/postgres/prepare.ts). */
  prepareTarget(target: Target, options: { consent: boolean; onProgress?: (line: string) => void; profile?: string }): Promise<Preparation>;
  /** The profile held against the target (src/drills/session.ts); fakes may leave it out. */
  resolveProfile?(target: Target, given: GivenProfile | undefined, roles: Roles | undefined): Promise<ProfileInUse>;
  createSession(options: {
    target: Target;
    breaks: ReadonlySet<BundleKey>;
    options: DrillOptions;
    profile?: ProfileInUse;
    roles?: Roles;
  }): ConsoleSession;
  defaultDrillOptions: DrillOptions;
  createPoller(url: string): Poller;
}

/** The real dependencies, imported only now. */
export async function loadDeps(): Promise<ConsoleDeps> {
  const [{ resolveTarget }, { prepareTarget }, { createSession, defaultDrillOptions, resolveSessionProfile }, { defaultRoles }] = await Promise.all([
    import('../postgres/target.js'),
    import('../postgres/prepare.js'),
    import('../drills/session.js'),
    import('../postgres/roles.js'),
  ]);
  return {
    resolveTarget,
    openCapstone,
    prepareTarget,
    resolveProfile: (target, given, roles) => resolveSessionProfile(target, given, roles ?? defaultRoles),
    createSession,
    defaultDrillOptions,
    createPoller: (url) => new LiveCounts({ url }),
  };
}

/** The capstone in .sor-drills/ of the working directory, for the target as the operator named it. */
export async function openCapstone(options: { db?: string; profile?: string; cwd?: string }): Promise<CapstoneStore> {
  const [{ parseUrl }, { discardHome }, { capstoneClusterHome, capstoneDir, loadCapstone, removeCapstone, saveCapstone, tidyCapstone }] = await Promise.all([
    import('../postgres/url.js'),
    import('../postgres/embedded-home.js'),
    import('./capstone.js'),
  ]);
  const given = options.db ?? process.env.DATABASE_URL;
  // Named as the target will be shown once reached: the canonical URL, masked.
  const target: CapstoneTarget = given ? { kind: 'url', display: maskUrl(parseUrl(given).url) } : { kind: 'embedded', display: 'embedded' };
  const dir = capstoneDir(options.cwd ?? process.cwd(), target, options.profile);
  const home = target.kind === 'embedded' ? capstoneClusterHome(dir) : undefined;
  return {
    home,
    load: () => loadCapstone(dir),
    save: (state) => saveCapstone(dir, state),
    async discard() {
      if (home) await discardHome(home);
      await removeCapstone(dir);
    },
    finish: () => removeCapstone(dir),
    tidy: () => tidyCapstone(dir),
  };
}

/** What the boot screen names as the target before it is reached (the password masked). */
export function bootLabel(db: string | undefined): string {
  const url = db ?? process.env.DATABASE_URL;
  return url ? maskUrl(url) : 'embedded PostgreSQL (throwaway: started now, removed on exit)';
}

/** The Worker's pause between tool calls when a person watches: slow enough to see the counts climb. */
export const humanWorkerPaceMs = 800;

/**
 * How slowly the Reconciler's Worker goes. The crash drill's Worker stalls in the middle of
 * turn 3 until the operator kills it, so the pace is only for watching: a person sees each
 * call land; autoplay goes about as fast as its own key presses.
 */
export function workerPaceMs(options: { auto?: boolean; paceMs?: number }, headless: number): number {
  if (!options.auto) return Math.max(headless, humanWorkerPaceMs);
  return Math.max(headless, options.paceMs ?? 0);
}

/** How long, at least, the race's first claim holds its row when a person watches. */
export const humanRaceHoldMs = 1_500;

/**
 * The least time the race's first claim holds its row when a person watches (the drill
 * ends the hold once it has seen the second Worker's claim, and not before this), so the
 * held row can be seen; autoplay and the headless run hold it only until then.
 */
export function raceHoldMs(options: { auto?: boolean }, headless: number): number {
  return options.auto ? headless : Math.max(headless, humanRaceHoldMs);
}
