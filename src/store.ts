// The console's one store (zustand, vanilla). It holds serialisable data only:
// what the screens draw. Who changes it: the runner's events (src/console/events.ts),
// the console's non-UI logic (src/console/*), never a component. Screens read it
// with useConsole(selector) and send keys to the key router.
import { createStore } from 'zustand/vanilla';
import { useStore } from 'zustand';
import type { BundleKey, OperatorAsk, ProcessView, Proposal, StepHint, Verdict } from './drills/types.js';
import type { FleetSummary } from './drills/fleet/report.js';

export type PanelName = 'proposal' | 'counts' | 'diff' | 'processes';
/** The panels tab cycles through; `proposal` only for a drill that has one (drill 1). */
export const panelNames: readonly PanelName[] = ['proposal', 'counts', 'diff', 'processes'];

export function panelsOf(current: Pick<CurrentDrill, 'proposal'> | undefined): PanelName[] {
  return panelNames.filter((name) => name !== 'proposal' || current?.proposal !== undefined);
}

/** Every screen but help; help remembers which of these to go back to. */
export type MainScreen =
  | { name: 'boot' }
  | { name: 'consent' }
  | { name: 'resume' }
  | { name: 'list' }
  | { name: 'drill' }
  | { name: 'decision' }
  | { name: 'mastery' }
  | { name: 'fleet' }
  | { name: 'exiting' };

export type Screen = MainScreen | { name: 'help'; back: MainScreen };

export type Tone = 'plain' | 'dim' | 'ok' | 'bad' | 'accent' | 'warn';

export type DrillStatus = 'waiting' | 'running' | 'pass' | 'fail';

export interface DrillRow {
  key: BundleKey;
  number: number;
  title: string;
  lesson: number;
  habit: string;
  tables: string[];
  breakDescription: string;
  status: DrillStatus;
  broken: boolean;
  /** The evidence line (pass) or the reason (fail) of a finished drill. */
  evidence?: string;
  durationMs?: number;
}

export interface StepRow {
  id: string;
  title: string;
  why: string;
  sql: string[];
  operator?: OperatorAsk['kind'];
  hint?: StepHint;
  shows?: 'proposal';
  /** waiting: not reached; ready: shown, waiting for enter; running; ok or failed once run. */
  state: 'waiting' | 'ready' | 'running' | 'ok' | 'failed';
  summary?: string;
}

export interface CurrentDrill {
  key: BundleKey;
  /** ready: shown, not started (enter starts it, b starts it broken); running; finished. */
  phase: 'ready' | 'running' | 'finished';
  broken: boolean;
  /** The mastery gate's repeat of a drill (its result goes to the second bundle). */
  mastery: boolean;
  steps: StepRow[];
  /** The step shown: the one waiting for enter (state ready) or running; -1 before the drill starts. */
  stepIndex: number;
  /** What the drill reviews (drill 1's migration), read before it runs. */
  proposal?: Proposal;
  /** Statements the transcript has printed for the current step (the declared ones are printed when it ran none). */
  sqlPrinted: number;
  /** Statements the current step ran, latest last. */
  sql: string[];
  diff?: { text: string; folder: string };
  tables: string[];
  verdict?: Verdict;
  evidence?: string;
  reason?: string;
  evidenceDirs: string[];
}

export interface TableCount {
  name: string;
  count: number | null;
  /** The count when the current step began (null until read). */
  base: number | null;
}

export interface AskState {
  ask: OperatorAsk;
  performing: boolean;
  error?: string;
}

export interface HistoryLine {
  id: number;
  text: string;
  tone: Tone;
}

export interface DecisionDraft {
  kind: 'run' | 'mastery';
  decision: 'PERMITTED' | 'BLOCKED';
  /** The bundle's JSON object as ordered entries. */
  bundle: Array<[string, string]>;
  passed: number;
  text: string;
  cursor: number;
  editing: boolean;
  /** Where ctrl+s writes. */
  path: string;
  savedPath?: string;
  saveError?: string;
  saving: boolean;
  /** Edited (or never saved) since the last save. */
  dirty: boolean;
}

/** The fleet drill's figures at the end of its run, as the fleet screen shows them (src/console/fleet.ts). */
export interface FleetResult extends Omit<FleetSummary, 'workers'> {
  /** The history check held (every transaction processed exactly once, no lock errors). */
  held: boolean;
  /** The drill passed: the history held, no Worker host failed, the run did not stall. */
  passed: boolean;
  /** The report's "Strained first" line. */
  strained?: string;
  /** Why it failed besides the history (a Worker host failed, the run stalled). */
  problems: string[];
  /** Where the JSON and the report were written, as the console shows paths. */
  json: string;
  report: string;
}

