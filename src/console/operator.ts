// The console's operator. A drill that needs the operator (kill the Worker in
// turn 3, restart it, start both Workers together, continue) calls request();
// the ask goes into the store, where the screen shows it with the key to press.
// When that key is pressed, the controller calls satisfy(): it runs `perform`
// (how the drill would do it itself) and then lets the drill go on.
//
// Before each step the runner asks beforeStep(): the step waits, its statements on
// screen, until the operator presses enter (runStep) or `a` (runRest: this step and
// every later one of the drill, asks to the operator still waiting for their key).
// The press that starts a drill runs its first step (grant).
import type { BundleKey, Operator, OperatorAsk } from '../drills/types.js';
import { errorMessage } from '../postgres/errors.js';
import { getState, update } from '../store.js';

interface Pending {
  ask: OperatorAsk;
  perform: () => Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface TuiOperator extends Operator {
  pending(): OperatorAsk | undefined;
  /** The next step of this drill runs without waiting (the press that started the drill). */
  grant(key: BundleKey): void;
  /** Lets the waiting step run. */
  runStep(): boolean;
  /** Lets the waiting step and every later step of this drill run without stopping. */
  runRest(key: BundleKey): void;
  /** Does what the pending ask wants, if it is of this kind. Resolves when done. */
  satisfy(kind: OperatorAsk['kind']): Promise<boolean>;
  /** Fails the pending ask (the console is quitting). */
  abandon(reason: string): void;
}

export function createTuiOperator(): TuiOperator {
  let pending: Pending | undefined;
  let gate: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  let granted: BundleKey | undefined;
  let rest: BundleKey | undefined;
  const open = () => {
    const current = gate;
    gate = undefined;
    current?.resolve();
    return current !== undefined;
  };
  return {
    beforeStep(key) {
      if (rest === key) return Promise.resolve();
      if (granted === key) {
        granted = undefined;
        return Promise.resolve();
      }
      // A step from another drill than the one granted or run through: both are spent.
      granted = undefined;
      rest = undefined;
      return new Promise<void>((resolve, reject) => {
        gate = { resolve, reject };
      });
    },
    grant(key) {
      granted = key;
      rest = undefined;
    },
    runStep: open,
    runRest(key) {
      rest = key;
      open();
    },
    request(ask, perform) {
      return new Promise<void>((resolve, reject) => {
        pending = { ask, perform, resolve, reject };
        const processes = getState().processes;
        const named = 'process' in ask ? processes.findIndex((process) => process.name === ask.process) : -1;
        update((state) => ({
          ask: { ask, performing: false },
          // Put the asked-for process under the cursor and in view, so the key does what the prompt says.
          ...(named >= 0 ? { selected: named } : {}),
          ...(ask.kind !== 'continue' && state.panel !== 'processes' ? { panel: 'processes' as const } : {}),
        }));
      });
    },
    pending: () => pending?.ask,
    async satisfy(kind) {
      const current = pending;
      if (!current || current.ask.kind !== kind || getState().ask?.performing) return false;
      update((state) => ({ ask: state.ask ? { ...state.ask, performing: true, error: undefined } : undefined }));
      try {
        await current.perform();
      } catch (error) {
        // The drill's own step fails with this; the screen says why.
        pending = undefined;
        update({ ask: undefined, notice: { text: `${kind} failed: ${errorMessage(error)}`, tone: 'bad' } });
        current.reject(error);
        return true;
      }
      pending = undefined;
      update({ ask: undefined });
      current.resolve();
      return true;
    },
    abandon(reason) {
      const current = pending;
      pending = undefined;
      update({ ask: undefined });
      current?.reject(new Error(reason));
      const waiting = gate;
      gate = undefined;
      waiting?.reject(new Error(reason));
    },
  };
}
