// Autoplay (--auto): the console presses the operator's keys itself, at a
// readable pace, through the same key router a person's keys go through. It
// starts each drill, answers each operator ask (selecting the asked process
// first, then k or r; enter to start or continue), moves on, and with --out
// saves the bundle and quits with the run's exit code.
import { activeDecision, type ConsoleState } from '../store.js';
import type { KeyHandler } from './key-router.js';
import { askKey, pressOf, type Press } from './keys.js';

export interface AutoPress extends Press {
  /** Identifies the situation the press answers: the press is made only if it still holds. */
  id: string;
}

const enter = (id: string): AutoPress => ({ id, input: '', key: { return: true } });
const char = (id: string, input: string): AutoPress => ({ id, input, key: {} });

/** The key the operator would press now, if any. */
export function nextPress(state: ConsoleState, options: { out?: string }): AutoPress | undefined {
  if (state.confirmQuit !== undefined) return undefined;
  const screen = state.screen.name;
  const current = state.current;
  const where = `${screen}:${state.nextIndex}:${current?.key ?? ''}:${current?.phase ?? ''}`;
  switch (screen) {
    case 'help':
      return { id: `${where}:help`, input: '', key: { escape: true } };
    case 'consent':
      // Autoplay never consents on the operator's behalf: that takes --yes.
      return char(`${where}:consent`, 'n');
    case 'list':
      return state.drills.length > 0 ? enter(`${where}:list`) : undefined;
    case 'drill': {
      if (!current) return undefined;
      if (current.phase === 'ready') return enter(`${where}:start`);
      if (current.phase === 'finished') return enter(`${where}:next`);
      const ask = state.ask;
      if (!ask || ask.performing) return undefined;
      const id = `${where}:ask:${ask.ask.kind}:${ask.ask.prompt}`;
      // The key that answers the ask comes from the key table, as the prompt on the screen does.
      const answer = { id, ...pressOf(askKey(ask.ask.kind)) };
      if (ask.ask.kind === 'start' || ask.ask.kind === 'continue') return answer;
      const wanted = ask.ask.process;
      const index = state.processes.findIndex((process) => process.name === wanted);
      if (index >= 0 && index !== state.selected && state.panel === 'processes') {
        return { id: `${id}:select:${state.selected}`, input: '', key: index < state.selected ? { upArrow: true } : { downArrow: true } };
      }
      return answer;
    }
    case 'decision': {
      const draft = activeDecision(state);
      if (!options.out || !draft || draft.saving) return undefined;
      if (draft.editing) return { id: `${where}:edit-done`, input: '', key: { escape: true } };
      if (draft.dirty || !draft.savedPath) return { id: `${where}:save`, input: 's', key: { ctrl: true } };
      return char(`${where}:quit`, 'q');
    }
    default:
      return undefined;
  }
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
