// The console's one state machine. The key router turns each key into an
// intent (src/console/keys.ts); dispatch() is the only way in. An intent either
// moves what is shown (src/console/navigation.ts, a pure change of the store) or
// drives the run through these stages:
//
//   booting ──► consent ──y──► booting            n: exit 1, nothing written
//      │
//      └─► ready(i) ──enter / b──► running(i) ──► finished(i) ──enter──► ready(i+1)
//                                                   │ after the ninth
//                                                   ▼
//        finished(mastery) ◄── running(mastery) ◄──enter── decision ──m──► (mastery screen)
//                │                                            │
//                └──enter──► decision (with the second,       └──f──► the fleet drill (src/console/fleet.ts):
//                            BLOCKED bundle)                          consent on a URL target, then its run
//
// The effects of a stage (starting the target, preparing it, running a drill,
// drafting the decision) run one after another (perform()), each checking on
// its turn that the stage it answers still holds, so a key pressed while a
// drill is settling is handled once it has settled, never twice. The store
// holds what is shown; the stage, the session and the results are the machine's
// own. Nothing here knows one drill from another: a drill that needs the target
// to itself says so (needsExclusiveDatabase) and the live-count poller closes its
// connection for it.
import { bundleKeys, type BundleKey, type Drill, type DrillResult, type Proposal, type RunnerEvent } from '../drills/types.js';
import { physicalTable, stepSummary } from '../drills/runner.js';
import { type GivenProfile, type ProfileInUse, profileNames, referenceProfile } from '../postgres/profile/index.js';
import { defaultRoles, type Roles } from '../postgres/roles.js';
import { describeFailure, errorMessage } from '../postgres/errors.js';
import { exitCodes, type ExitCode } from '../util/exit-codes.js';
import type { Target } from '../postgres/target.js';
import { onCleanup } from '../util/lifecycle.js';
import { activeDecision, appendHistory, drillRunning, fleetRunning, getState, update, type ConsoleState } from '../store.js';
import { decisionDrafts, defaultBundlePath, masteryPath, packDecisions, saveDecision } from './decision.js';
import { loadDeps, raceHoldMs, workerPaceMs, type CapstoneStore, type ConsoleDeps, type ConsoleSession, type Poller } from './deps.js';
import type { CapstoneState } from './capstone.js';
import { applyProcessEvent, applyRunnerEvent, drillRows, stepRows } from './events.js';
import type { Intent } from './intents.js';
import { isNavigation, navigate } from './navigation.js';
import { createTuiOperator, type TuiOperator } from './operator.js';
import { consoleFleetOptions, fleetConsentQuestion, fleetStarting, runConsoleFleet, type ConsoleFleetSettings } from './fleet.js';

/** The reference profile's names: the steps' statements before a session knows its own. */
const referenceNames = profileNames(referenceProfile);

export interface ConsoleOptions {
  db?: string;
  keep?: boolean;
  /** Consent given up front (--yes): no question before writing into a URL target. */
  yes?: boolean;
  /** Autoplay: the console presses the operator's keys itself. */
  auto?: boolean;
  /** Autoplay's pause between key presses, in ms (0: as fast as it can). */
  paceMs?: number;
  /** Where the bundle is saved (autoplay saves it there and exits). */
  out?: string;
  breaks: readonly BundleKey[];
  /** --profile: the target's names, read and parsed (its fit is checked once the target is reached). */
  profile?: GivenProfile;
  /** The role flags (the profile's roles when one is given). */
  roles?: Roles;
  /** The fleet drill offered after the decision: its size (tests shrink it), where its files go, its Worker login. */
  fleet?: ConsoleFleetSettings;
}

/** What the console started, for the caller to stop whatever stage the run reached. */
export interface ConsoleResources {
  target?: Target;
  /** Set while the target is being resolved, so a quit during boot can still stop the cluster. */
  targetPending?: Promise<Target>;
  session?: ConsoleSession;
  poller?: Poller;
  /** The capstone's files, tidied once the target is closed. */
  capstone?: CapstoneStore;
  /** Drops the session's lifecycle cleanup once the console has stopped it itself. */
  forgetCleanup?: () => void;
}

