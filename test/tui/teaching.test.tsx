// The console that teaches, over fake drills (no database): a step shown with its
// statements before it runs, enter running it and the next one waiting, `a` running
// the rest, the transcript keeping what ran (values shown, passwords masked), the
// hint, drill 1's proposal with its marks, and the resume prompt.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bindingById } from '../../src/console/keys.js';
import { getState } from '../../src/store.js';
import type { Proposal } from '../../src/drills/types.js';
import { fakeDeps, startConsole } from './fake-console.js';
import { change, failOnActWarnings, inAct, keys, listState, renderConsole, typed } from './helpers.js';
import { resetStore } from '../../src/store.js';

failOnActWarnings();

const transcript = () => getState().history.map((line) => line.text);

describe('step by step', () => {
  it('shows a step and its SQL before it runs; enter runs it and the next waits; a runs the rest', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole({ breaks: [], yes: true }, fakeDeps(log));
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    await ui.press(keys.enter);
    // Drill 1 opened: step 1 with its statement on screen, and nothing run.
    const first = await ui.waitFor((text) => text.includes('▷ Step 1 of 2 · migration_review step one · not run yet'), 'step 1 shown');
    expect(first).toContain('SQL select 1');
    expect(first).toContain('enter: run step 1 · a: the whole drill');
    expect(log.some((line) => line.startsWith('run '))).toBe(false);
    expect(transcript().some((line) => line.includes('migration_review step one'))).toBe(false);

    await ui.press(typed(bindingById('start-drill').keys));
    // Step 1 ran (its declared statement is in the transcript); step 2 waits, its statements not yet run.
    await ui.waitFor((text) => text.includes('▷ Step 2 of 2 · migration_review step two · not run yet'), 'step 2 waits');
    expect(transcript()).toContain('  ✓ 1. migration_review step one');
    expect(transcript()).toContain('      SQL (as declared) select 1');
    expect(transcript().some((line) => line.includes('migration_review step two'))).toBe(false);
    expect(ui.frame()).toContain('enter run step 2');

    await ui.press(typed(bindingById('run-step').keys));
    await ui.waitFor((text) => text.includes('✓ PASS'), 'the verdict');
    // What step 2 ran is in the transcript with its values, the password masked.
    const ran = transcript().find((line) => line.includes('select count(*) from migration_review'));
    expect(ran).toBe("      SQL select count(*) from migration_review where tenant_id = 'alice'; alter role r password '***'");
    expect(transcript().join('\n')).not.toContain('hunter22');
    expect(transcript()).toContain('      · rows: 2');

    // Drill 2: a runs it through; its ask still waits for its own key.
    await ui.press(keys.enter);
    await ui.waitFor((text) => text.includes('▷ Step 1 of 2 · run_journal_resume_drill step one'), 'drill 2 shown');
    await ui.press(typed(bindingById('run-rest').keys));
    await ui.waitFor((text) => text.includes('kill it (SIGKILL)'), 'the kill ask waits for k');
    await ui.press('k');
    await ui.waitFor((text) => text.includes('✓ PASS'), 'drill 2 ran to the end without stopping');
    expect(transcript()).toContain('  ✓ 2. run_journal_resume_drill step two');

    await ui.press('q');
    await ui.waitFor(() => ui.controller.quitting, 'quit');
    await ui.close();
  });

  it('a step waiting for enter is stopped by quitting: the drill ends could-not-determine, not a fail', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const ui = await startConsole({ breaks: [], yes: true }, fakeDeps([]));
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    await ui.press(keys.enter);
    await ui.press(keys.enter);
    await ui.waitFor((text) => text.includes('▷ Step 2 of 2'), 'step 2 waits');
    await ui.press('q');
    await ui.waitFor((text) => text.includes('quit, stopping it'), 'the question');
    await ui.press('y');
    await expect(ui.controller.quit).resolves.toBe(130);
    await inAct(() => ui.controller.settled());
    expect(transcript().some((line) => line.includes('stopped by the operator'))).toBe(true);
    await ui.close();
  });
});

describe('a long statement', () => {
  it('wraps to the terminal instead of being cut at its edge', async () => {
    const long = `select "id", "status", "attempts", "last_error", "next_attempt_at", "dispatched_at" from outbox where "dedup_key" = 'expense-recorded:alice:T-101' and "tenant_id" = 'alice' -- the end`;
    listState(0, { screen: { name: 'drill' }, terminal: { columns: 80, rows: 24 } });
    await change((state) => ({
      current: { ...state.current!, steps: state.current!.steps.map((step, index) => (index === 0 ? { ...step, sql: [long] } : step)) },
    }));
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('SQL select "id"'), 'the statement');
    expect(frame).toContain('-- the end');
    expect(frame.split('\n').every((line) => line.length <= 80)).toBe(true);
    await ui.close();
  });
});

