// What a key asks the console to do. The key table maps keys to these; the
// controller carries them out. Screens never act on their own. An intent is
// plain data: what it needs from the state at the moment of the key (the drill
// picked for the mastery gate, whether to start with the break) it carries.
import type { BundleKey } from '../drills/types.js';
import type { EditorKey } from './editor.js';

export type Intent =
  | { type: 'open-drill' }
  | { type: 'start-drill'; broken: boolean; rest?: boolean }
  | { type: 'run-step' }
  | { type: 'run-rest' }
  | { type: 'hint' }
  | { type: 'resume'; yes: boolean }
  | { type: 'next-drill' }
  | { type: 'to-decision' }
  | { type: 'operator'; kind: 'start' | 'continue' }
  | { type: 'kill' }
  | { type: 'restart' }
  | { type: 'select'; delta: -1 | 1 }
  | { type: 'panel' }
  | { type: 'help' }
  | { type: 'back' }
  | { type: 'quit' }
  | { type: 'confirm-quit'; yes: boolean }
  | { type: 'interrupt' }
  | { type: 'consent'; yes: boolean }
  | { type: 'save' }
  | { type: 'pack' }
  | { type: 'fleet' }
  | { type: 'fleet-consent'; yes: boolean }
  | { type: 'edit' }
  | { type: 'edit-done' }
  | { type: 'editor-key'; input: string; key: EditorKey }
  | { type: 'mastery' }
  | { type: 'mastery-run'; key: BundleKey }
  | { type: 'switch-bundle' };

export type Dispatch = (intent: Intent) => void;
