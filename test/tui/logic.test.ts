// The console's non-UI logic, as pure functions: the editor, the key table
// and router, the event reducer, the autopilot's choice of key.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { applyEditorKey, editorWindow, wrapOffsets, wrapText } from '../../src/console/editor.js';
import { askKey, bindingById, bindings, footerEntries, helpEntries, isKey, matchesPress, pressOf, resolveKey } from '../../src/console/keys.js';
import { createKeyRouter, splitTypedAhead } from '../../src/console/key-router.js';
import { nextPress } from '../../src/console/autopilot.js';
import { applyRunnerEvent, drillRows } from '../../src/console/events.js';
import { getState, resetStore, update } from '../../src/store.js';
import type { Intent } from '../../src/console/intents.js';
import { listState, steps, summaries } from './helpers.js';

describe('editor', () => {
  it('wraps on words, keeping offsets contiguous', () => {
    const text = 'Release BLOCKED. idempotency_retry_test failed.\nSecond paragraph';
    const lines = wrapOffsets(text, 20);
    expect(lines.map((line) => text.slice(line.start, line.end))).toEqual([
      'Release BLOCKED. ',
      'idempotency_retry_te',
      'st failed.',
      'Second paragraph',
    ]);
    expect(wrapText('aaa bbb ccc', 7)).toEqual(['aaa bbb', 'ccc']);
  });

  it('types, deletes, moves by visual line', () => {
    let value = { text: 'one two three four', cursor: 0 };
    value = applyEditorKey(value, 'X', {}, 10);
    expect(value).toEqual({ text: 'Xone two three four', cursor: 1 });
    value = applyEditorKey(value, '', { delete: true }, 10);
    expect(value).toEqual({ text: 'one two three four', cursor: 0 });
    value = applyEditorKey(value, '', { downArrow: true }, 10);
    // 'one two ' | 'three four': column 0 of the second row.
    expect(value.cursor).toBe(8);
    value = applyEditorKey(value, '', { end: true }, 10);
    expect(value.cursor).toBe(18);
    value = applyEditorKey(value, '', { return: true }, 10);
    expect(value.text).toBe('one two three four\n');
    value = applyEditorKey(value, 'pasted\r\ntext', {}, 10);
    expect(value.text).toBe('one two three four\npasted\ntext');
    expect(applyEditorKey(value, 's', { ctrl: true }, 10)).toEqual(value);
  });

  it('scrolls the window to keep the cursor in view', () => {
    const text = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const view = editorWindow({ text, cursor: text.length }, 10, 3);
    expect(view.rows).toHaveLength(3);
    expect(view.cursorRow).toBeLessThan(3);
    expect(view.first + view.cursorRow).toBe(view.total - 1);
  });
});

describe('key table', () => {
  beforeEach(() => listState(0));

  it('the footer lists only active bindings, and each appears in help', () => {
    const helpKeys = new Set(helpEntries().flatMap((group) => group.entries.map((entry) => entry.keys)));
    for (const binding of bindings) expect(helpKeys.has(binding.keys)).toBe(true);
    expect(footerEntries(getState()).map((entry) => entry.keys)).toEqual(['enter', 'b', '?', 'q']);
  });

  it('enter means what the state says', () => {
    const enter = { input: '', key: { return: true } };
    expect(resolveKey(getState(), enter)?.id).toBe('open-drill');
    update({ screen: { name: 'drill' } });
    expect(resolveKey(getState(), enter)?.id).toBe('start-drill');
    update((state) => ({ current: { ...state.current!, phase: 'running' }, ask: { ask: { kind: 'start', processes: ['worker-a', 'worker-b'], prompt: 'start both' }, performing: false } }));
    expect(resolveKey(getState(), enter)?.intent(getState(), enter)).toEqual({ type: 'operator', kind: 'start' });
    update({ confirmQuit: 'quit?' });
    expect(resolveKey(getState(), enter)).toBeUndefined();
    expect(resolveKey(getState(), { input: 'y', key: {} })?.id).toBe('confirm-quit');
  });

  it('the keys that answer an operator ask come from the table, and resolve to the ask', () => {
    expect(askKey('kill')).toBe('k');
    expect(askKey('restart')).toBe('r');
    expect(askKey('start')).toBe('enter');
    expect(askKey('continue')).toBe('enter');
    update((state) => ({
      screen: { name: 'drill' },
      current: { ...state.current!, phase: 'running' },
      ask: { ask: { kind: 'continue', prompt: 'go on' }, performing: false },
    }));
    expect(resolveKey(getState(), pressOf(askKey('continue')))?.intent(getState(), pressOf('enter'))).toEqual({ type: 'operator', kind: 'continue' });
    expect(pressOf('ctrl+s')).toEqual({ input: 's', key: { ctrl: true } });
  });

  it("a binding's key is written once: the press its keys make is what it matches", () => {
    for (const binding of bindings.filter((candidate) => candidate.id !== 'editor')) {
      const written = binding.keys === '↑↓' ? ['↑', '↓'] : [binding.keys];
      for (const keys of written) expect(matchesPress(binding, pressOf(keys)), `${binding.id} ${keys}`).toBe(true);
    }
    expect(isKey('k', { input: 'k', key: { ctrl: true } })).toBe(false);
    expect(isKey('ctrl+s', { input: 's', key: {} })).toBe(false);
    expect(isKey('enter', { input: '', key: { escape: true } })).toBe(false);
    expect(matchesPress(bindingById('kill'), pressOf(askKey('restart')))).toBe(false);
  });

  it('the router splits typed-ahead keys and resolves each against the state the last left', () => {
    expect(splitTypedAhead('k\rq\t\u0013')).toEqual([
      { input: 'k', key: {} },
      { input: '', key: { return: true } },
      { input: 'q', key: {} },
      { input: '', key: { tab: true } },
      { input: 's', key: { ctrl: true } },
    ]);
    const intents: Intent[] = [];
    const route = createKeyRouter(getState, (intent) => {
      intents.push(intent);
      if (intent.type === 'open-drill') update({ screen: { name: 'drill' } });
    });
    route('\r\r', {});
    expect(intents).toEqual([{ type: 'open-drill' }, { type: 'start-drill', broken: false }]);
  });
});

