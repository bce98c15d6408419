// The intents that only move what is shown: screens, panels, selection,
// scrolling and the paragraph editor. Each is a pure function of the state,
// returning the change to make (nothing here starts, stops or writes anything);
// the controller applies them. The rest of the intents (src/console/controller.ts)
// drive the run itself.
import { activeDecision, panelsOf, type ConsoleState, type DecisionDraft, type MainScreen } from '../store.js';
import { applyEditorKey } from './editor.js';
import type { Intent } from './intents.js';
import { helpLines } from './keys.js';
import { editorWidth, screenHeight } from './layout.js';

export type NavigationIntent = Extract<
  Intent,
  {
    type:
      | 'open-drill'
      | 'hint'
      | 'select'
      | 'panel'
      | 'help'
      | 'back'
      | 'edit'
      | 'edit-done'
      | 'editor-key'
      | 'mastery'
      | 'switch-bundle';
  }
>;

const navigationTypes: ReadonlySet<string> = new Set<NavigationIntent['type']>([
  'open-drill',
  'hint',
  'select',
  'panel',
  'help',
  'back',
  'edit',
  'edit-done',
  'editor-key',
  'mastery',
  'switch-bundle',
]);

export function isNavigation(intent: Intent): intent is NavigationIntent {
  return navigationTypes.has(intent.type);
}

/** The change an intent makes to what is shown (an empty change: nothing to do). */
export function navigate(state: ConsoleState, intent: NavigationIntent): Partial<ConsoleState> {
  switch (intent.type) {
    case 'open-drill':
      return { screen: { name: 'drill' } };
    case 'hint':
      return { hint: !state.hint };
    case 'select':
      return select(state, intent.delta);
    case 'panel': {
      const panels = panelsOf(state.current);
      const next = panels[(panels.indexOf(state.panel) + 1) % panels.length] ?? 'counts';
      return { panel: next, panelPinned: true };
    }
    case 'help':
      return state.screen.name === 'help' ? {} : { screen: { name: 'help', back: state.screen }, helpScroll: 0 };
    case 'back':
      // An open hint closes first.
      if (state.hint && state.screen.name === 'drill') return { hint: false };
      return { screen: backFrom(state) };
    case 'edit':
    case 'edit-done':
      return patchDecision(state, { editing: intent.type === 'edit' });
    case 'editor-key': {
      const draft = activeDecision(state);
      if (!draft) return {};
      const next = applyEditorKey(draft, intent.input, intent.key, editorWidth(state.terminal.columns));
      if (next.text === draft.text && next.cursor === draft.cursor) return {};
      return patchDecision(state, { text: next.text, cursor: next.cursor, dirty: draft.dirty || next.text !== draft.text });
    }
    case 'mastery':
      return state.mastery.offered && !state.mastery.running ? { screen: { name: 'mastery' } } : {};
    case 'switch-bundle':
      return state.decisions.length > 1 ? { activeDecision: (state.activeDecision + 1) % state.decisions.length } : {};
  }
}

function backFrom(state: ConsoleState): MainScreen {
  switch (state.screen.name) {
    case 'help':
      return state.screen.back;
    case 'drill':
    case 'decision':
      return { name: 'list' };
    case 'mastery':
    case 'fleet':
      return { name: 'decision' };
    default:
      return state.screen;
  }
}

function select(state: ConsoleState, delta: -1 | 1): Partial<ConsoleState> {
  if (state.screen.name === 'help') {
    // The help screen's first row is its title; the rest scroll.
    const last = Math.max(0, helpLines(state.terminal.columns).length - (screenHeight(state) - 1));
    return { helpScroll: Math.max(0, Math.min(last, state.helpScroll + delta)) };
  }
  if (state.screen.name === 'mastery') {
    const selected = Math.max(0, Math.min(state.drills.length - 1, state.mastery.selected + delta));
    return { mastery: { ...state.mastery, selected } };
  }
  if (state.panel === 'diff') {
    const lines = state.current?.diff?.text.split('\n').length ?? 0;
    return { diffScroll: Math.max(0, Math.min(Math.max(0, lines - 1), state.diffScroll + delta)) };
  }
  return { selected: Math.max(0, Math.min(Math.max(0, state.processes.length - 1), state.selected + delta)) };
}

function patchDecision(state: ConsoleState, change: Partial<DecisionDraft>): Partial<ConsoleState> {
  const draft = activeDecision(state);
  if (!draft) return {};
  const decisions = [...state.decisions];
  decisions[state.activeDecision] = { ...draft, ...change };
  return { decisions };
}
