// Terminal manners: at 80x24 and 160x50 every screen's live region stays
// shorter than the terminal (no flicker, no wiped scrollback) and no row is
// wider than it; below 80x24 a message replaces the layout; resizing redraws.
import { describe, expect, it } from 'vitest';
import { applyRunnerEvent } from '../../src/console/events.js';
import { resetStore, update, type ConsoleState } from '../../src/store.js';
import { change, failOnActWarnings, inAct, listState, renderSized, steps, summaries } from './helpers.js';

failOnActWarnings();

const visible = (line: string) => [...line.replace(/\u001b\[[0-9;]*m/g, '')].length;

function linesOf(frame: string): string[] {
  return frame.replace(/\n$/, '').split('\n');
}

const long = (words: number) => Array.from({ length: words }, (_, index) => `word${index}`).join(' ');

const states: Record<string, () => Promise<void> | void> = {
  boot: () =>
    resetStore({ boot: { target: 'embedded PostgreSQL', lines: Array.from({ length: 60 }, (_, i) => `progress line ${i} ${long(30)}`), phase: 'starting', elapsedMs: 900 } }),
  consent: () =>
    resetStore({ screen: { name: 'consent' }, boot: { target: 'postgres://x:***@h/db', lines: [], phase: 'starting', elapsedMs: 0, consent: { question: long(300), installs: true } } }),
  list: () => {
    listState(5);
    update((state) => ({
      drills: state.drills.map((row, index) => (index < 5 ? { ...row, status: index % 2 ? 'fail' : 'pass', evidence: long(60) } : row)),
    }));
  },
  intro: () => {
    listState(1, { screen: { name: 'drill' } });
    update((state) => ({ current: { ...state.current!, steps: steps(14).map((step) => ({ ...step, why: long(40), state: 'waiting' as const })) } }));
  },
  running: async () => {
    listState(2, { screen: { name: 'drill' } });
    applyRunnerEvent({ type: 'drill-started', key: 'idempotency_retry_test', broken: true, steps: steps(4).map((s) => ({ ...s, why: long(80) })) });
    applyRunnerEvent({ type: 'tables', key: 'idempotency_retry_test', tables: Array.from({ length: 40 }, (_, i) => `table_${i}`) });
    applyRunnerEvent({ type: 'step-started', key: 'idempotency_retry_test', index: 1, step: steps(4)[1]! });
    applyRunnerEvent({ type: 'sql', key: 'idempotency_retry_test', sql: Array.from({ length: 30 }, (_, i) => `select ${i}, ${long(40)}`).join('\n') });
    update({ ask: { ask: { kind: 'kill', process: 'worker-a', prompt: long(50) }, performing: false } });
  },
  diff: async () => {
    await states.running!();
    applyRunnerEvent({ type: 'diff', key: 'idempotency_retry_test', text: Array.from({ length: 200 }, (_, i) => `+${long(i % 30)}`).join('\n'), folder: '.agent-history/oracle/x' });
    update({ panel: 'diff' });
  },
  processes: async () => {
    await states.running!();
    update({
      panel: 'processes',
      processes: Array.from({ length: 30 }, (_, i) => ({ name: `process-${i}-${long(3)}`, pid: 1000 + i, state: 'running', lastLine: long(40) })),
    });
  },
  finished: async () => {
    await states.running!();
    applyRunnerEvent({
      type: 'drill-finished',
      key: 'idempotency_retry_test',
      result: { key: 'idempotency_retry_test', verdict: 'fail', evidence: long(80), reason: long(80), evidenceDirs: ['a', 'b'], broken: true, notes: [], durationMs: 10 },
    });
  },
  decision: () => {
    listState(8, {
      screen: { name: 'decision' },
      runFinished: true,
      mastery: { offered: true, selected: 0, running: false },
      decisions: [
        {
          kind: 'run',
          decision: 'BLOCKED',
          bundle: [...summaries().map((s): [string, string] => [s.key, `fail: ${long(30)}`]), ['release_decision', `BLOCKED: ${long(40)}`]],
          passed: 0,
          text: long(400),
          cursor: 1500,
          editing: true,
          path: 'bundle.md',
          saving: false,
          dirty: true,
        },
      ],
    });
  },
  mastery: () => listState(8, { screen: { name: 'mastery' }, runFinished: true }),
  help: () => listState(0, { screen: { name: 'help', back: { name: 'list' } } }),
  exiting: () => resetStore({ screen: { name: 'exiting' }, exiting: { lines: Array.from({ length: 40 }, (_, i) => `line ${i}`) } }),
};

describe.each([
  [80, 24],
  [160, 50],
  [100, 30],
])('at %ix%i', (columns, rows) => {
  it.each(Object.keys(states))('%s fits: fewer rows than the terminal, none wider', async (name) => {
    await inAct(() => states[name]!());
    await change({ terminal: { columns, rows }, history: [] } as Partial<ConsoleState>);
    const ui = await renderSized(columns, rows);
    const lines = linesOf(ui.frame());
    expect(lines.length, ui.frame()).toBeLessThan(rows);
    for (const line of lines) expect(visible(line), line).toBeLessThanOrEqual(columns);
    await ui.close();
  });
});

describe('small terminals and resizing', () => {
  it('below 80x24 shows a message instead of the layout, and redraws when resized', async () => {
    listState(0);
    const ui = await renderSized(79, 24);
    expect(ui.frame()).toContain('Terminal too small: 79x24');
    expect(ui.frame()).toContain('needs 80x24');
    await change({ terminal: { columns: 120, rows: 23 } });
    expect(ui.frame()).toContain('Terminal too small: 120x23');
    await change({ terminal: { columns: 120, rows: 40 } });
    expect(ui.frame()).toContain('Nine drills, in order');
    await ui.close();
  });
});