/** Where the run is: what the machine waits for next. */
type Stage =
  | { name: 'booting' }
  | { name: 'consent' }
  | { name: 'resume' }
  | { name: 'ready'; index: number }
  | { name: 'running'; key: BundleKey; mastery: boolean }
  | { name: 'finished'; key: BundleKey; mastery: boolean }
  | { name: 'decision' };

function bootLine(line: string): void {
  update((state) => ({ boot: { ...state.boot, lines: [...state.boot.lines, line].slice(-50) } }));
}

export class ConsoleController {
  readonly operator: TuiOperator;
  /** Resolves with the exit code once the console ends (the operator quits, or a failure ends it). */
  readonly quit: Promise<number>;
  quitting = false;
  /** Set while the embedded cluster is kept for an unfinished capstone (its data outlives the console). */
  keptCapstone = false;
  readonly resources: ConsoleResources = {};
  private stage: Stage = { name: 'booting' };
  private deps: ConsoleDeps | undefined;
  /** Results by decision: [0] the run's, in drill order; [1] the mastery gate's (the run's with one repeated). */
  private readonly results: DrillResult[][] = [[]];
  private bundlePath = '';
  /** The capstone saved in .sor-drills/ for this target (a person's console only). */
  private capstone: CapstoneStore | undefined;
  /** The saved capstone being resumed, until its results are restored. */
  private saved: CapstoneState | undefined;
  private capstoneStarted: string | undefined;
  /** The drills a capstone has (the resume prompt's "k of 9"). */
  private readonly drillCount = bundleKeys.length;
  private startedAt = Date.now();
  /** The effects in progress, one after another. */
  private work: Promise<void> = Promise.resolve();
  /** Stops the fleet drill while it runs (the operator quit). */
  private fleetAbort: AbortController | undefined;
  private end!: (code: number) => void;

  constructor(
    private readonly options: ConsoleOptions = { breaks: [] },
    private readonly load: () => Promise<ConsoleDeps> = loadDeps,
    operator: TuiOperator = createTuiOperator(),
  ) {
    this.operator = operator;
    this.quit = new Promise((resolve) => {
      this.end = resolve;
    });
  }

  /** Boots: the target, its preparation, the session. Ends at the consent question or the drill list. */
  start(): Promise<void> {
    this.startedAt = Date.now();
    return this.perform(() => this.withBootClock(() => this.boot()));
  }

  /** Resolves once the effects in progress have ended (a running drill has run its own cleanups). */
  settled(): Promise<void> {
    return this.work;
  }

  dispatch = (intent: Intent): void => {
    if (isNavigation(intent)) {
      update(navigate(getState(), intent));
      return;
    }
    const state = getState();
    switch (intent.type) {
      case 'consent':
        this.answerConsent(intent.yes);
        return;
      case 'resume':
        this.answerResume(intent.yes);
        return;
      case 'start-drill':
        void this.perform(() => this.startDrill(intent.broken, Boolean(intent.rest)));
        return;
      case 'run-step':
        this.operator.runStep();
        return;
      case 'run-rest':
        // Before the drill starts: start it and run it through; while it runs: the rest of it.
        if (state.current?.phase === 'ready') void this.perform(() => this.startDrill(Boolean(state.current?.broken), true));
        else if (state.current) this.operator.runRest(state.current.key);
        return;
      case 'next-drill':
      case 'to-decision': {
        // A drill whose verdict is on screen may still be settling (its run ends just after): then queue.
        const settling = this.stage.name === 'running' && state.current?.phase === 'finished';
        if (this.stage.name === 'finished' || settling) {
          void this.perform(() => this.advance());
        } else if (intent.type === 'to-decision' && state.decisions.length > 0) {
          // From the drill list once a decision is drafted: just show it.
          update({ screen: { name: 'decision' } });
        }
        return;
      }
      case 'mastery-run':
        void this.perform(() => this.runMastery(intent.key));
        return;
      case 'operator':
        void this.operator.satisfy(intent.kind);
        return;
      case 'kill':
      case 'restart':
        void this.processAction(intent.type, state);
        return;
      case 'save':
        void this.save(state);
        return;
      case 'pack':
        void this.perform(() => this.pack());
        return;
      case 'fleet':
        this.offerFleet(state);
        return;
      case 'fleet-consent':
        if (state.fleet.phase !== 'consent') return;
        if (intent.yes) this.startFleet();
        else update({ screen: { name: 'decision' }, fleet: { ...state.fleet, phase: 'idle', question: undefined } });
        return;
      case 'quit':
        if (drillRunning(state)) {
          update({ confirmQuit: `Drill ${state.current?.key} is running: quit, stopping it and every process? (y/n)` });
        } else if (fleetRunning(state)) {
          update({ confirmQuit: 'The fleet drill is running: quit, stopping it and its Workers? (y/n)' });
        } else if (state.decisions.some((draft) => draft.dirty)) {
          update({ confirmQuit: 'The bundle is not saved (ctrl+s saves it): quit anyway? (y/n)' });
        } else {
          this.finish(this.exitCode(state));
        }
        return;
      case 'confirm-quit':
        if (intent.yes) this.finish(drillRunning(state) || fleetRunning(state) ? exitCodes.interrupted : this.exitCode(state));
        else update({ confirmQuit: undefined });
        return;
      case 'interrupt':
        this.finish(exitCodes.interrupted);
        return;
    }
  };

