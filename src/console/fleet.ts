// The fleet drill in the console, offered after the decision ("beyond the
// capstone"): the capstone's third prompt (what changes with 100 Workers against
// one database?) run on the console's own target. The controller decides when it
// runs; this module runs it (src/drills/fleet/run.ts), turns its events into the
// store's fleet view, and writes the same two files as `sor-drills fleet`.
import type { FleetOptions } from '../drills/fleet/plan.js';
import { defaultHosts, fleetDefaults, planProblems } from '../drills/fleet/plan.js';
import type { FleetEvent } from '../drills/fleet/run.js';
import type { Roles } from '../postgres/roles.js';
import type { Target } from '../postgres/target.js';
import { errorMessage } from '../postgres/errors.js';
import { shownPath } from '../util/paths.js';
import { appendHistory, update, type ConsoleState, type FleetView } from '../store.js';

/** How the console's fleet runs: the CLI's defaults unless a test shrinks it. */
export interface ConsoleFleetSettings {
  /** The fleet's size and shape (tests: a few Workers); by default 100 Workers over 10,000 transactions. */
  options?: Partial<FleetOptions>;
  /** Where the JSON and the report go (default: evidence/ in the working directory, as the CLI). */
  dir?: string;
  /** How the Worker side logs in (tests: a throwaway member of the worker role); by default the drills' rule. */
  workerUrl?: () => Promise<string>;
}

/** The fleet's options: the CLI's defaults (src/cli/fleet-command.ts) with the given ones over them. */
export function consoleFleetOptions(given: Partial<FleetOptions> = {}): FleetOptions {
  const workers = given.workers ?? fleetDefaults.workers;
  return {
    workers,
    transactions: fleetDefaults.transactions,
    tenants: Math.min(fleetDefaults.tenants, workers),
    kill: fleetDefaults.kill,
    skipLocked: true,
    claimWithoutLock: false,
    hosts: defaultHosts(workers),
    toolServers: fleetDefaults.toolServers,
    poolSize: fleetDefaults.poolSize,
    turns: fleetDefaults.turns,
    seed: Date.now() % 1_000_000,
    ...given,
  };
}

const count = (value: number) => value.toLocaleString('en-US');

/** The decision screen's offer. */
export function fleetOffer(fleet: Pick<FleetView, 'workers' | 'transactions'>): string {
  return `Beyond the capstone: f runs the fleet drill: ${count(fleet.workers)} Workers over ${count(fleet.transactions)} transactions on this target`;
}

/** What the console asks before the fleet writes into a target that is not its own embedded cluster. */
export function fleetConsentQuestion(display: string, options: FleetOptions): string {
  return (
    `The fleet drill writes into ${display}: ${count(options.transactions)} pending transactions over ${options.tenants} tenants of its own, ` +
    `and what ${count(options.workers)} Workers make of them (an expense and an outbox row each, and their runs, tool calls and append-only ` +
    'agent_events rows). Its rows carry the run\'s tag (fleet-...) and stay after it: the events cannot be deleted.'
  );
}

const keptLines = 12;

/** A FleetEvent into the store's fleet view. */
export function applyFleetEvent(event: FleetEvent): void {
  const line = (text: string) => update((state) => ({ fleet: { ...state.fleet, lines: [...state.fleet.lines, text].slice(-keptLines) } }));
  switch (event.type) {
    case 'phase':
      line(event.message);
      return;
    case 'kill':
      line(`SIGKILL ${event.host} (pid ${event.pid ?? '?'}) at ${event.processed} processed`);
      return;
    case 'restart':
      line(`started ${event.host} again (pid ${event.pid ?? '?'}): its Workers resume from the journal`);
      return;
    case 'progress': {
      const { processed, claimed, total, tpsNow, elapsedMs, kills } = event;
      update((state) => ({ fleet: { ...state.fleet, progress: { processed, claimed, total, tpsNow, elapsedMs, kills } } }));
      return;
    }
  }
}

/** The fleet view as a run starts. */
export function fleetStarting(state: ConsoleState, options: FleetOptions): FleetView {
  return {
    ...state.fleet,
    workers: options.workers,
    transactions: options.transactions,
    phase: 'running',
    question: undefined,
    lines: [],
    progress: undefined,
    result: undefined,
    error: undefined,
  };
}

export interface ConsoleFleetRun {
  target: Target;
  roles: Roles;
  options: FleetOptions;
  settings: ConsoleFleetSettings;
  signal: AbortSignal;
}

/**
 * Runs the fleet on the console's target, its events into the store, and writes the JSON and the
 * report as the CLI does. A failure is shown on the fleet screen (the console goes on); an abort
 * (the operator quit) ends it quietly, its processes stopped by runFleet.
 */
export async function runConsoleFleet(run: ConsoleFleetRun): Promise<void> {
  const { target, options, signal } = run;
  try {
    // The options are the CLI's defaults unless a caller shrank them: held to the CLI's rules all the same.
    const problem = planProblems(options)[0];
    if (problem) throw new Error(`the fleet's options do not fit: ${problem}`);
    const [{ runFleet }, { fleetTag }, { fleetFiles, strainedFirstLine, writeFleetFiles }, { fleetPassed, summary }] = await Promise.all([
      import('../drills/fleet/run.js'),
      import('../drills/fleet/plan.js'),
      import('../drills/fleet/files.js'),
      import('../drills/fleet/report.js'),
    ]);
    const when = new Date();
    const tag = fleetTag(when);
    const files = fleetFiles(tag, { dir: run.settings.dir });
    const main = await runFleet({
      url: target.url,
      ownCluster: target.kind === 'embedded',
      roles: run.roles,
      options,
      when,
      tag,
      logDir: files.logDir,
      workerUrl: run.settings.workerUrl,
      onEvent: applyFleetEvent,
      signal,
    });
    signal.throwIfAborted();
    const outcome = { main, target: target.display, when, command: consoleCommand(target, options) };
    const { report } = await writeFleetFiles(outcome, files);
    const figures = summary(main);
    const problems = [...main.hostFailures, ...(main.stalled ? [main.stalled] : [])];
    const result = {
      ...figures,
      held: main.history.ok,
      passed: fleetPassed(outcome),
      strained: strainedFirstLine(report),
      problems,
      json: shownPath(files.json),
      report: shownPath(files.report),
    };
    update((state) => ({ fleet: { ...state.fleet, phase: 'done', result } }));
    appendHistory([
      {
        text: `fleet drill (${figures.workers} Workers, ${figures.transactions} transactions): ${result.held ? 'history held' : 'history DID NOT hold'}: ${figures.processed}/${figures.transactions} processed, ${figures.duplicates} duplicates, ${figures.lost} lost, ${figures.lock_errors} lock errors`,
        tone: result.passed ? 'ok' : 'bad',
      },
      { text: `  figures in ${result.json}, report in ${result.report}`, tone: 'plain' },
    ]);
  } catch (error) {
    if (signal.aborted) return;
    update((state) => ({ fleet: { ...state.fleet, phase: 'failed', error: errorMessage(error) } }));
    appendHistory([{ text: `fleet drill could not run: ${errorMessage(error)}`, tone: 'bad' }]);
  }
}

/** The report's command line: the CLI command that runs the same fleet. */
function consoleCommand(target: Target, options: FleetOptions): string {
  const db = target.kind === 'url' ? ` --db ${target.display} --yes` : '';
  return `sor-drills fleet${db} --workers ${options.workers} --transactions ${options.transactions} --tenants ${options.tenants} (run from the console's decision screen)`;
}
