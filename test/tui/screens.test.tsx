// Each screen, driven by store states (no database): what it shows, and that
// the keys in the footer do what it says.
import { describe, expect, it, vi } from 'vitest';
import { applyRunnerEvent } from '../../src/console/events.js';
import { askKey } from '../../src/console/keys.js';
import { getState, resetStore, update } from '../../src/store.js';
import type { DrillResult } from '../../src/drills/types.js';
import { change, failOnActWarnings, inAct, keys, listState, renderConsole, steps, summaries, typed } from './helpers.js';

failOnActWarnings();

const plain = (frame: string) => frame.replace(/\u001b\[[0-9;]*m/g, '');

function result(key: DrillResult['key'], verdict: DrillResult['verdict'], evidence: string): DrillResult {
  return { key, verdict, evidence, reason: verdict === 'pass' ? undefined : evidence, evidenceDirs: [], broken: false, notes: [], durationMs: 1200 };
}

describe('boot', () => {
  it('draws the target and the progress before anything is up', async () => {
    resetStore({ boot: { target: 'embedded PostgreSQL (throwaway)', lines: ['starting PostgreSQL…'], phase: 'starting', elapsedMs: 1500 } });
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('Target'), 'the boot screen');
    expect(frame).toContain('embedded PostgreSQL (throwaway)');
    expect(frame).toContain('getting the target ready (1.5 s)');
    expect(frame).toContain('starting PostgreSQL…');
    expect(frame).toMatch(/q quit/);
    await change((state) => ({ boot: { ...state.boot, phase: 'failed', error: 'connection refused by postgres://x:***@h/db' } }));
    await ui.waitFor((text) => text.includes('✗ connection refused'), 'the failure');
    await ui.close();
  });

  it('asks consent before writing into a URL target; y answers it', async () => {
    resetStore({
      screen: { name: 'consent' },
      boot: {
        target: 'postgres://me:***@h/app',
        lines: [],
        phase: 'starting',
        elapsedMs: 0,
        consent: { question: 'postgres://me:***@h/app holds tables of its own (users) and no Reconciler schema', installs: true },
      },
    });
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('Write into this database?'), 'the consent prompt');
    expect(ui.frame()).toContain('tables of its own (users)');
    expect(ui.frame()).toContain('y install the reference schema');
    await ui.press('y');
    expect(ui.intents).toEqual([{ type: 'consent', yes: true }]);
    await ui.close();
  });
});

describe('drill list', () => {
  it('shows the nine drills with lesson, status and evidence, and the footer', async () => {
    listState(2);
    await change((state) => ({
      drills: state.drills.map((row, index) =>
        index === 0
          ? { ...row, status: 'pass' as const, evidence: 'Migration adds notes column; rolled back on cap-migration-1' }
          : index === 1
            ? { ...row, status: 'fail' as const, evidence: 'turn 2 re-executed 3 tool calls' }
            : row,
      ),
    }));
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    for (const summary of summaries()) expect(frame).toContain(summary.key);
    expect(frame).toContain('✓ migration_review');
    expect(frame).toContain('Migration adds notes column');
    expect(frame).toContain('✗ run_journal_resume_drill');
    expect(frame).toContain('L3 idempotency keys');
    expect(frame).toContain('2 of 9 done · 1 pass · 1 fail');
    expect(frame).toContain('enter open drill 3');
    expect(frame).toContain('? help');
    expect(frame).toContain('q quit');
    await ui.close();
  });

  it('enter opens the next drill; enter starts it; b starts it broken', async () => {
    listState(0);
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('enter open drill 1'), 'the footer');
    await ui.press(keys.enter);
    await ui.waitFor((text) => text.includes('Deliberate break:'), 'the intro');
    expect(ui.frame()).toContain('Step 1 title');
    await ui.press('b');
    expect(ui.intents).toEqual([{ type: 'open-drill' }, { type: 'start-drill', broken: true }]);
    await ui.close();
  });
});

describe('help', () => {
  it('? shows every key from the table; esc goes back', async () => {
    listState(0);
    const ui = await renderConsole();
    await ui.press('?');
    const frame = await ui.waitFor((text) => text.includes('Keys'), 'help');
    for (const key of ['enter', 'k ', 'r ', '↑↓', 'tab', 'b ', 'esc', 'q ', 'ctrl+s']) expect(frame).toContain(key);
    await ui.press(keys.escape);
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list again');
    await ui.close();
  });
});