  /** Ends the console with this exit code; the caller stops what it started (resources). */
  finish(code: ExitCode): void {
    if (this.quitting) return;
    this.quitting = true;
    update({ confirmQuit: undefined, screen: { name: 'exiting' }, exiting: { lines: ['stopping the processes and PostgreSQL…'] } });
    this.operator.abandon('the operator quit the console');
    // The fleet's run stops its processes before it returns (settled() waits for it).
    this.fleetAbort?.abort(new Error('the operator quit the console'));
    this.end(code);
  }

  /** 0 PERMITTED, 1 BLOCKED once the run reached its decision; 130 before that. */
  exitCode(state: ConsoleState = getState()): ExitCode {
    const decision = state.decisions.find((draft) => draft.kind === 'run');
    if (!decision) return exitCodes.interrupted;
    return decision.decision === 'PERMITTED' ? exitCodes.ok : exitCodes.blocked;
  }

  /** Queues an effect after the ones in progress; a failure ends the console, shown on the boot screen. */
  private perform(task: () => Promise<void>): Promise<void> {
    this.work = this.work.then(async () => {
      if (this.quitting) return;
      try {
        await task();
      } catch (error) {
        if (!this.quitting) this.fail(error);
      }
    });
    return this.work;
  }

  private fail(error: unknown): void {
    const { code, message } = describeFailure(error);
    update((state) => ({ boot: { ...state.boot, phase: 'failed', error: message }, screen: { name: 'boot' } }));
    this.finish(code);
  }

  /** The boot screen's clock runs while the target is being made ready. */
  private async withBootClock(task: () => Promise<void>): Promise<void> {
    const ticker = setInterval(() => {
      update((state) => ({ boot: { ...state.boot, elapsedMs: Date.now() - this.startedAt } }));
    }, 200);
    ticker.unref();
    try {
      await task();
    } finally {
      clearInterval(ticker);
    }
  }

  private async boot(): Promise<void> {
    const { db, keep } = this.options;
    const deps = await this.load();
    this.deps = deps;
    // A person's capstone is kept per target in .sor-drills/ (autoplay and --keep keep none).
    if (!this.options.auto && !keep && deps.openCapstone) {
      const capstone = await deps.openCapstone({ db, profile: this.options.profile?.source });
      this.capstone = capstone;
      this.resources.capstone = capstone;
      const { state, ignored } = await capstone.load();
      if (ignored) bootLine(`ignored the saved capstone: ${ignored}`);
      const total = this.drillCount;
      if (state && state.results.length > 0 && state.results.length < total) {
        this.saved = state;
        this.stage = { name: 'resume' };
        update({
          screen: { name: 'resume' },
          resume: { done: state.results.length, total, target: state.target, updatedAt: state.updatedAt },
        });
        return;
      }
      // A finished or empty capstone has nothing to resume.
      if (state) await capstone.discard();
    }
    await this.reach();
  }