describe('events', () => {
  it('fold into the current drill, the rows and the transcript', () => {
    resetStore({ drills: drillRows(summaries()) });
    applyRunnerEvent({ type: 'drill-started', key: 'rls_identity_flip_test', broken: true, steps: steps(2) });
    applyRunnerEvent({ type: 'tables', key: 'rls_identity_flip_test', tables: ['expenses'] });
    update((state) => ({ counts: { ...state.counts, tables: [{ name: 'expenses', count: 78, base: 70 }] } }));
    // Shown first, not run: nothing in the transcript yet.
    applyRunnerEvent({ type: 'step-ready', key: 'rls_identity_flip_test', index: 0, step: steps(2)[0]! });
    expect(getState().current).toMatchObject({ stepIndex: 0, steps: [{ state: 'ready' }, { state: 'waiting' }] });
    expect(getState().history).toHaveLength(2);
    applyRunnerEvent({ type: 'step-started', key: 'rls_identity_flip_test', index: 0, step: steps(2)[0]! });
    expect(getState().counts.tables[0]).toEqual({ name: 'expenses', count: 78, base: 78 });
    applyRunnerEvent({ type: 'sql', key: 'rls_identity_flip_test', sql: "select count(*)\n  from expenses where tenant_id = 'alice'" });
    // A statement run again at once (a poll) is printed once.
    applyRunnerEvent({ type: 'sql', key: 'rls_identity_flip_test', sql: "select count(*)\n  from expenses where tenant_id = 'alice'" });
    applyRunnerEvent({ type: 'observation', key: 'rls_identity_flip_test', label: 'alice rows', value: '47', ok: true });
    applyRunnerEvent({ type: 'step-finished', key: 'rls_identity_flip_test', index: 0, ok: true });
    // A step that showed nothing it ran: its declared statements go into the transcript.
    applyRunnerEvent({ type: 'step-started', key: 'rls_identity_flip_test', index: 1, step: steps(2)[1]! });
    applyRunnerEvent({ type: 'step-finished', key: 'rls_identity_flip_test', index: 1, ok: true });
    applyRunnerEvent({
      type: 'drill-finished',
      key: 'rls_identity_flip_test',
      result: { key: 'rls_identity_flip_test', verdict: 'fail', evidence: 'bob saw 47 alice rows', reason: 'rows leak', evidenceDirs: [], broken: true, notes: [], durationMs: 5 },
    });
    const state = getState();
    expect(state.current?.phase).toBe('finished');
    expect(state.drills.find((row) => row.key === 'rls_identity_flip_test')).toMatchObject({ status: 'fail', evidence: 'rows leak', broken: true });
    expect(state.history.map((line) => line.text)).toEqual([
      '',
      '━━ Drill 7/9 rls_identity_flip_test · Lesson 7: RLS · with its deliberate break',
      '  1. Step 1 title',
      '      SQL select count(*)',
      "            from expenses where tenant_id = 'alice'",
      '      · alice rows: 47',
      '  ✓ 1. Step 1 title',
      '  2. Step 2 title',
      '      SQL (as declared) select 2 as step',
      '  ✓ 2. Step 2 title',
      '  FAIL rls_identity_flip_test: rows leak (0.0 s)',
    ]);
  });
});