describe('drill screen', () => {
  async function runningDrill() {
    listState(2, { screen: { name: 'drill' } });
    await inAct(() => {
      applyRunnerEvent({ type: 'drill-started', key: 'idempotency_retry_test', broken: false, steps: steps(3) });
      applyRunnerEvent({ type: 'tables', key: 'idempotency_retry_test', tables: ['expenses', 'tool_calls'] });
      applyRunnerEvent({ type: 'step-started', key: 'idempotency_retry_test', index: 1, step: steps(3)[1]! });
      applyRunnerEvent({ type: 'sql', key: 'idempotency_retry_test', sql: "insert into expenses (tenant_id, idempotency_key)\nvalues ($1, $2)\non conflict do nothing" });
    });
  }

  it('shows the step, why, the SQL and the live counts with the delta since the step began', async () => {
    await runningDrill();
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('▶ Step 2 of 3 · Step 2 title · running'), 'the step');
    expect(ui.frame()).toContain('Why step 2 matters');
    expect(ui.frame()).toContain('SQL insert into expenses');
    expect(ui.frame()).toContain('on conflict do nothing');
    // The poller's first read sets the base; a later read shows the delta.
    await change((state) => ({ counts: { ...state.counts, tables: [{ name: 'expenses', count: 78, base: 78 }, { name: 'tool_calls', count: 4, base: 4 }] } }));
    await change((state) => ({ counts: { ...state.counts, tables: [{ name: 'expenses', count: 79, base: 78 }, { name: 'tool_calls', count: 6, base: 4 }] } }));
    const frame = await ui.waitFor((text) => /expenses\s+79\s+\+1/.test(text), 'the delta');
    expect(frame).toMatch(/tool_calls\s+6\s+\+2/);
    await ui.close();
  });

  it('shows the oracle diff, + and - lines, and tab cycles the panels', async () => {
    await runningDrill();
    await inAct(() =>
      applyRunnerEvent({
        type: 'diff',
        key: 'idempotency_retry_test',
        text: '--- before\n+++ after\n@@ expenses @@\n+{"tenant":"alice","key":"k-1"}\n-{"tenant":"bob","key":"k-0"}\n',
        folder: '.agent-history/oracle/idempotency_retry_test/20260101T000000Z',
      }),
    );
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('normalised diff'), 'the diff panel');
    expect(frame).toContain('+{"tenant":"alice","key":"k-1"}');
    expect(frame).toContain('-{"tenant":"bob","key":"k-0"}');
    await ui.press(keys.tab);
    await ui.waitFor((text) => text.includes('no processes yet'), 'the processes panel');
    await ui.press(keys.tab);
    await ui.waitFor((text) => text.includes('table') && text.includes('Δ since step'), 'the counts panel');
    await ui.close();
  });

  it('asks for k on the Worker, kills it through perform(), then asks for r', async () => {
    await runningDrill();
    await change({
      processes: [
        { name: 'tool-server', pid: 101, state: 'running', lastLine: 'listening on 127.0.0.1:5001' },
        { name: 'worker-a', pid: 102, state: 'running', lastLine: 'turn 3 of 5: write T-103' },
      ],
    });
    const ui = await renderConsole();
    const perform = vi.fn(async () => {
      update((state) => ({ processes: state.processes.map((p) => (p.name === 'worker-a' ? { ...p, state: 'killed', signal: 'SIGKILL' } : p)) }));
    });
    let asked!: Promise<void>;
    await inAct(() => {
      asked = ui.controller.operator.request({ kind: 'kill', process: 'worker-a', prompt: 'The Worker is in turn 3 of 5: kill it (SIGKILL)' }, perform);
    });
    const frame = await ui.waitFor((text) => text.includes(`press ${askKey('kill')}  The Worker is in turn 3 of 5: kill it`), 'the ask');
    expect(frame).toContain(`${askKey('kill')} kill worker-a`);
    expect(frame).toMatch(/› worker-a/);
    await ui.press(typed(askKey('kill')));
    await inAct(() => asked);
    expect(perform).toHaveBeenCalledTimes(1);
    await ui.waitFor((text) => text.includes('killed (SIGKILL)'), 'the killed Worker');

    const restart = vi.fn(async () => {});
    await inAct(() => {
      asked = ui.controller.operator.request({ kind: 'restart', process: 'worker-a', prompt: `Crash signature seen: press ${askKey('restart')} to restart the Worker` }, restart);
    });
    await ui.waitFor((text) => text.includes(`${askKey('restart')} restart worker-a`), 'the restart ask');
    await ui.press(typed(askKey('restart')));
    await inAct(() => asked);
    expect(restart).toHaveBeenCalledTimes(1);
    await ui.close();
  });

  it('typed-ahead keys are handled one by one', async () => {
    await runningDrill();
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('live counts'), 'the drill');
    await ui.press('\t\t');
    await ui.waitFor((text) => text.includes('no processes yet'), 'two tabs: processes');
    await ui.close();
  });

  it('q asks first while a drill runs; n stays, y quits with 130', async () => {
    await runningDrill();
    const ui = await renderConsole();
    await ui.press('q');
    await ui.waitFor((text) => text.includes('is running: quit'), 'the question');
    await ui.press('n');
    await ui.waitFor((text) => !text.includes('is running: quit'), 'the question gone');
    expect(ui.controller.quitting).toBe(false);
    await ui.press('q');
    await ui.press('y');
    await expect(ui.controller.quit).resolves.toBe(130);
    await ui.close();
  });

  it('shows the verdict when the drill finished, and enter moves on', async () => {
    await runningDrill();
    await inAct(() =>
      applyRunnerEvent({
        type: 'drill-finished',
        key: 'idempotency_retry_test',
        result: result('idempotency_retry_test', 'pass', 'Two invocations with the same idempotency key produced one expenses row. Row count delta: +1.'),
      }),
    );
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('✓ PASS'), 'the verdict');
    expect(ui.frame()).toContain('Row count delta: +1');
    expect(ui.frame()).toContain('enter next drill');
    await ui.press(keys.enter);
    expect(ui.intents).toEqual([{ type: 'next-drill' }]);
    await ui.close();
  });
});