  private answerResume(yes: boolean): void {
    if (this.stage.name !== 'resume') return;
    this.stage = { name: 'booting' };
    update({ screen: { name: 'boot' }, resume: undefined });
    void this.perform(() =>
      this.withBootClock(async () => {
        if (!yes) {
          this.saved = undefined;
          await this.capstone?.discard();
          bootLine('started the capstone over: the saved one was removed');
        }
        await this.reach();
      }),
    );
  }

  /** The target (the capstone's kept cluster, when one is resumed), then its preparation. */
  private async reach(): Promise<void> {
    const { db, keep } = this.options;
    const deps = this.need(this.deps, 'the console dependencies');
    bootLine(db || process.env.DATABASE_URL ? 'connecting to the target…' : 'starting PostgreSQL…');
    this.resources.targetPending = deps.resolveTarget({ db, keep, onProgress: bootLine, home: this.capstone?.home });
    const target = await this.resources.targetPending;
    this.resources.target = target;
    // The embedded cluster is kept only for a capstone with finished drills (saveCapstone keeps it from then on).
    this.retainCluster(Boolean(this.saved));
    if (this.quitting) return;
    update((state) => ({ boot: { ...state.boot, target: target.display } }));
    bootLine(`target ready: ${target.display}`);
    await this.prepare(Boolean(this.options.yes));
  }

  /** The same preparation as `sor-drills run`: without consent a URL target is only read. */
  private async prepare(consent: boolean): Promise<void> {
    const deps = this.need(this.deps, 'the console dependencies');
    const target = this.need(this.resources.target, 'the target');
    const preparation = await deps.prepareTarget(target, { consent, onProgress: bootLine, profile: this.options.profile?.source });
    if (this.quitting) return;
    if (preparation.kind === 'needs-consent') {
      this.stage = { name: 'consent' };
      update((state) => ({
        screen: { name: 'consent' },
        boot: { ...state.boot, consent: { question: preparation.why, installs: preparation.installs } },
      }));
      return;
    }
    // A given profile that does not fit the target ends the boot with one line naming the key (exit 2).
    const profile = deps.resolveProfile ? await deps.resolveProfile(target, this.options.profile, this.options.roles) : undefined;
    if (this.quitting) return;
    if (profile?.given) bootLine(`profile ${profile.source} fits the target`);
    this.openSession(deps, target, profile);
  }

  private answerConsent(yes: boolean): void {
    if (this.stage.name !== 'consent') return;
    if (!yes) {
      bootLine('refused: the target was left untouched');
      this.finish(exitCodes.blocked);
      return;
    }
    const installs = getState().boot.consent?.installs;
    this.stage = { name: 'booting' };
    update((state) => ({ screen: { name: 'boot' }, boot: { ...state.boot, consent: undefined } }));
    bootLine(installs ? 'consent given: installing the reference schema' : 'consent given: testing the schema as it is');
    void this.perform(() => this.withBootClock(() => this.prepare(true)));
  }

  private openSession(deps: ConsoleDeps, target: Target, profile: ProfileInUse | undefined): void {
    bootLine('loading the drills and the Reconciler…');
    const session = deps.createSession({
      target,
      profile,
      roles: this.options.roles,
      breaks: new Set(this.options.breaks),
      options: {
        ...deps.defaultDrillOptions,
        paceMs: workerPaceMs(this.options, deps.defaultDrillOptions.paceMs),
        claimHoldMs: raceHoldMs(this.options, deps.defaultDrillOptions.claimHoldMs),
      },
    });
    const poller = deps.createPoller(target.url);
    this.resources.session = session;
    this.resources.poller = poller;
    // On a signal the lifecycle runs cleanups newest first: the session's processes stop before the cluster.
    this.resources.forgetCleanup = onCleanup('drill session', async () => {
      await poller.stop();
      await session.close();
    });
    // The one way process events reach the store, for the whole session (between drills too).
    session.processes.subscribe(applyProcessEvent);
    this.bundlePath = this.options.out ?? defaultBundlePath();
    update((state) => ({
      drills: drillRows(session.drills),
      boot: { ...state.boot, phase: 'ready' },
      screen: state.screen.name === 'help' ? { name: 'help', back: { name: 'list' } } : { name: 'list' },
    }));
    appendHistory([{ text: `sor-drills · target ${target.display} · nine drills, in order`, tone: 'accent' }]);
    this.ready(this.restore(session));
  }