describe('the hint', () => {
  it('h shows what to look for, the habit and the mistake for the step shown; esc closes it', async () => {
    listState(2, { screen: { name: 'drill' } });
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('h hint'), 'the hint key in the footer');
    await ui.press(typed(bindingById('hint').keys));
    const frame = await ui.waitFor((text) => text.includes('What to look for'), 'the hint');
    expect(frame).toContain('What step 1 shows.');
    expect(frame).toContain("The lesson's habit");
    expect(frame).toContain(getState().drills[2]!.habit);
    expect(frame).toContain('The mistake people make here');
    expect(frame).toContain('The mistake at step 1.');
    expect(ui.frame()).toContain('esc close hint');
    await ui.press(keys.escape);
    await ui.waitFor((text) => !text.includes('What to look for'), 'the hint closed');
    expect(getState().screen.name).toBe('drill');
    await ui.close();
  });

  it('fits an 80x24 terminal whole', async () => {
    const long = 'A sentence a learner reads slowly, about what the step shows and why it matters here. '.repeat(3).trim();
    listState(0, { screen: { name: 'drill' }, terminal: { columns: 80, rows: 24 }, hint: true });
    await change((state) => ({
      current: { ...state.current!, steps: state.current!.steps.map((step) => ({ ...step, hint: { look: long, mistake: long } })) },
    }));
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('The mistake people make here'), 'the hint');
    // The mistake's last words are on screen: nothing cut off.
    expect(frame).toContain('and why it matters here.');
    expect(frame.split('\n').filter((line) => line.includes('and why it matters here.')).length).toBeGreaterThanOrEqual(2);
    await ui.close();
  });
});

describe("drill 1's proposal", () => {
  const proposal: Proposal = {
    file: 'fixtures/proposed/rider.sql',
    sections: [
      {
        direction: 'up',
        present: true,
        statements: [
          { text: 'alter table expenses add column notes text', marks: [] },
          { text: 'update tenants set name = upper(name)', marks: [{ kind: 'other-table', text: 'touches tenants, not expenses' }] },
          { text: 'drop table tenants', marks: [{ kind: 'destructive', text: 'destructive: DROP TABLE tenants' }] },
        ],
      },
      { direction: 'down', present: false, statements: [] },
    ],
  };

  it('shows the up and the down before the drill runs, with what the parser found marked', async () => {
    listState(0, { screen: { name: 'drill' } });
    await change((state) => ({ current: { ...state.current!, proposal } }));
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('proposal fixtures/proposed/rider.sql'), 'the proposal');
    expect(frame).toMatch(/up\s+alter table expenses add column notes text/);
    expect(frame).toContain('✗ touches tenants, not expenses');
    expect(frame).toContain('✗ destructive: DROP TABLE tenants');
    expect(frame).toMatch(/down\s+✗ missing: the file has no -- migrate:down section/);
    await ui.close();
  });

  it('is read from the file by the console when drill 1 opens', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const deps = fakeDeps([]);
    const ui = await startConsole({ breaks: [], yes: true }, deps);
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    await ui.press(keys.enter);
    // The fake drills have no proposal of their own: the console shows none, and no proposal tab.
    await ui.waitFor((text) => text.includes('▷ Step 1 of 2'), 'drill 1');
    expect(getState().current?.proposal).toBeUndefined();
    await ui.press('q');
    await ui.close();
  });
});

describe('the resume prompt', () => {
  it('offers the saved capstone: enter resumes, n starts over', async () => {
    resetStore({
      screen: { name: 'resume' },
      resume: { done: 4, total: 9, target: 'embedded PostgreSQL', updatedAt: '2026-12-01T10:00:00.000Z' },
    });
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('Resume capstone'), 'the prompt');
    expect(frame).toContain('Resume capstone (4 of 9 done)? enter resumes · n starts over');
    expect(frame).toContain('drill 5 starts again from its first step');
    await ui.press(keys.enter);
    await ui.press('n');
    expect(ui.intents).toEqual([
      { type: 'resume', yes: true },
      { type: 'resume', yes: false },
    ]);
    await ui.close();
  });
});

