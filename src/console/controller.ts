// Carries out the intents the key router resolves. This is where a key turns
// into an effect: a process killed, an operator ask satisfied, a drill started,
// the bundle saved. The long-running flow (src/console/flow.ts) waits here for
// the operator's decisions (start, advance, consent, mastery) by name.
import type { BundleKey, ProcessView } from '../drills/types.js';
import type { ProcessControl } from '../drills/processes.js';
import {
  activeDecision,
  drillRunning,
  getState,
  panelNames,
  update,
  type ConsoleState,
  type DecisionDraft,
  type MainScreen,
} from '../store.js';
import { applyEditorKey } from './editor.js';
import { errorMessage } from './errors.js';
import type { Intent } from './intents.js';
import { helpLines } from './keys.js';
import { editorWidth, screenHeight } from './layout.js';
import type { TuiOperator } from './operator.js';

/** Rejects the flow's waits once the console is quitting. */
export class Quitting extends Error {
  override name = 'Quitting';
}

export interface Waits {
  start: { broken: boolean };
  advance: undefined;
  consent: boolean;
  mastery: BundleKey;
}

export const exitCodes = { permitted: 0, blocked: 1, interrupted: 130 } as const;

export class ConsoleController {
  private processes: ProcessControl | undefined;
  private saveDraft: ((index: number) => Promise<void>) | undefined;
  private readonly waiters = new Map<keyof Waits, { resolve: (value: never) => void; reject: (error: Error) => void }>();
  private quitResolve!: (code: number) => void;
  /** Resolves with the exit code once the operator quits (or the flow ends the console). */
  readonly quit: Promise<number>;
  quitting = false;

  constructor(readonly operator: TuiOperator) {
    this.quit = new Promise((resolve) => {
      this.quitResolve = resolve;
    });
  }

  attach(options: { processes?: ProcessControl; save?: (index: number) => Promise<void> }): void {
    if (options.processes) this.processes = options.processes;
    if (options.save) this.saveDraft = options.save;
  }

  /** The flow waits here for the operator. Rejects with Quitting when the console quits. */
  wait<K extends keyof Waits>(name: K): Promise<Waits[K]> {
    if (this.quitting) return Promise.reject(new Quitting('quitting'));
    return new Promise<Waits[K]>((resolve, reject) => {
      this.waiters.set(name, { resolve: resolve as (value: never) => void, reject });
    });
  }

  waiting(name: keyof Waits): boolean {
    return this.waiters.has(name);
  }

  private release<K extends keyof Waits>(name: K, value: Waits[K]): boolean {
    const waiter = this.waiters.get(name);
    if (!waiter) return false;
    this.waiters.delete(name);
    (waiter.resolve as (value: Waits[K]) => void)(value);
    return true;
  }

  /** Ends the console with this exit code: the flow's waits reject, the caller cleans up. */
  finish(code: number): void {
    if (this.quitting) return;
    this.quitting = true;
    update({ confirmQuit: undefined, screen: { name: 'exiting' }, exiting: { lines: ['stopping the processes and PostgreSQL…'] } });
    this.operator.abandon('the operator quit the console');
    for (const [, waiter] of this.waiters) waiter.reject(new Quitting('quitting'));
    this.waiters.clear();
    this.quitResolve(code);
  }

  /** 0 PERMITTED, 1 BLOCKED once the run reached its decision; 130 before that. */
  exitCode(state: ConsoleState = getState()): number {
    const decision = state.decisions.find((draft) => draft.kind === 'run');
    if (!decision) return exitCodes.interrupted;
    return decision.decision === 'PERMITTED' ? exitCodes.permitted : exitCodes.blocked;
  }

