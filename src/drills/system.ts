// The Reconciler's processes as the drills and the console see them. The drills
// start what they need (tool server, Workers, relay, email service) through
// this; the console's kill and restart keys act on the same processes.
import type { ProcessView } from './types.js';

export interface ProcessControl {
  /** Every process started in this run, in start order. */
  list(): ProcessView[];
  /** Sends the signal to the process group and resolves once it has exited. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts the process again with the same specification. */
  restart(name: string): Promise<void>;
  /** Subscribes to state changes and log lines; returns the unsubscribe function. */
  subscribe(listener: (event: { type: 'process'; process: ProcessView } | { type: 'line'; name: string; line: string }) => void): () => void;
  stopAll(): Promise<void>;
}

export interface DrillSystem extends ProcessControl {}
