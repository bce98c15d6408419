// The one key router: every key press (from Ink's useInput, or from the
// autopilot) comes here, is resolved through the key table against the current
// state, and becomes an intent. Keys typed ahead arrive as one string ('kk'):
// outside the editor each character is handled on its own, against the state
// the previous one left.
import type { ConsoleState } from '../store.js';
import type { Dispatch } from './intents.js';
import { resolveKey, type Press } from './keys.js';
import { activeDecision } from '../store.js';

export type KeyHandler = (input: string, key: Press['key']) => void;

/** Splits a chunk of typed-ahead characters into single presses. */
export function splitTypedAhead(input: string): Press[] {
  const presses: Press[] = [];
  for (const character of input) {
    const code = character.charCodeAt(0);
    if (character === '\r' || character === '\n') presses.push({ input: '', key: { return: true } });
    else if (character === '\t') presses.push({ input: '', key: { tab: true } });
    else if (character === '\u007f') presses.push({ input: '', key: { delete: true } });
    else if (character === '\b') presses.push({ input: '', key: { backspace: true } });
    else if (character === '\u001b') presses.push({ input: '', key: { escape: true } });
    else if (code < 0x20) presses.push({ input: String.fromCharCode(code + 96), key: { ctrl: true } });
    else presses.push({ input: character, key: {} });
  }
  return presses;
}

function isSpecial(key: Press['key']): boolean {
  return Object.entries(key).some(([name, value]) => value === true && name !== 'shift');
}

export function createKeyRouter(getState: () => ConsoleState, dispatch: Dispatch): KeyHandler {
  const handle = (press: Press) => {
    const state = getState();
    const binding = resolveKey(state, press);
    if (binding) dispatch(binding.intent(state, press));
  };
  return (input, key) => {
    const state = getState();
    const editing = state.screen.name === 'decision' && Boolean(activeDecision(state)?.editing);
    // A paste into the editor stays one insertion; elsewhere each character is a key.
    if (!editing && input.length > 1 && !isSpecial(key)) {
      for (const press of splitTypedAhead(input)) handle(press);
      return;
    }
    handle({ input, key });
  };
}
