// Bench hook (bench/key-latency). With SOR_DRILLS_FRAME_LOG=<file> the console appends
// one line per key it reads, per frame Ink draws and per live-count poll, each with the
// wall-clock time in ms (performance.timeOrigin + performance.now(), the clock a harness
// in another process reads too):
//
//   key 1764600000123.456 tab
//   frame 1764600000140.012 screen=drill panel=diff drill=run_journal_resume_drill phase=running step=2 ask=- quit=- history=84
//   poll 1764600000150.500 queries=1 ms=3.2
//
// A frame line names what the frame shows, read from the store while Ink draws it (Ink's
// legacy root renders a store change synchronously, so the tree drawn is the store's), so
// a harness outside the terminal times a key press to the first frame showing its effect
// without reading the screen back (tmux capture-pane costs 5-20 ms a read). Unset (always,
// but under the bench) nothing is opened or written.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { ConsoleState } from '../store.js';

const file = process.env.SOR_DRILLS_FRAME_LOG;
let stream: WriteStream | undefined;

/** Whether the bench asked for the log. */
export const benchLogging = Boolean(file);

/** Appends one line (`<kind> <time> <text>`) when the bench asked for the log. */
export function benchLine(kind: 'key' | 'frame' | 'poll', text: string): void {
  if (!file) return;
  const at = performance.timeOrigin + performance.now();
  stream ??= createWriteStream(file, { flags: 'a' }).on('error', () => {});
  stream.write(`${kind} ${at.toFixed(3)} ${text}\n`);
}

/** What a frame of this state shows, as the frame line writes it. */
export function frameView(state: ConsoleState): string {
  const ask = state.ask ? (state.ask.performing ? 'performing' : state.ask.ask.kind) : '-';
  return [
    `screen=${state.screen.name}`,
    `panel=${state.panel}`,
    `drill=${state.current?.key ?? '-'}`,
    `phase=${state.current?.phase ?? '-'}`,
    `step=${state.current?.stepIndex ?? '-'}`,
    `ask=${ask}`,
    `quit=${state.confirmQuit ? 'asked' : '-'}`,
    `history=${state.history.length}`,
  ].join(' ');
}

/** A key as the key line writes it: its name for the named keys, else the characters typed. */
export function keyName(input: string, key: object): string {
  const named = Object.entries(key).find(([, value]) => value === true)?.[0];
  return named ?? JSON.stringify(input);
}