describe('autopilot', () => {
  /** What nextPress chose: the key the table writes for `binding`, and it resolves to that binding now. */
  function expectPress(options: { out?: string }, binding: string, keys = bindingById(binding).keys) {
    const press = nextPress(getState(), options);
    expect(press).toMatchObject({ binding, ...pressOf(keys) });
    expect(resolveKey(getState(), press!)?.id).toBe(binding);
    return press!;
  }

  it('presses what the operator would, with the keys of the key table', () => {
    listState(0);
    expectPress({}, 'open-drill');
    update((state) => ({
      screen: { name: 'drill' },
      current: { ...state.current!, phase: 'running' },
      processes: [
        { name: 'tool-server', pid: 1, state: 'running' },
        { name: 'worker-a', pid: 2, state: 'running' },
      ],
      panel: 'counts',
      selected: 0,
      ask: { ask: { kind: 'kill', process: 'worker-a', prompt: 'kill it' }, performing: false },
    }));
    // The asked process is not selected: to the processes panel, move there, then the kill key.
    expectPress({}, 'panel');
    update({ panel: 'diff' });
    expectPress({}, 'panel');
    update({ panel: 'processes' });
    expectPress({}, 'select', '↓');
    update({ selected: 1 });
    const kill = expectPress({}, 'kill', askKey('kill'));
    expect(resolveKey(getState(), kill)?.intent(getState(), kill)).toEqual({ type: 'kill' });
    update((state) => ({ ask: { ...state.ask!, performing: true } }));
    expect(nextPress(getState(), {})).toBeUndefined();
    update({ ask: { ask: { kind: 'restart', process: 'worker-a', prompt: 'restart it' }, performing: false } });
    expectPress({}, 'restart', askKey('restart'));
    update({ ask: { ask: { kind: 'start', processes: ['worker-a'], prompt: 'start them' }, performing: false } });
    expectPress({}, 'operator', askKey('start'));
    // A step shown and waiting: autoplay presses enter for it, as a person would; never while an ask waits.
    update((state) => ({
      ask: undefined,
      current: { ...state.current!, stepIndex: 1, steps: state.current!.steps.map((step, index) => ({ ...step, state: index === 1 ? ('ready' as const) : step.state })) },
    }));
    expect(expectPress({}, 'run-step', 'enter').id).toContain(':step:1');
    update({ ask: { ask: { kind: 'continue', prompt: 'go on' }, performing: false } });
    expectPress({}, 'operator', askKey('continue'));
    update((state) => ({ ask: undefined, current: { ...state.current!, phase: 'finished' } }));
    expectPress({}, 'next-drill');
  });

  it('starts over rather than resume a saved capstone', () => {
    resetStore({ screen: { name: 'resume' }, resume: { done: 3, total: 9, target: 't', updatedAt: 'u' } });
    expectPress({}, 'resume-no', 'n');
  });

  it('with --out saves the bundle, then quits; without it leaves the decision to the operator', () => {
    listState(8, {
      screen: { name: 'decision' },
      runFinished: true,
      decisions: [{ kind: 'run', decision: 'BLOCKED', bundle: [], passed: 8, text: 'x', cursor: 0, editing: true, path: 'b.md', saving: false, dirty: true }],
    });
    expect(nextPress(getState(), {})).toBeUndefined();
    expectPress({ out: 'b.md' }, 'edit-done');
    update((state) => ({ decisions: [{ ...state.decisions[0]!, editing: false }] }));
    expectPress({ out: 'b.md' }, 'save');
    update((state) => ({ decisions: [{ ...state.decisions[0]!, dirty: false, savedPath: '/x/b.md' }] }));
    expectPress({ out: 'b.md' }, 'quit');
  });

  it('never consents for the operator', () => {
    resetStore({ screen: { name: 'consent' } });
    expectPress({}, 'consent-no');
  });

  it('closes help with its key, and presses nothing while a question is asked', () => {
    listState(0, { screen: { name: 'help', back: { name: 'list' } } });
    expectPress({}, 'back');
    update({ confirmQuit: 'quit?' });
    expect(nextPress(getState(), {})).toBeUndefined();
  });
});

describe('operator', () => {
  it('an ask waits for its key; perform runs once; the drill goes on', async () => {
    const { createTuiOperator } = await import('../../src/console/operator.js');
    listState(1, { processes: [{ name: 'tool-server', pid: 1, state: 'running' }, { name: 'worker-a', pid: 2, state: 'running' }] });
    const operator = createTuiOperator();
    const perform = vi.fn(async () => {});
    let done = false;
    const asked = operator.request({ kind: 'kill', process: 'worker-a', prompt: 'kill' }, perform).then(() => {
      done = true;
    });
    expect(getState()).toMatchObject({ selected: 1, panel: 'processes', ask: { performing: false } });
    expect(await operator.satisfy('restart')).toBe(false);
    await Promise.resolve();
    expect(done).toBe(false);
    expect(await operator.satisfy('kill')).toBe(true);
    await asked;
    expect(perform).toHaveBeenCalledTimes(1);
    expect(getState().ask).toBeUndefined();
  });
});