  /** A resumed capstone's finished drills, with their verdicts and evidence; returns the drill to show next. */
  private restore(session: ConsoleSession): number {
    const saved = this.saved;
    this.saved = undefined;
    if (!saved) return 0;
    this.capstoneStarted = saved.startedAt;
    const done = session.drills.findIndex((drill, index) => saved.results[index]?.key !== drill.key);
    const count = done < 0 ? session.drills.length : done;
    const results = saved.results.slice(0, count);
    this.results[0] = [...results];
    update((state) => ({
      drills: state.drills.map((row, index) => {
        const result = results[index];
        if (!result) return row;
        return {
          ...row,
          status: result.verdict === 'pass' ? ('pass' as const) : ('fail' as const),
          evidence: result.verdict === 'pass' ? result.evidence : (result.reason ?? result.evidence),
          durationMs: result.durationMs,
          broken: result.broken,
        };
      }),
    }));
    appendHistory([
      {
        text: `resumed the capstone saved ${saved.updatedAt}: ${count} of ${session.drills.length} drills done; drill ${count + 1} starts from its first step`,
        tone: 'accent',
      },
    ]);
    return Math.min(count, session.drills.length - 1);
  }

  /** Records the capstone's finished drills (in order, up to the first not run) for a later resume. */
  private async saveCapstone(): Promise<void> {
    const capstone = this.capstone;
    const session = this.resources.session;
    if (!capstone || !session) return;
    const results: DrillResult[] = [];
    for (const result of this.results[0]!) {
      if (!result) break;
      results.push(result);
    }
    const now = new Date().toISOString();
    this.capstoneStarted ??= now;
    try {
      await capstone.save({
        version: 1,
        target: this.need(this.resources.target, 'the target').display,
        profile: this.options.profile?.source,
        startedAt: this.capstoneStarted,
        updatedAt: now,
        breaks: [...this.options.breaks],
        results,
      });
      // Unfinished: the embedded cluster's data directory is kept when the console ends.
      this.retainCluster(results.length < session.drills.length);
    } catch (error) {
      update({ notice: { text: `the capstone could not be saved in .sor-drills/: ${errorMessage(error)}`, tone: 'warn' } });
    }
  }

  /** Shows drill `index`, not started: enter starts it, b starts it with its break. */
  private ready(index: number): void {
    const drill = this.drill(this.session().drills[index]?.key);
    this.stage = { name: 'ready', index };
    update({
      nextIndex: index,
      current: {
        key: drill.key,
        phase: 'ready',
        broken: this.options.breaks.includes(drill.key),
        mastery: false,
        steps: stepRows(drill.steps.map((step) => stepSummary(step, this.session().names ?? referenceNames))),
        stepIndex: -1,
        sql: [],
        sqlPrinted: 0,
        tables: drill.tables.map((table) => physicalTable(this.session().names?.profile ?? referenceProfile, table)),
        evidenceDirs: [],
      },
      ask: undefined,
      notice: undefined,
      hint: false,
      panel: 'counts',
      panelPinned: false,
    });
    void this.loadProposal(drill, this.options.breaks.includes(drill.key));
  }

  /** What the drill reviews (drill 1's migration), read from its file: shown before the drill runs. */
  private async loadProposal(drill: Drill, broken: boolean): Promise<void> {
    if (!drill.proposal) return;
    const session = this.session();
    const options = session.options ?? this.need(this.deps, 'the console dependencies').defaultDrillOptions;
    let proposal: Proposal;
    try {
      proposal = await drill.proposal(options, broken);
    } catch (error) {
      proposal = { file: '', sections: [], error: errorMessage(error) };
    }
    update((state) =>
      state.current?.key === drill.key && state.current.phase !== 'finished'
        ? { current: { ...state.current, proposal }, ...(state.panelPinned ? {} : { panel: 'proposal' as const }) }
        : {},
    );
  }

