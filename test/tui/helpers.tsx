// Rendering the console's screens from store states, with no database: every
// update goes through act(), frames are awaited with a predicate (never a fixed
// sleep), and any React act() warning fails the test.
import { EventEmitter } from 'node:events';
import React, { act } from 'react';
import { render as inkRender } from 'ink';
import { afterEach, beforeEach, expect, vi } from 'vitest';
import { render } from 'ink-testing-library';
import { App } from '../../src/app.js';
import { ConsoleController } from '../../src/console/controller.js';
import type { Intent } from '../../src/console/intents.js';
import { createKeyRouter } from '../../src/console/key-router.js';
import { getState, resetStore, update, type ConsoleState } from '../../src/store.js';
import type { BundleKey, DrillSummary, StepSummary } from '../../src/drills/types.js';
import { bundleKeys } from '../../src/drills/types.js';
import { drillRows } from '../../src/console/events.js';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let actWarnings: string[] = [];
const mounted: Array<() => void> = [];

/** Installs the act() warning trap for every test of the file. */
export function failOnActWarnings(): void {
  beforeEach(() => {
    actWarnings = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      const text = args.map(String).join(' ');
      if (/act\(/.test(text) || /not wrapped in act/.test(text)) actWarnings.push(text);
      else process.stderr.write(`${text}\n`);
    });
  });
  afterEach(async () => {
    // A test that failed half-way must not leave its console listening to the next test's store.
    for (const unmount of mounted.splice(0)) await act(async () => unmount());
    vi.restoreAllMocks();
    expect(actWarnings, 'React act() warnings').toEqual([]);
  });
}

