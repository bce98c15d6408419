// The one key-binding table. The key router resolves every key press through
// it, the footer shows the bindings active right now, and the help screen lists
// them all: the three cannot drift apart. A binding's key is written once, in
// `keys`: it is both the label and what the router matches (and what the
// autopilot presses). Order is priority: the first active binding that matches
// a key wins (so a prompt's y/n shadow everything else).
import type { OperatorAsk } from '../drills/types.js';
import { activeDecision, fleetRunning, shownStep, stepWaiting, type ConsoleState, type Tone } from '../store.js';
import { wrapText, type EditorKey } from './editor.js';
import type { Intent } from './intents.js';

export interface Press {
  input: string;
  key: EditorKey & { shift?: boolean };
}

export type BindingGroup = 'anywhere' | 'drills' | 'processes' | 'decision' | 'prompts';

export interface Binding {
  id: string;
  /** How the key is written in the footer and the help screen. */
  keys: string;
  group: BindingGroup;
  /** The help screen's line. */
  help: string;
  /** The footer's label, for the current state. */
  footer(state: ConsoleState): string;
  /** Whether the binding is active in this state (the footer shows only those). */
  when(state: ConsoleState): boolean;
  /** Only where one binding takes more than the key it is written as (esc too, any key): else `keys` is the matcher. */
  matches?(press: Press): boolean;
  intent(state: ConsoleState, press: Press): Intent;
  /** Kept out of the footer (still in help): ctrl+c. */
  footerHidden?: boolean;
  /** The operator asks this key answers: the drill screen's prompt shows these keys. */
  answers?: readonly OperatorAsk['kind'][];
}

const plain = (press: Press) => !press.key.ctrl && !press.key.meta;

/** The keys the table writes by name, and the flag Ink sets for each. */
const namedKeys: Readonly<Record<string, keyof Press['key']>> = {
  enter: 'return',
  esc: 'escape',
  tab: 'tab',
  '↑': 'upArrow',
  '↓': 'downArrow',
};

/** Whether a press is the key as the table writes it ('k', 'enter', 'esc', 'tab', 'ctrl+s', '↑'). */
export function isKey(keys: string, press: Press): boolean {
  const named = namedKeys[keys];
  if (named) return Boolean(press.key[named]);
  if (keys.startsWith('ctrl+')) return Boolean(press.key.ctrl) && press.input === keys.slice('ctrl+'.length);
  return plain(press) && press.input === keys;
}

const on = (state: ConsoleState, ...names: string[]) => names.includes(state.screen.name);
const modal = (state: ConsoleState) => state.confirmQuit !== undefined;
const editing = (state: ConsoleState) => on(state, 'decision') && Boolean(activeDecision(state)?.editing);
/** No prompt, no editor, not shutting down: the ordinary keys apply. */
const free = (state: ConsoleState) => !modal(state) && !editing(state) && !on(state, 'exiting');
const phase = (state: ConsoleState) => state.current?.phase;
const pendingAsk = (state: ConsoleState) => (state.ask && !state.ask.performing ? state.ask.ask : undefined);
const fleetAsking = (state: ConsoleState) => free(state) && on(state, 'fleet') && state.fleet.phase === 'consent';
const isLastDrill = (state: ConsoleState) => state.nextIndex >= state.drills.length - 1;

function nextDrillLabel(state: ConsoleState): string {
  const row = state.drills[state.nextIndex];
  return row ? `drill ${row.number}` : 'drill';
}

