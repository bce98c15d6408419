// The console's run, start to end: boot the target (progress on the boot
// screen), set up the schema (asking consent for a foreign database), build the
// drill session, then walk the nine drills in order, each started by the
// operator (enter, or b for its deliberate break), and draft the decision.
// Everything heavy (the target, pg, the drills, the Reconciler, the MCP SDK) is
// imported here, after the first frame is on screen.
import type { BundleKey, Drill, DrillOptions, DrillResult, Operator, RunnerEvent } from '../drills/types.js';
import type { ProcessControl } from '../drills/processes.js';
import type { Target } from '../postgres/target.js';
import { maskUrl } from '../postgres/url.js';
import { onCleanup } from '../util/lifecycle.js';
import { appendHistory, getState, update } from '../store.js';
import { Quitting, type ConsoleController } from './controller.js';
import { decisionDrafts, defaultBundlePath, masteryPath, saveDecision } from './decision.js';
import { errorMessage } from './errors.js';
import { applyRunnerEvent, drillRows, processLine, stepRows, upsertProcess } from './events.js';
import { LiveCounts } from './live-counts.js';

/** The part of the lead's DrillSession (src/drills/session.ts) the console uses. */
export interface ConsoleSession {
  drills: readonly Drill[];
  processes: ProcessControl;
  runOne(key: BundleKey, broken: boolean, operator: Operator, emit: (event: RunnerEvent) => void): Promise<DrillResult>;
  close(): Promise<void>;
}

export interface FlowOptions {
  auto?: boolean;
  paceMs?: number;
  db?: string;
  keep?: boolean;
  yes?: boolean;
  out?: string;
  breaks: readonly BundleKey[];
}

/** What the flow started, for the caller to stop (whatever point the flow reached). */
export interface FlowResources {
  target?: Target;
  /** Set while the target is being resolved, so a quit during boot can still stop the cluster. */
  targetPending?: Promise<Target>;
  session?: ConsoleSession;
  poller?: LiveCounts;
  /** Drops the session's lifecycle cleanup once the console has stopped it itself. */
  forgetCleanup?: () => void;
}

const migrationKey: BundleKey = 'migration_review';

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

function bootLine(line: string): void {
  update((state) => ({ boot: { ...state.boot, lines: [...state.boot.lines, line].slice(-50) } }));
}

/** What the flow reaches for after the first frame. Tests hand in fakes (a fake target, fake drills). */
export interface FlowDeps {
  resolveTarget(options: { db?: string; keep?: boolean; onProgress?: (line: string) => void }): Promise<Target>;
  setup(url: string, options: { embedded: boolean; yes: boolean; onProgress?: (line: string) => void }): Promise<unknown>;
  isConsentError(error: unknown): error is Error;
  createSession(options: { target: Target; breaks: ReadonlySet<BundleKey>; options: DrillOptions }): ConsoleSession;
  defaultDrillOptions: DrillOptions;
  createPoller(url: string): LiveCounts;
}

/** The real dependencies, imported only now: the target, pg, the drills, the Reconciler, the MCP SDK. */
export async function loadDeps(): Promise<FlowDeps> {
  const [{ resolveTarget }, { setup, ConsentError }, { createSession, defaultDrillOptions }] = await Promise.all([
    import('../postgres/target.js'),
    import('../postgres/setup.js'),
    import('../drills/session.js'),
  ]);
  return {
    resolveTarget,
    setup,
    isConsentError: (error): error is Error => error instanceof ConsentError,
    createSession,
    defaultDrillOptions,
    createPoller: (url) => new LiveCounts({ url }),
  };
}

export async function runFlow(
  controller: ConsoleController,
  options: FlowOptions,
  resources: FlowResources,
  load: () => Promise<FlowDeps> = loadDeps,
): Promise<void> {
  const started = Date.now();
  const ticker = setInterval(() => {
    update((state) => ({ boot: { ...state.boot, elapsedMs: Date.now() - started } }));
  }, 200);
  ticker.unref();
  let target: Target;
  try {
    bootLine(options.db || process.env.DATABASE_URL ? 'connecting to the target…' : 'starting PostgreSQL…');
    const deps = await load();
    resources.targetPending = deps.resolveTarget({ db: options.db, keep: options.keep, onProgress: bootLine });
    target = await resources.targetPending;
    resources.target = target;
    if (controller.quitting) return;
    update((state) => ({ boot: { ...state.boot, target: target.display } }));
    bootLine(`target ready: ${target.display}`);
    await setupSchema(controller, deps, target, Boolean(options.yes));
    if (controller.quitting) return;
    bootLine('loading the drills and the Reconciler…');
    const session = deps.createSession({
      target,
      breaks: new Set(options.breaks),
      options: { ...deps.defaultDrillOptions, paceMs: workerPaceMs(options, deps.defaultDrillOptions.paceMs) },
    });
    resources.session = session;
    resources.poller = deps.createPoller(target.url);
    // On a signal the lifecycle runs cleanups newest first: the session's processes stop before the cluster.
    const poller = resources.poller;
    resources.forgetCleanup = onCleanup('drill session', async () => {
      await poller.stop();
      await session.close();
    });
    await walk(controller, options, session, resources.poller, target);
  } catch (error) {
    if (error instanceof Quitting || controller.quitting) return;
    await failed(controller, error);
  } finally {
    clearInterval(ticker);
  }
}