  private async startDrill(broken: boolean, rest: boolean): Promise<void> {
    if (this.stage.name !== 'ready') return;
    const index = this.stage.index;
    const drill = this.drill(this.session().drills[index]?.key);
    // The key that starts the drill runs its first step (a: all of them).
    if (rest) this.operator.runRest(drill.key);
    else this.operator.grant(drill.key);
    const shown = getState().current;
    if (shown?.proposal && shown.broken !== broken) void this.loadProposal(drill, broken);
    update((state) => ({ screen: { name: 'drill' }, current: state.current ? { ...state.current, broken } : undefined }));
    const result = await this.runDrill(drill, broken, false);
    // A drill stopped by quitting is not finished: a resumed capstone starts it again.
    if (this.quitting) return;
    this.results[0]![index] = result;
    await this.saveCapstone();
  }

  private async runMastery(key: BundleKey): Promise<void> {
    const state = getState();
    if (this.stage.name !== 'decision' || !state.mastery.offered || state.mastery.running) return;
    const drill = this.drill(key);
    this.operator.grant(key);
    update({ mastery: { ...state.mastery, running: true }, screen: { name: 'drill' } });
    const result = await this.runDrill(drill, true, true);
    this.results[1] = this.results[0]!.map((candidate) => (candidate.key === key ? result : candidate));
  }

  private async runDrill(drill: Drill, broken: boolean, mastery: boolean): Promise<DrillResult> {
    const session = this.session();
    const poller = this.need(this.resources.poller, 'the live-count poller');
    this.stage = { name: 'running', key: drill.key, mastery };
    // A drill that needs no other session on the target (it says so in its own data) gets the poller's closed.
    const exclusive = Boolean(drill.needsExclusiveDatabase);
    if (exclusive) await poller.pause(`paused while ${drill.key} needs the target to itself (no other session may be connected)`);
    let result: DrillResult;
    try {
      result = await session.runOne(drill.key, broken, this.operator, this.onRunnerEvent);
    } finally {
      if (exclusive) poller.resume();
    }
    this.stage = { name: 'finished', key: drill.key, mastery };
    return result;
  }

  private readonly onRunnerEvent = (event: RunnerEvent): void => {
    applyRunnerEvent(event);
    if (event.type === 'tables') this.resources.poller?.setTables(event.tables);
  };

  /** After a finished drill: the next drill, or the decision after the ninth (or after the mastery gate's). */
  private async advance(): Promise<void> {
    const stage = this.stage;
    if (stage.name !== 'finished') return;
    const drills = this.session().drills;
    const index = drills.findIndex((drill) => drill.key === stage.key);
    if (!stage.mastery && index < drills.length - 1) {
      this.ready(index + 1);
      return;
    }
    const target = this.need(this.resources.target, 'the target');
    const drafts = await decisionDrafts(drills, target.display, this.resources.session?.names);
    if (stage.mastery) {
      const second = drafts('mastery', this.results[1] ?? [], masteryPath(this.bundlePath));
      this.stage = { name: 'decision' };
      update((state) => ({
        decisions: [...state.decisions.slice(0, 1), second],
        activeDecision: 1,
        mastery: { ...state.mastery, running: false, offered: false },
        screen: { name: 'decision' },
      }));
      return;
    }
    const results = this.results[0]!;
    const first = drafts('run', results, this.bundlePath);
    // The gate is for a clean sweep: every drill passed on the first try, none with its break.
    const allPassed = first.decision === 'PERMITTED' && results.every((result) => !result.broken);
    this.stage = { name: 'decision' };
    // The capstone is finished: nothing to resume, and its embedded cluster goes when the console ends.
    await this.finishCapstone();
    const fleet = consoleFleetOptions(this.options.fleet?.options);
    update((state) => ({
      runFinished: true,
      decisions: [first],
      activeDecision: 0,
      mastery: { offered: allPassed, selected: 2, running: false },
      // The fleet seeds and checks the reference schema's own tables: not offered on a target named by a profile.
      fleet: { ...state.fleet, offered: !this.options.profile, workers: fleet.workers, transactions: fleet.transactions },
      screen: { name: 'decision' },
    }));
    appendHistory([{ text: `decision drafted: ${first.decision}`, tone: 'accent' }]);
  }