export const bindings: readonly Binding[] = [
  {
    id: 'interrupt',
    keys: 'ctrl+c',
    group: 'anywhere',
    help: 'quit at once: stops every process and PostgreSQL, exit code 130',
    footer: () => 'quit now',
    when: (state) => !on(state, 'exiting'),
    intent: () => ({ type: 'interrupt' }),
    footerHidden: true,
  },
  {
    id: 'confirm-quit',
    keys: 'y',
    group: 'prompts',
    help: 'yes, quit (when asked whether to quit)',
    footer: () => 'quit',
    when: modal,
    intent: () => ({ type: 'confirm-quit', yes: true }),
  },
  {
    id: 'cancel-quit',
    keys: 'n',
    group: 'prompts',
    help: 'no, stay (when asked whether to quit; esc too)',
    footer: () => 'stay',
    when: modal,
    matches: (press) => isKey('n', press) || isKey('esc', press),
    intent: () => ({ type: 'confirm-quit', yes: false }),
  },
  {
    id: 'save',
    keys: 'ctrl+s',
    group: 'decision',
    help: 'save the evidence bundle (JSON and decision paragraph) and show its path',
    footer: () => 'save bundle',
    when: (state) => on(state, 'decision') && !modal(state) && activeDecision(state) !== undefined,
    intent: () => ({ type: 'save' }),
  },
  {
    id: 'pack',
    keys: 'p',
    group: 'decision',
    help: 'pack the bundle for handing in: one .tar.gz with its evidence (saved first); sor-drills verify checks it',
    footer: () => 'pack for handing in',
    when: (state) => on(state, 'decision') && free(state) && state.decisions.some((draft) => draft.kind === 'run') && !state.decisions.some((draft) => draft.saving),
    intent: () => ({ type: 'pack' }),
  },
  {
    id: 'edit-done',
    keys: 'esc',
    group: 'decision',
    help: 'stop editing the decision paragraph',
    footer: () => 'done editing',
    when: (state) => editing(state) && !modal(state),
    intent: () => ({ type: 'edit-done' }),
  },
  {
    id: 'editor',
    keys: 'type',
    group: 'decision',
    help: 'while editing: type, enter for a new line, arrows and home/end move, backspace deletes',
    footer: () => 'edit · arrows move',
    when: (state) => editing(state) && !modal(state),
    matches: () => true,
    intent: (_state, press) => ({ type: 'editor-key', input: press.input, key: press.key }),
  },
  {
    id: 'consent-yes',
    keys: 'y',
    group: 'prompts',
    help: 'consent: write into this database (installing the schema if it has none) and run the drills',
    footer: () => 'write into it',
    when: (state) => free(state) && on(state, 'consent'),
    intent: () => ({ type: 'consent', yes: true }),
  },
  {
    id: 'consent-no',
    keys: 'n',
    group: 'prompts',
    help: 'refuse: leave the database untouched and quit (exit code 1)',
    footer: () => 'leave it, quit',
    when: (state) => free(state) && on(state, 'consent'),
    intent: () => ({ type: 'consent', yes: false }),
  },
  {
    id: 'fleet-yes',
    keys: 'y',
    group: 'prompts',
    help: "consent: the fleet drill writes its tenants, pending transactions and their journal rows into this database, and runs",
    footer: () => 'run the fleet in it',
    when: fleetAsking,
    intent: () => ({ type: 'fleet-consent', yes: true }),
  },
  {
    id: 'fleet-no',
    keys: 'n',
    group: 'prompts',
    help: 'refuse the fleet drill: nothing written, back to the decision (esc too)',
    footer: () => 'leave it, back',
    when: fleetAsking,
    matches: (press) => isKey('n', press) || isKey('esc', press),
    intent: () => ({ type: 'fleet-consent', yes: false }),
  },
  {
    id: 'resume-yes',
    keys: 'enter',
    group: 'prompts',
    help: 'resume the saved capstone: finished drills keep their verdicts, the next one starts from its first step',
    footer: () => 'resume',
    when: (state) => free(state) && on(state, 'resume'),
    intent: () => ({ type: 'resume', yes: true }),
  },
  {
    id: 'resume-no',
    keys: 'n',
    group: 'prompts',
    help: 'start the capstone over: the saved one (and its embedded cluster) is removed',
    footer: () => 'start over',
    when: (state) => free(state) && on(state, 'resume'),
    intent: () => ({ type: 'resume', yes: false }),
  },
  {
    id: 'open-drill',
    keys: 'enter',
    group: 'drills',
    help: 'on the drill list: open the drill that runs next (drills run in order, none skipped)',
    footer: (state) => `open ${nextDrillLabel(state)}`,
    when: (state) => free(state) && on(state, 'list') && !state.runFinished && state.drills.length > 0,
    intent: () => ({ type: 'open-drill' }),
  },
  {
    id: 'start-drill',
    keys: 'enter',
    group: 'drills',
    help: 'start the drill shown and run its first step (with its break if --break named it)',
    footer: (state) => (state.current?.broken ? 'run step 1 (with its break)' : 'run step 1'),
    when: (state) => free(state) && on(state, 'drill') && phase(state) === 'ready',
    intent: (state) => ({ type: 'start-drill', broken: Boolean(state.current?.broken) }),
  },
  {
    id: 'run-step',
    keys: 'enter',
    group: 'drills',
    help: 'run the step shown: its statements are on screen before it runs',
    footer: (state) => `run step ${(state.current?.stepIndex ?? 0) + 1}`,
    when: (state) => free(state) && on(state, 'drill') && stepWaiting(state) && !pendingAsk(state),
    intent: () => ({ type: 'run-step' }),
  },
  {
    id: 'run-rest',
    keys: 'a',
    group: 'drills',
    help: 'run the rest of the drill without stopping between steps (a step that needs you still waits for its key)',
    footer: (state) => (phase(state) === 'ready' ? 'run it all' : 'run the rest'),
    when: (state) => free(state) && on(state, 'drill') && (phase(state) === 'ready' || stepWaiting(state)),
    intent: () => ({ type: 'run-rest' }),
  },
  {
    id: 'hint',
    keys: 'h',
    group: 'drills',
    help: "a hint for the step shown: what to look for, the lesson's habit, the mistake people make there",
    footer: (state) => (state.hint ? 'close hint' : 'hint'),
    when: (state) => free(state) && on(state, 'drill') && phase(state) !== 'finished' && shownStep(state)?.hint !== undefined,
    intent: () => ({ type: 'hint' }),
  },
  {
    id: 'operator',
    keys: 'enter',
    group: 'drills',
    help: 'do what the step asks: continue, or start the Workers together',
    footer: (state) => (pendingAsk(state)?.kind === 'start' ? 'start them' : 'continue'),
    when: (state) => free(state) && on(state, 'drill') && ['start', 'continue'].includes(pendingAsk(state)?.kind ?? ''),
    intent: (state) => ({ type: 'operator', kind: pendingAsk(state)?.kind === 'start' ? 'start' : 'continue' }),
    answers: ['start', 'continue'],
  },
  {
    id: 'next-drill',
    keys: 'enter',
    group: 'drills',
    help: 'after a drill finishes: the next drill, or the decision after the ninth',
    footer: (state) => (state.current?.mastery || isLastDrill(state) ? 'decision' : 'next drill'),
    when: (state) => free(state) && on(state, 'drill') && phase(state) === 'finished',
    intent: (state) =>
      state.current?.mastery || isLastDrill(state) ? { type: 'to-decision' } : { type: 'next-drill' },
  },
  {
    id: 'decision',
    keys: 'enter',
    group: 'drills',
    help: 'on the drill list once all nine ran: the decision',
    footer: () => 'decision',
    when: (state) => free(state) && on(state, 'list') && state.runFinished,
    intent: () => ({ type: 'to-decision' }),
  },
  {
    id: 'mastery-run',
    keys: 'enter',
    group: 'decision',
    help: 'mastery gate: run the selected drill again with its deliberate break',
    footer: () => 'run it with its break',
    when: (state) => free(state) && on(state, 'mastery') && state.drills[state.mastery.selected] !== undefined,
    intent: (state) => ({ type: 'mastery-run', key: state.drills[state.mastery.selected]!.key }),
  },
  {
    id: 'break',
    keys: 'b',
    group: 'drills',
    help: 'start the drill with its deliberate break (before it starts): it must fail honestly',
    footer: () => 'start with its break',
    when: (state) => free(state) && on(state, 'drill', 'list') && phase(state) === 'ready' && !state.runFinished,
    intent: () => ({ type: 'start-drill', broken: true }),
  },
  {
    id: 'kill',
    keys: 'k',
    group: 'processes',
    help: 'kill the selected process with SIGKILL (its whole process group)',
    footer: (state) => {
      const ask = pendingAsk(state);
      if (ask?.kind === 'kill') return `kill ${ask.process}`;
      return `kill ${state.processes[state.selected]?.name ?? ''}`.trim();
    },
    when: (state) =>
      free(state) &&
      on(state, 'drill') &&
      phase(state) !== 'ready' &&
      (state.processes.length > 0 || pendingAsk(state)?.kind === 'kill'),
    intent: () => ({ type: 'kill' }),
    answers: ['kill'],
  },
  {
    id: 'restart',
    keys: 'r',
    group: 'processes',
    help: 'restart the selected process with the same specification',
    footer: (state) => {
      const ask = pendingAsk(state);
      if (ask?.kind === 'restart') return `restart ${ask.process}`;
      return `restart ${state.processes[state.selected]?.name ?? ''}`.trim();
    },
    when: (state) =>
      free(state) &&
      on(state, 'drill') &&
      phase(state) !== 'ready' &&
      (state.processes.length > 0 || pendingAsk(state)?.kind === 'restart'),
    intent: () => ({ type: 'restart' }),
    answers: ['restart'],
  },
  {
    id: 'select',
    keys: '↑↓',
    group: 'processes',
    help: 'select a process (processes panel), scroll the diff or this help, pick a drill (mastery gate)',
    footer: (state) => (on(state, 'mastery') ? 'pick' : on(state, 'help') || state.panel === 'diff' ? 'scroll' : 'select'),
    when: (state) =>
      free(state) &&
      ((on(state, 'drill') && phase(state) !== 'ready' && (state.panel === 'processes' || state.panel === 'diff')) ||
        on(state, 'mastery', 'help')),
    matches: (press) => isKey('↑', press) || isKey('↓', press),
    intent: (_state, press) => ({ type: 'select', delta: press.key.upArrow ? -1 : 1 }),
  },
  {
    id: 'panel',
    keys: 'tab',
    group: 'drills',
    help: 'switch the panel: live counts, diff, processes',
    footer: () => 'panel',
    when: (state) => free(state) && on(state, 'drill') && phase(state) !== 'ready',
    intent: () => ({ type: 'panel' }),
  },
  {
    id: 'switch-bundle',
    keys: 'tab',
    group: 'decision',
    help: 'after the mastery gate: switch between the run bundle and the mastery bundle',
    footer: (state) => (state.activeDecision === 0 ? 'mastery bundle' : 'run bundle'),
    when: (state) => free(state) && on(state, 'decision') && state.decisions.length > 1,
    intent: () => ({ type: 'switch-bundle' }),
  },
  {
    id: 'edit',
    keys: 'e',
    group: 'decision',
    help: 'edit the decision paragraph (esc when done)',
    footer: () => 'edit paragraph',
    when: (state) => free(state) && on(state, 'decision') && activeDecision(state) !== undefined,
    intent: () => ({ type: 'edit' }),
  },
  {
    id: 'mastery',
    keys: 'm',
    group: 'decision',
    help: 'mastery gate (all nine passed): repeat one drill with its deliberate break for a second bundle',
    footer: () => 'mastery gate',
    when: (state) => free(state) && on(state, 'decision') && state.mastery.offered && !state.mastery.running,
    intent: () => ({ type: 'mastery' }),
  },
  {
    id: 'fleet',
    keys: 'f',
    group: 'decision',
    help: 'beyond the capstone: the fleet drill, 100 Workers over 10,000 transactions on this target (asks first on a target not the embedded one)',
    footer: () => 'fleet drill',
    when: (state) => free(state) && on(state, 'decision') && state.fleet.offered && !fleetRunning(state),
    intent: () => ({ type: 'fleet' }),
  },
  {
    id: 'help',
    keys: '?',
    group: 'anywhere',
    help: 'this help (esc or ? closes it)',
    footer: (state) => (on(state, 'help') ? 'close help' : 'help'),
    when: (state) => free(state),
    intent: (state) => (on(state, 'help') ? { type: 'back' } : { type: 'help' }),
  },
  {
    id: 'back',
    keys: 'esc',
    group: 'anywhere',
    help: 'back: from help, from a hint, from a drill to the list, from the mastery gate or the finished fleet drill to the decision',
    footer: (state) =>
      on(state, 'help') ? 'close help' : on(state, 'drill') && state.hint ? 'close hint' : on(state, 'mastery', 'fleet') ? 'decision' : 'drill list',
    when: (state) => free(state) && (on(state, 'help', 'drill', 'decision', 'mastery') || (on(state, 'fleet') && !fleetRunning(state))),
    intent: () => ({ type: 'back' }),
  },
  {
    id: 'quit',
    keys: 'q',
    group: 'anywhere',
    help: 'quit: stops every process and PostgreSQL (asks first while a drill runs or the bundle is unsaved)',
    footer: () => 'quit',
    when: (state) => free(state),
    intent: () => ({ type: 'quit' }),
  },
];