/** The fleet drill, offered after the decision ("beyond the capstone"). */
export interface FleetView {
  offered: boolean;
  workers: number;
  transactions: number;
  /** idle: not run (or consent refused); consent: asking before writing into a URL target. */
  phase: 'idle' | 'consent' | 'running' | 'done' | 'failed';
  /** The consent question (phase consent). */
  question?: string;
  /** The run's phase, kill and restart lines, latest last. */
  lines: string[];
  progress?: { processed: number; claimed: number; total: number; tpsNow: number; elapsedMs: number; kills: number };
  result?: FleetResult;
  error?: string;
}

export interface ConsoleState {
  screen: Screen;
  color: boolean;
  terminal: { columns: number; rows: number };
  auto: boolean;
  boot: {
    target: string;
    lines: string[];
    phase: 'starting' | 'ready' | 'failed';
    error?: string;
    elapsedMs: number;
    /** Set while the console asks before writing into a target that is not its own embedded cluster. */
    consent?: {
      /** One line: the target, what it holds, and why writing into it is for keeps. */
      question: string;
      /** Whether y installs the reference schema (else the drills test what is there as it is). */
      installs: boolean;
    };
  };
  drills: DrillRow[];
  /** Index of the drill that runs next (or is running). */
  nextIndex: number;
  current?: CurrentDrill;
  counts: { tables: TableCount[]; paused: boolean; note?: string; error?: string };
  /** The Reconciler's processes, as the supervisor reports them (state is its ProcessState). */
  processes: ProcessView[];
  selected: number;
  diffScroll: number;
  helpScroll: number;
  panel: PanelName;
  /** Set when the operator switched the panel by hand during this drill (no automatic switching then). */
  panelPinned: boolean;
  ask?: AskState;
  /** Whether the current step's hint (h) is open. */
  hint: boolean;
  /** The saved capstone the console offers to resume (enter resumes, n starts over). */
  resume?: { done: number; total: number; target: string; updatedAt: string };
  notice?: { text: string; tone: Tone };
  history: HistoryLine[];
  runFinished: boolean;
  decisions: DecisionDraft[];
  activeDecision: number;
  mastery: { offered: boolean; selected: number; running: boolean };
  fleet: FleetView;
  confirmQuit?: string;
  exiting: { lines: string[] };
}

export function initialState(): ConsoleState {
  return {
    screen: { name: 'boot' },
    color: true,
    terminal: { columns: 100, rows: 40 },
    auto: false,
    boot: { target: '', lines: [], phase: 'starting', elapsedMs: 0 },
    drills: [],
    nextIndex: 0,
    current: undefined,
    counts: { tables: [], paused: false },
    processes: [],
    selected: 0,
    diffScroll: 0,
    helpScroll: 0,
    panel: 'counts',
    panelPinned: false,
    ask: undefined,
    hint: false,
    resume: undefined,
    notice: undefined,
    history: [],
    runFinished: false,
    decisions: [],
    activeDecision: 0,
    mastery: { offered: false, selected: 0, running: false },
    fleet: { offered: false, workers: 100, transactions: 10_000, phase: 'idle', lines: [] },
    confirmQuit: undefined,
    exiting: { lines: [] },
  };
}

export const store = createStore<ConsoleState>(() => initialState());

/** Back to the initial state (tests; a fresh console). */
export function resetStore(overrides: Partial<ConsoleState> = {}): void {
  store.setState({ ...initialState(), ...overrides }, true);
  historyId = 0;
}

export function getState(): ConsoleState {
  return store.getState();
}

/** Merges a change into the state; an empty change notifies nobody. */
export function update(change: Partial<ConsoleState> | ((state: ConsoleState) => Partial<ConsoleState>)): void {
  const partial = typeof change === 'function' ? change(store.getState()) : change;
  if (Object.keys(partial).length > 0) store.setState(partial);
}

let historyId = 0;

/** Appends lines to the transcript that <Static> prints above the live region. */
export function appendHistory(lines: Array<{ text: string; tone?: Tone }>): void {
  if (lines.length === 0) return;
  store.setState((state) => ({
    history: [...state.history, ...lines.map((line) => ({ id: ++historyId, text: line.text, tone: line.tone ?? 'plain' }))],
  }));
}

/** Screens read the store through this. Select primitives or existing objects, never build new ones. */
export function useConsole<T>(selector: (state: ConsoleState) => T): T {
  return useStore(store, selector);
}

export function activeDecision(state: ConsoleState): DecisionDraft | undefined {
  return state.decisions[state.activeDecision];
}

export function drillRunning(state: ConsoleState): boolean {
  return state.current?.phase === 'running';
}

export function fleetRunning(state: Pick<ConsoleState, 'fleet'>): boolean {
  return state.fleet.phase === 'running';
}

/** The step the screen shows: the waiting or running one, or the first before the drill starts. */
export function shownStep(state: Pick<ConsoleState, 'current'>): StepRow | undefined {
  const current = state.current;
  if (!current) return undefined;
  return current.steps[Math.max(0, current.stepIndex)];
}

/** Whether the current step waits for enter. */
export function stepWaiting(state: Pick<ConsoleState, 'current'>): boolean {
  const current = state.current;
  return current?.phase === 'running' && current.steps[current.stepIndex]?.state === 'ready';
}