  /** Whether the embedded cluster's data is kept when the console ends (an unfinished capstone's). */
  private retainCluster(yes: boolean): void {
    const target = this.resources.target;
    if (!target?.retain) return;
    target.retain(yes);
    this.keptCapstone = yes;
  }

  private async finishCapstone(): Promise<void> {
    const capstone = this.capstone;
    if (!capstone) return;
    this.capstone = undefined;
    this.retainCluster(false);
    try {
      await capstone.finish();
    } catch (error) {
      update({ notice: { text: `the finished capstone could not be removed from .sor-drills/: ${errorMessage(error)}`, tone: 'warn' } });
    }
  }

  /** f on the decision screen: the fleet at once on the embedded cluster, else its consent question first. */
  private offerFleet(state: ConsoleState): void {
    const target = this.resources.target;
    if (this.stage.name !== 'decision' || !state.fleet.offered || fleetRunning(state) || !target) return;
    if (target.kind === 'embedded') {
      this.startFleet();
      return;
    }
    const options = consoleFleetOptions(this.options.fleet?.options);
    update({
      screen: { name: 'fleet' },
      fleet: {
        ...fleetStarting(state, options),
        phase: 'consent',
        question: fleetConsentQuestion(target.display, options),
      },
    });
  }

  private startFleet(): void {
    const target = this.resources.target;
    if (!target || fleetRunning(getState())) return;
    const options = consoleFleetOptions(this.options.fleet?.options);
    const abort = new AbortController();
    this.fleetAbort = abort;
    update((state) => ({ screen: { name: 'fleet' }, fleet: fleetStarting(state, options) }));
    void this.perform(async () => {
      try {
        await runConsoleFleet({
          target,
          roles: this.options.roles ?? defaultRoles,
          options,
          settings: this.options.fleet ?? {},
          signal: abort.signal,
        });
      } finally {
        if (this.fleetAbort === abort) this.fleetAbort = undefined;
      }
    });
  }

  private async pack(): Promise<void> {
    const { session, target } = this.resources;
    if (!session || !target) return;
    await packDecisions((index) => saveDecision(index, this.results[index], session.drills, target.display));
  }

  private async save(state: ConsoleState): Promise<void> {
    const draft = activeDecision(state);
    const { session, target } = this.resources;
    if (!draft || draft.saving || !session || !target) return;
    await saveDecision(state.activeDecision, this.results[state.activeDecision], session.drills, target.display);
  }

  private async processAction(kind: 'kill' | 'restart', state: ConsoleState): Promise<void> {
    const ask = state.ask && !state.ask.performing ? state.ask.ask : undefined;
    const selected = state.processes[state.selected];
    // The ask's process is the one to act on unless the operator deliberately selected another.
    if (ask?.kind === kind && (!selected || selected.name === ask.process || !state.processes.some((p) => p.name === ask.process))) {
      await this.operator.satisfy(kind);
      return;
    }
    const processes = this.resources.session?.processes;
    if (!selected || !processes) {
      update({ notice: { text: `no process to ${kind}`, tone: 'warn' } });
      return;
    }
    update({ notice: { text: `${kind === 'kill' ? 'killing' : 'restarting'} ${selected.name}…`, tone: 'warn' } });
    try {
      if (kind === 'kill') await processes.kill(selected.name, 'SIGKILL');
      else await processes.restart(selected.name);
      update({ notice: { text: `${kind === 'kill' ? 'killed' : 'restarted'} ${selected.name}`, tone: 'plain' } });
    } catch (error) {
      update({ notice: { text: `${kind} ${selected.name} failed: ${errorMessage(error)}`, tone: 'bad' } });
    }
  }

  private session(): ConsoleSession {
    return this.need(this.resources.session, 'the drill session');
  }

  private drill(key: BundleKey | undefined): Drill {
    return this.need(
      this.session().drills.find((drill) => drill.key === key),
      `drill ${key ?? '(none)'}`,
    );
  }

  private need<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new Error(`internal: ${what} is not there yet`);
    return value;
  }
}