/** Whether the press is this binding's key (its own matcher where it has one). */
export function matchesPress(binding: Binding, press: Press): boolean {
  return binding.matches ? binding.matches(press) : isKey(binding.keys, press);
}

/** The binding a key press resolves to in this state, if any. */
export function resolveKey(state: ConsoleState, press: Press): Binding | undefined {
  return bindings.find((binding) => binding.when(state) && matchesPress(binding, press));
}

export function bindingById(id: string): Binding {
  const binding = bindings.find((candidate) => candidate.id === id);
  if (!binding) throw new Error(`internal: no key binding ${id}`);
  return binding;
}

/** The binding that answers an operator ask. */
export function answerBinding(kind: OperatorAsk['kind']): Binding {
  const binding = bindings.find((candidate) => candidate.answers?.includes(kind));
  if (!binding) throw new Error(`internal: no key answers the ${kind} ask`);
  return binding;
}

/** The key that answers an operator ask, as the footer writes it ('k', 'enter'). */
export function askKey(kind: OperatorAsk['kind']): string {
  return answerBinding(kind).keys;
}

/** The press a key written as in the table makes ('enter', 'esc', 'tab', 'ctrl+s', '↑', 'k'): for the autopilot. */
export function pressOf(keys: string): Press {
  const named = namedKeys[keys];
  if (named) return { input: '', key: { [named]: true } };
  if (keys.startsWith('ctrl+')) return { input: keys.slice('ctrl+'.length), key: { ctrl: true } };
  return { input: keys, key: {} };
}

