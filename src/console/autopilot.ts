// Autoplay (--auto): the console presses the operator's keys itself, at a
// readable pace, through the same key router a person's keys go through. It
// starts each drill, answers each operator ask (selecting the asked process
// first), moves on, and with --out saves the bundle and quits with the run's
// exit code. It names the binding it means, never a key: the key comes from the
// key table, and a press is made only if it resolves to that binding now.
import { activeDecision, stepWaiting, type ConsoleState } from '../store.js';
import type { KeyHandler } from './key-router.js';
import { answerBinding, bindingById, pressOf, resolveKey, type Press } from './keys.js';

export interface AutoPress extends Press {
  /** Identifies the situation the press answers: the press is made only if it still holds. */
  id: string;
  /** The key binding the press resolves to. */
  binding: string;
}

/** The press of binding `binding` in situation `id`, if that binding is what its key does in this state. */
function pressing(state: ConsoleState, binding: string, id: string, press: Press = pressOf(bindingById(binding).keys)): AutoPress | undefined {
  if (resolveKey(state, press)?.id !== binding) return undefined;
  return { id, binding, ...press };
}

/** The key the operator would press now, if any. */
export function nextPress(state: ConsoleState, options: { out?: string }): AutoPress | undefined {
  if (state.confirmQuit !== undefined) return undefined;
  const where = `${state.screen.name}:${state.nextIndex}:${state.current?.key ?? ''}:${state.current?.phase ?? ''}`;
  switch (state.screen.name) {
    case 'help':
      return pressing(state, 'back', `${where}:help`);
    case 'consent':
      // Autoplay never consents on the operator's behalf: that takes --yes.
      return pressing(state, 'consent-no', `${where}:consent`);
    case 'resume':
      // Autoplay keeps no capstone; should one be offered, it starts over rather than trust another run's verdicts.
      return pressing(state, 'resume-no', `${where}:resume`);
    case 'list':
      return pressing(state, state.runFinished ? 'decision' : 'open-drill', `${where}:list`);
    case 'drill':
      return drillPress(state, where);
    case 'decision': {
      const draft = activeDecision(state);
      if (!options.out || !draft || draft.saving) return undefined;
      if (draft.editing) return pressing(state, 'edit-done', `${where}:edit-done`);
      if (draft.dirty || !draft.savedPath) return pressing(state, 'save', `${where}:save`);
      return pressing(state, 'quit', `${where}:quit`);
    }
    default:
      return undefined;
  }
}

function drillPress(state: ConsoleState, where: string): AutoPress | undefined {
  const current = state.current;
  if (!current) return undefined;
  if (current.phase === 'ready') return pressing(state, 'start-drill', `${where}:start`);
  if (current.phase === 'finished') return pressing(state, 'next-drill', `${where}:next`);
  // Each step waits for enter, as for a person: autoplay presses it at its pace.
  if (stepWaiting(state) && !state.ask) return pressing(state, 'run-step', `${where}:step:${current.stepIndex}`);
  const ask = state.ask;
  if (!ask || ask.performing) return undefined;
  const id = `${where}:ask:${ask.ask.kind}:${ask.ask.prompt}`;
  const answer = answerBinding(ask.ask.kind).id;
  if (ask.ask.kind !== 'kill' && ask.ask.kind !== 'restart') return pressing(state, answer, id);
  // k and r act on the selected process: select the asked one first (in the processes panel, where arrows select).
  const wanted = ask.ask.process;
  const index = state.processes.findIndex((process) => process.name === wanted);
  if (index >= 0 && index !== state.selected) {
    if (state.panel !== 'processes') return pressing(state, 'panel', `${id}:panel:${state.panel}`);
    return pressing(state, 'select', `${id}:select:${state.selected}`, pressOf(index < state.selected ? '↑' : '↓'));
  }
  return pressing(state, answer, id);
}

export interface AutopilotOptions {
  getState(): ConsoleState;
  subscribe(listener: () => void): () => void;
  press: KeyHandler;
  paceMs: number;
  out?: string;
}

/** Starts pressing keys; returns the function that stops it. */
export function startAutopilot(options: AutopilotOptions): () => void {
  let timer: NodeJS.Timeout | undefined;
  let scheduled: string | undefined;
  let stopped = false;
  const consider = () => {
    if (stopped) return;
    const next = nextPress(options.getState(), { out: options.out });
    if (next?.id === scheduled) return;
    if (timer) clearTimeout(timer);
    timer = undefined;
    scheduled = next?.id;
    if (!next) return;
    timer = setTimeout(() => {
      timer = undefined;
      scheduled = undefined;
      // Press only if the situation is still the one the press answers.
      const now = nextPress(options.getState(), { out: options.out });
      if (!stopped && now?.id === next.id) options.press(now.input, now.key);
      consider();
    }, options.paceMs);
  };
  const unsubscribe = options.subscribe(consider);
  consider();
  return () => {
    stopped = true;
    unsubscribe();
    if (timer) clearTimeout(timer);
  };
}