export type Rendered = ReturnType<typeof render> & {
  controller: ConsoleController;
  /** Every intent the key router dispatched, in order (what a key asked the console to do). */
  intents: Intent[];
  press(input: string): Promise<void>;
  frame(): string;
  waitFor(predicate: (frame: string) => boolean, what?: string, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
};

export const keys = {
  enter: '\r',
  escape: '\u001b',
  tab: '\t',
  up: '\u001b[A',
  down: '\u001b[B',
  ctrlC: '\u0003',
  ctrlS: '\u0013',
  backspace: '\u007f',
};

/** What the terminal sends for a key as the key table writes it ('k', 'enter', 'ctrl+s'): tests press the table's key. */
export function typed(written: string): string {
  const named: Record<string, string> = { enter: keys.enter, esc: keys.escape, tab: keys.tab, '↑': keys.up, '↓': keys.down };
  if (named[written]) return named[written];
  if (written.startsWith('ctrl+')) return String.fromCharCode(written.charCodeAt('ctrl+'.length) - 96);
  return written;
}

/** Renders the whole console (App + real key router + a real controller, by default one with nothing started) over the store as it is. */
export async function renderConsole(controller = new ConsoleController()): Promise<Rendered> {
  const intents: Intent[] = [];
  const onKey = createKeyRouter(getState, (intent) => {
    intents.push(intent);
    controller.dispatch(intent);
  });
  let rendered!: ReturnType<typeof render>;
  await act(async () => {
    rendered = render(<App onKey={onKey} />);
  });
  mounted.push(() => rendered.unmount());
  const frame = () => rendered.lastFrame() ?? '';
  return {
    ...rendered,
    controller,
    intents,
    frame,
    async press(input: string) {
      await act(async () => {
        rendered.stdin.write(input);
      });
    },
    async waitFor(predicate, what = 'a frame', timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const current = frame();
        if (predicate(current)) return current;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last frame:\n${current}`);
        await act(async () => {
          await new Promise((resolve) => setTimeout(resolve, 10));
        });
      }
    },
    async close() {
      await act(async () => {
        rendered.unmount();
      });
    },
  };
}

/** Changes the store inside act(), as the console's logic would. */
export async function change(partial: Partial<ConsoleState> | ((state: ConsoleState) => Partial<ConsoleState>)): Promise<void> {
  await act(async () => {
    update(partial);
  });
}

export async function inAct(work: () => void | Promise<void>): Promise<void> {
  await act(async () => {
    await work();
  });
}

export function summaries(): DrillSummary[] {
  const habits = ['migrations', 'run journal', 'idempotency keys', 'claims', 'outbox', 'events', 'RLS', 'MCP boundary', 'forensics'];
  return bundleKeys.map((key, index) => ({
    number: index + 1,
    key,
    title: `Drill ${index + 1} title`,
    lesson: index + 1,
    habit: habits[index]!,
    tables: index === 2 ? ['expenses', 'tool_calls'] : ['runs'],
    breakDescription: `break of ${key}`,
    // As the real migration drill: it branches the target by template, so it needs the target to itself.
    ...(key === 'migration_review' ? { needsExclusiveDatabase: true } : {}),
  }));
}

export function steps(count = 3): StepSummary[] {
  return Array.from({ length: count }, (_, index) => ({
    id: `s${index + 1}`,
    title: `Step ${index + 1} title`,
    why: `Why step ${index + 1} matters, in a sentence or two.`,
    sql: [`select ${index + 1} as step`],
    hint: { look: `What step ${index + 1} shows.`, mistake: `The mistake at step ${index + 1}.` },
  }));
}

/** A store with the nine drills listed, drill `index` ready to start. */
export function listState(index = 0, overrides: Partial<ConsoleState> = {}): void {
  const rows = drillRows(summaries());
  resetStore({
    terminal: { columns: 100, rows: 40 },
    screen: { name: 'list' },
    boot: { target: 'postgres://me:***@db.example/reconciler', lines: [], phase: 'ready', elapsedMs: 0 },
    drills: rows,
    nextIndex: index,
    current: {
      key: rows[index]!.key as BundleKey,
      phase: 'ready',
      broken: false,
      mastery: false,
      steps: steps().map((step) => ({ ...step, state: 'waiting' as const })),
      stepIndex: -1,
      sql: [],
      sqlPrinted: 0,
      tables: rows[index]!.tables,
      evidenceDirs: [],
    },
    ...overrides,
  });
}

export { getState };

class SizedStdout extends EventEmitter {
  frames: string[] = [];
  isTTY = true;
  constructor(
    public columns: number,
    public rows: number,
  ) {
    super();
  }
  write = (frame: string) => {
    this.frames.push(frame);
    return true;
  };
}

class FakeStdin extends EventEmitter {
  isTTY = true;
  private data: string | null = null;
  write(data: string) {
    this.data = data;
    this.emit('readable');
  }
  read = () => {
    const { data } = this;
    this.data = null;
    return data;
  };
  setEncoding() {}
  setRawMode() {}
  resume() {}
  pause() {}
  ref() {}
  unref() {}
}

/** Renders the console into a terminal of this size (ink-testing-library's is always 100 columns). */
export async function renderSized(columns: number, rows: number) {
  update({ terminal: { columns, rows } });
  const stdout = new SizedStdout(columns, rows);
  const stdin = new FakeStdin();
  const controller = new ConsoleController();
  const onKey = createKeyRouter(getState, controller.dispatch);
  let instance!: ReturnType<typeof inkRender>;
  await act(async () => {
    instance = inkRender(<App onKey={onKey} />, {
      stdout: stdout as unknown as NodeJS.WriteStream,
      stdin: stdin as unknown as NodeJS.ReadStream,
      stderr: new SizedStdout(columns, rows) as unknown as NodeJS.WriteStream,
      debug: true,
      exitOnCtrlC: false,
      patchConsole: false,
    });
  });
  mounted.push(() => instance.unmount());
  return {
    frame: () => stdout.frames[stdout.frames.length - 1] ?? '',
    press: (input: string) => act(async () => stdin.write(input)),
    close: () => act(async () => instance.unmount()),
  };
}