describe('decision', () => {
  function decisionState(permitted: boolean) {
    listState(8, {
      screen: { name: 'decision' },
      runFinished: true,
      decisions: [
        {
          kind: 'run',
          decision: permitted ? 'PERMITTED' : 'BLOCKED',
          bundle: [
            ...summaries().map((s): [string, string] => [s.key, s.key === 'idempotency_retry_test' && !permitted ? 'fail: delta +2' : 'pass']),
            ['release_decision', permitted ? 'PERMITTED: all nine drills passed' : 'BLOCKED: idempotency_retry_test (Lesson 3, idempotency keys)'],
          ],
          passed: permitted ? 9 : 8,
          text: 'Release BLOCKED. Eight of nine drills passed.',
          cursor: 0,
          editing: false,
          path: 'bundle.md',
          saving: false,
          dirty: true,
        },
      ],
      mastery: { offered: permitted, selected: 2, running: false },
    });
  }

  it('shows the bundle with each verdict and the paragraph; e edits, ctrl+s saves', async () => {
    decisionState(false);
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('Release BLOCKED'), 'the decision');
    expect(frame).toContain('"idempotency_retry_test": "fail: delta +2"');
    expect(frame).toContain('"release_decision": "BLOCKED: idempotency_retry_test');
    expect(frame).toContain('Release BLOCKED. Eight of nine drills passed.');
    expect(frame).toContain('not saved yet: ctrl+s writes bundle.md');
    await ui.press('e');
    await ui.waitFor((text) => text.includes('editing:'), 'edit mode');
    // In the editor letters are text, not keys: q types a q.
    await ui.press('q!');
    await ui.press(keys.backspace);
    await ui.press(keys.enter);
    await ui.press('Signed: QA');
    await ui.waitFor((text) => text.includes('Signed: QA'), 'the typed text');
    expect(getState().decisions[0]!.text).toBe('q\nSigned: QARelease BLOCKED. Eight of nine drills passed.');
    await ui.press(keys.ctrlS);
    expect(ui.intents.at(-1)).toEqual({ type: 'save' });
    // What a save leaves in the store (src/console/decision.ts writes the file): the screen shows where.
    await change((state) => ({ decisions: state.decisions.map((d) => ({ ...d, savedPath: '/tmp/bundle.md', dirty: false })) }));
    await ui.waitFor((text) => text.includes('saved to /tmp/bundle.md'), 'the saved path');
    await ui.press(keys.escape);
    await ui.press('q');
    await expect(ui.controller.quit).resolves.toBe(1);
    await ui.close();
  });

  it('offers the mastery gate when all nine passed', async () => {
    decisionState(true);
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('m repeats one drill'), 'the offer');
    await ui.press('m');
    await ui.waitFor((text) => text.includes('Mastery gate'), 'the mastery screen');
    await ui.press(keys.down);
    await ui.press(keys.enter);
    expect(ui.intents.at(-1)).toEqual({ type: 'mastery-run', key: 'concurrency_claim_test' });
    await ui.close();
  });
});