/** The footer's entries: each active binding once per key, in table order. */
export function footerEntries(state: ConsoleState): Array<{ keys: string; label: string }> {
  const seen = new Set<string>();
  const entries: Array<{ keys: string; label: string }> = [];
  for (const binding of bindings) {
    if (binding.footerHidden || !binding.when(state) || seen.has(binding.keys)) continue;
    seen.add(binding.keys);
    entries.push({ keys: binding.keys, label: binding.footer(state) });
  }
  return entries;
}

export const groupTitles: Record<BindingGroup, string> = {
  anywhere: 'Anywhere',
  drills: 'Drills',
  processes: 'Processes (drill screen)',
  decision: 'Decision',
  prompts: 'Prompts',
};

export interface HelpEntry {
  keys: string;
  text: string;
}

/** The help screen's content: every binding, grouped, one entry per key within a group. */
export function helpEntries(): Array<{ group: BindingGroup; title: string; entries: HelpEntry[] }> {
  const groups: BindingGroup[] = ['anywhere', 'drills', 'processes', 'decision', 'prompts'];
  return groups.map((group) => {
    const entries: HelpEntry[] = [];
    for (const binding of bindings.filter((candidate) => candidate.group === group)) {
      const known = entries.find((entry) => entry.keys === binding.keys);
      if (known) known.text = `${known.text}; ${binding.help}`;
      else entries.push({ keys: binding.keys, text: binding.help });
    }
    return { group, title: groupTitles[group], entries };
  });
}

export interface HelpLine {
  keys: string;
  text: string;
  tone: Tone;
}

export const helpKeysWidth = 8;

/** The help screen's rows for a width: group titles, then each key with its text wrapped. */
export function helpLines(width: number): HelpLine[] {
  const lines: HelpLine[] = [];
  for (const group of helpEntries()) {
    lines.push({ keys: '', text: group.title, tone: 'accent' });
    for (const entry of group.entries) {
      const wrapped = wrapText(entry.text, Math.max(20, width - helpKeysWidth - 3));
      wrapped.forEach((text, index) => lines.push({ keys: index === 0 ? entry.keys : '', text, tone: 'plain' }));
    }
  }
  return lines;
}