async function setupSchema(controller: ConsoleController, deps: FlowDeps, target: Target, consented: boolean): Promise<void> {
  let yes = consented;
  for (;;) {
    try {
      await deps.setup(target.url, { embedded: target.kind === 'embedded', yes, onProgress: bootLine });
      return;
    } catch (error) {
      if (!deps.isConsentError(error) || yes) throw error;
      update((state) => ({ screen: { name: 'consent' }, boot: { ...state.boot, consent: error.message } }));
      const agreed = await controller.wait('consent');
      if (!agreed) {
        bootLine('refused: the target was left untouched');
        controller.finish(1);
        throw new Quitting('consent refused');
      }
      yes = true;
      bootLine('consent given: installing the reference schema');
    }
  }
}

async function walk(
  controller: ConsoleController,
  options: FlowOptions,
  session: ConsoleSession,
  poller: LiveCounts,
  target: Target,
): Promise<void> {
  const { summarise } = await import('../drills/runner.js');
  session.processes.subscribe((event) =>
    event.type === 'process' ? upsertProcess(event.process) : processLine(event.name, event.line),
  );
  const emit = (event: RunnerEvent) => {
    applyRunnerEvent(event);
    if (event.type === 'tables') poller.setTables(event.tables);
  };
  const operator = controller.operator;
  const runOne = async (drill: Drill, broken: boolean): Promise<DrillResult> => {
    // CREATE DATABASE ... TEMPLATE <target> needs the target free of other sessions: our poller's included.
    const branching = drill.key === migrationKey;
    if (branching) await poller.pause('paused while the migration drill branches the target (CREATE DATABASE … TEMPLATE)');
    try {
      return await session.runOne(drill.key, broken, operator, emit);
    } finally {
      if (branching) poller.resume();
    }
  };
  const breaks = new Set(options.breaks);
  const bundlePath = options.out ?? defaultBundlePath();
  update((state) => ({
    drills: drillRows(session.drills.map(summarise)),
    boot: { ...state.boot, phase: 'ready' },
    screen: state.screen.name === 'help' ? { name: 'help', back: { name: 'list' } } : { name: 'list' },
  }));
  appendHistory([{ text: `sor-drills · target ${target.display} · nine drills, in order`, tone: 'accent' }]);

  const results: DrillResult[] = [];
  for (const [index, drill] of session.drills.entries()) {
    update({
      nextIndex: index,
      current: {
        key: drill.key,
        phase: 'ready',
        broken: breaks.has(drill.key),
        mastery: false,
        steps: stepRows(drill.steps.map((step) => ({ ...step, sql: step.sql ?? [] }))),
        stepIndex: -1,
        sql: [],
        tables: [...drill.tables],
        evidenceDirs: [],
      },
      ask: undefined,
      notice: undefined,
    });
    const { broken } = await controller.wait('start');
    results.push(await runOne(drill, broken));
    await controller.wait('advance');
  }

  const resultsOf: DrillResult[][] = [results];
  const bundleDrafts = await decisionDrafts(session.drills, target.display);
  controller.attach({ save: (index) => saveDecision(index, resultsOf[index], session.drills, target.display) });
  // The gate is for a clean sweep: every drill passed on the first try, none with its break.
  const first = bundleDrafts('run', results, bundlePath);
  const allPassed = first.decision === 'PERMITTED' && results.every((result) => !result.broken);
  update({
    runFinished: true,
    decisions: [first],
    activeDecision: 0,
    mastery: { offered: allPassed, selected: 2, running: false },
    screen: { name: 'decision' },
  });
  appendHistory([{ text: `decision drafted: ${first.decision}`, tone: 'accent' }]);

  // The mastery gate: all nine passed on the first try, so repeat one with its break.
  for (;;) {
    const key = await controller.wait('mastery');
    const drill = session.drills.find((candidate) => candidate.key === key);
    if (!drill) continue;
    update({ mastery: { ...getState().mastery, running: true } });
    const result = await runOne(drill, true);
    await controller.wait('advance');
    const second = results.map((candidate) => (candidate.key === key ? result : candidate));
    resultsOf[1] = second;
    update((state) => ({
      decisions: [...state.decisions.slice(0, 1), bundleDrafts('mastery', second, masteryPath(bundlePath))],
      activeDecision: 1,
      mastery: { ...state.mastery, running: false, offered: false },
      screen: { name: 'decision' },
    }));
  }
}

/** A failure the console cannot go on from: shown on screen, then the console ends. */
async function failed(controller: ConsoleController, error: unknown): Promise<void> {
  const { describeFailure } = await import('../cli/errors.js').catch(() => ({
    describeFailure: (cause: unknown) => ({ code: 70, message: errorMessage(cause) }),
  }));
  const { code, message } = describeFailure(error);
  update((state) => ({
    boot: { ...state.boot, phase: 'failed', error: message },
    screen: { name: 'boot' },
  }));
  controller.finish(code);
}