  dispatch = (intent: Intent): void => {
    const state = getState();
    switch (intent.type) {
      case 'open-drill':
        update({ screen: { name: 'drill' } });
        return;
      case 'start-drill':
        if (state.current?.phase !== 'ready') return;
        update({ screen: { name: 'drill' }, current: { ...state.current, broken: intent.broken } });
        this.release('start', { broken: intent.broken });
        return;
      case 'next-drill':
      case 'to-decision':
        if (!this.release('advance', undefined) && intent.type === 'to-decision' && state.decisions.length > 0) {
          update({ screen: { name: 'decision' } });
        }
        return;
      case 'operator':
        void this.operator.satisfy(intent.kind);
        return;
      case 'kill':
      case 'restart':
        void this.processAction(intent.type, state);
        return;
      case 'select':
        this.select(intent.delta, state);
        return;
      case 'panel': {
        const next = panelNames[(panelNames.indexOf(state.panel) + 1) % panelNames.length] ?? 'counts';
        update({ panel: next, panelPinned: true });
        return;
      }
      case 'help':
        if (state.screen.name !== 'help') update({ screen: { name: 'help', back: state.screen }, helpScroll: 0 });
        return;
      case 'back':
        update({ screen: this.backFrom(state) });
        return;
      case 'quit': {
        const unsaved = state.decisions.some((draft) => draft.dirty);
        if (drillRunning(state)) {
          update({ confirmQuit: `Drill ${state.current?.key} is running: quit, stopping it and every process? (y/n)` });
        } else if (unsaved) {
          update({ confirmQuit: 'The bundle is not saved (ctrl+s saves it): quit anyway? (y/n)' });
        } else {
          this.finish(this.exitCode(state));
        }
        return;
      }
      case 'confirm-quit':
        if (intent.yes) this.finish(drillRunning(state) ? exitCodes.interrupted : this.exitCode(state));
        else update({ confirmQuit: undefined });
        return;
      case 'interrupt':
        this.finish(exitCodes.interrupted);
        return;
      case 'consent':
        if (this.release('consent', intent.yes)) update({ screen: { name: 'boot' } });
        return;
      case 'save':
        void this.save(state);
        return;
      case 'edit':
      case 'edit-done':
        this.patchDecision(state, { editing: intent.type === 'edit' });
        return;
      case 'editor-key': {
        const draft = activeDecision(state);
        if (!draft) return;
        const next = applyEditorKey(draft, intent.input, intent.key, editorWidth(state.terminal.columns));
        if (next.text === draft.text && next.cursor === draft.cursor) return;
        this.patchDecision(state, { text: next.text, cursor: next.cursor, dirty: draft.dirty || next.text !== draft.text });
        return;
      }
      case 'mastery':
        if (state.mastery.offered && !state.mastery.running) update({ screen: { name: 'mastery' } });
        return;
      case 'switch-bundle':
        if (state.decisions.length > 1) update({ activeDecision: (state.activeDecision + 1) % state.decisions.length });
        return;
      case 'mastery-run': {
        const row = state.drills[state.mastery.selected];
        if (row && this.release('mastery', row.key)) update({ screen: { name: 'drill' } });
        return;
      }
    }
  };

  private backFrom(state: ConsoleState): MainScreen {
    switch (state.screen.name) {
      case 'help':
        return state.screen.back;
      case 'drill':
      case 'decision':
        return { name: 'list' };
      case 'mastery':
        return { name: 'decision' };
      default:
        return state.screen;
    }
  }

  private select(delta: -1 | 1, state: ConsoleState): void {
    if (state.screen.name === 'help') {
      // The help screen's first row is its title; the rest scroll.
      const last = Math.max(0, helpLines(state.terminal.columns).length - (screenHeight(state) - 1));
      update({ helpScroll: Math.max(0, Math.min(last, state.helpScroll + delta)) });
    } else if (state.screen.name === 'mastery') {
      const selected = Math.max(0, Math.min(state.drills.length - 1, state.mastery.selected + delta));
      update({ mastery: { ...state.mastery, selected } });
    } else if (state.panel === 'diff') {
      const lines = state.current?.diff?.text.split('\n').length ?? 0;
      update({ diffScroll: Math.max(0, Math.min(Math.max(0, lines - 1), state.diffScroll + delta)) });
    } else {
      const selected = Math.max(0, Math.min(Math.max(0, state.processes.length - 1), state.selected + delta));
      update({ selected });
    }
  }

  private async processAction(kind: 'kill' | 'restart', state: ConsoleState): Promise<void> {
    const ask = state.ask && !state.ask.performing ? state.ask.ask : undefined;
    const selected: ProcessView | undefined = state.processes[state.selected];
    // The ask's process is the one to act on unless the operator deliberately selected another.
    if (ask?.kind === kind && (!selected || selected.name === ask.process || !state.processes.some((p) => p.name === ask.process))) {
      await this.operator.satisfy(kind);
      return;
    }
    if (!selected || !this.processes) {
      update({ notice: { text: `no process to ${kind}`, tone: 'warn' } });
      return;
    }
    update({ notice: { text: `${kind === 'kill' ? 'killing' : 'restarting'} ${selected.name}…`, tone: 'warn' } });
    try {
      if (kind === 'kill') await this.processes.kill(selected.name, 'SIGKILL');
      else await this.processes.restart(selected.name);
      update({ notice: { text: `${kind === 'kill' ? 'killed' : 'restarted'} ${selected.name}`, tone: 'plain' } });
    } catch (error) {
      update({ notice: { text: `${kind} ${selected.name} failed: ${errorMessage(error)}`, tone: 'bad' } });
    }
  }

  private patchDecision(state: ConsoleState, change: Partial<DecisionDraft>): void {
    const draft = activeDecision(state);
    if (!draft) return;
    const decisions = [...state.decisions];
    decisions[state.activeDecision] = { ...draft, ...change };
    update({ decisions });
  }

  private async save(state: ConsoleState): Promise<void> {
    const draft = activeDecision(state);
    if (!draft || draft.saving || !this.saveDraft) return;
    await this.saveDraft(state.activeDecision);
  }
}