describe('a capstone that resumes', () => {
  let cwd: string | undefined;
  afterEach(() => {
    if (cwd) rmSync(cwd, { recursive: true, force: true });
    cwd = undefined;
  });

  async function console(dir: string) {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    return startConsole({ breaks: [], yes: true }, fakeDeps([], { capstoneCwd: dir }));
  }

  it('quit after drill 2 and start again: resume keeps drills 1 and 2 and opens drill 3; n starts over', async () => {
    cwd = mkdtempSync(path.join(tmpdir(), 'sor-capstone-'));
    const first = await console(cwd);
    await first.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    await first.press(keys.enter);
    await first.press('a');
    await first.waitFor((text) => text.includes('✓ PASS'), 'drill 1 passed');
    await first.press(keys.enter);
    await first.waitFor((text) => text.includes('▷ Step 1 of 2 · run_journal_resume_drill'), 'drill 2 shown');
    await first.press('a');
    await first.waitFor((text) => text.includes('kill it (SIGKILL)'), 'the kill ask');
    await first.press('k');
    await first.waitFor((text) => text.includes('✓ PASS') && text.includes('run_journal_resume_drill'), 'drill 2 passed');
    // Drill 3 opened and its first step run, then quit mid-drill: drill 3 is not kept.
    await first.press(keys.enter);
    await first.waitFor((text) => text.includes('▷ Step 1 of 2 · idempotency_retry_test'), 'drill 3 shown');
    await first.press(keys.enter);
    await first.waitFor((text) => text.includes('▷ Step 2 of 2 · idempotency_retry_test'), 'drill 3 half-way');
    await first.press('q');
    await first.press('y');
    await expect(first.controller.quit).resolves.toBe(130);
    await inAct(() => first.controller.settled());
    await first.close();
    const saved = readdirSync(path.join(cwd, '.sor-drills'));
    expect(saved).toHaveLength(1);
    expect(saved[0]).toMatch(/^db\.example-5432-app-[0-9a-f]{8}$/);
    const state = JSON.parse(readFileSync(path.join(cwd, '.sor-drills', saved[0]!, 'capstone.json'), 'utf8'));
    expect(state.results.map((result: { key: string }) => result.key)).toEqual(['migration_review', 'run_journal_resume_drill']);
    expect(JSON.stringify(state)).not.toContain('secret');

    const second = await console(cwd);
    await second.waitFor((text) => text.includes('Resume capstone (2 of 9 done)? enter resumes · n starts over'), 'the resume prompt');
    await second.press(keys.enter);
    const list = await second.waitFor((text) => text.includes('enter open drill 3'), 'the list, drill 3 next');
    expect(getState().drills.slice(0, 3).map((row) => row.status)).toEqual(['pass', 'pass', 'waiting']);
    expect(list).toContain('migration_review evidence');
    await second.press(keys.enter);
    await second.waitFor((text) => text.includes('▷ Step 1 of 2 · idempotency_retry_test step one · not run yet'), 'drill 3 from its first step');
    await second.press('q');
    await expect(second.controller.quit).resolves.toBe(130);
    await inAct(() => second.controller.settled());
    await second.close();

    const third = await console(cwd);
    await third.waitFor((text) => text.includes('Resume capstone (2 of 9 done)?'), 'the prompt again');
    await third.press('n');
    await third.waitFor((text) => text.includes('enter open drill 1'), 'a fresh capstone');
    expect(getState().drills.every((row) => row.status === 'waiting')).toBe(true);
    expect(readdirSync(path.join(cwd, '.sor-drills'))).toEqual([]);
    await third.press('q');
    await inAct(() => third.controller.settled());
    await third.close();
  });

  it('a finished capstone is removed: nothing to resume next time', async () => {
    cwd = mkdtempSync(path.join(tmpdir(), 'sor-capstone-'));
    const ui = await console(cwd);
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    for (let index = 0; index < 9; index += 1) {
      if (index === 0) await ui.press(keys.enter);
      await ui.waitFor((text) => text.includes('a run it all'), `drill ${index + 1}`);
      await ui.press('a');
      if (index === 1) {
        await ui.waitFor((text) => text.includes('kill it (SIGKILL)'), 'the kill ask');
        await ui.press('k');
      }
      await ui.waitFor((text) => text.includes('✓ PASS'), `drill ${index + 1} verdict`);
      await ui.press(keys.enter);
    }
    await ui.waitFor((text) => text.includes('Release PERMITTED'), 'the decision');
    expect(readdirSync(path.join(cwd, '.sor-drills'))).toEqual([]);
    await ui.press('q');
    await ui.press('y');
    await inAct(() => ui.controller.settled());
    await ui.close();
  });
});
