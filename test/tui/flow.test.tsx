// The whole console over fake drills (no database): boot, consent, the nine
// drills in order with the operator's keys (k for the crash drill's kill ask),
// the live-count poller paused for the drill that needs the target to itself,
// the decision saved, the mastery gate's second bundle, and the exit code.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsoleController, type ConsoleOptions } from '../../src/console/controller.js';
import type { ConsoleDeps, ConsoleSession } from '../../src/console/deps.js';
import { parseBundle } from '../../src/drills/bundle.js';
import type { SystemEvent } from '../../src/drills/processes.js';
import type { Drill, DrillResult, ProcessView, RunnerEvent } from '../../src/drills/types.js';
import { consentQuestion, installs } from '../../src/postgres/prepare.js';
import type { TargetState } from '../../src/postgres/setup.js';
import type { Target } from '../../src/postgres/target.js';
import { getState, resetStore } from '../../src/store.js';
import { failOnActWarnings, inAct, keys, renderConsole, summaries } from './helpers.js';

failOnActWarnings();

function fakeDrills(): Drill[] {
  return summaries().map((summary) => ({
    ...summary,
    fix: `fix ${summary.key}`,
    init: () => ({}),
    steps: [
      { id: 'one', title: `${summary.key} step one`, why: 'why one', sql: ['select 1'], run: async () => {} },
      { id: 'two', title: `${summary.key} step two`, why: 'why two', run: async () => {} },
    ],
    verdict: () => ({ verdict: 'pass' as const, evidence: `${summary.key} evidence` }),
  }));
}

function fakeSession(drills: Drill[], log: string[]): ConsoleSession {
  const processes: ProcessView[] = [{ name: 'worker', pid: 4242, state: 'running' }];
  const listeners = new Set<(event: SystemEvent) => void>();
  return {
    drills,
    processes: {
      list: () => processes,
      kill: async () => {},
      restart: async () => {},
      subscribe: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      stopAll: async () => {
        log.push('stopAll');
      },
    },
    async runOne(key, broken, operator, emit: (event: RunnerEvent) => void) {
      log.push(`run ${key}${broken ? ' broken' : ''}`);
      const drill = drills.find((candidate) => candidate.key === key)!;
      emit({ type: 'drill-started', key, broken, steps: drill.steps.map((s) => ({ id: s.id, title: s.title, why: s.why, sql: s.sql ?? [] })) });
      emit({ type: 'tables', key, tables: drill.tables });
      emit({ type: 'step-started', key, index: 0, step: { id: 'one', title: drill.steps[0]!.title, why: 'why one', sql: [] } });
      if (key === 'run_journal_resume_drill') {
        // Process events come from the session's processes (the supervisor), not from the runner.
        for (const listener of listeners) listener({ type: 'process', process: processes[0]! });
        for (const listener of listeners) listener({ type: 'line', name: 'worker', line: 'turn 3 of 5' });
        await operator.request({ kind: 'kill', process: 'worker', prompt: 'The Worker is in turn 3 of 5: press k to kill it' }, async () => {
          log.push('perform kill');
        });
      }
      emit({ type: 'step-finished', key, index: 0, ok: true });
      const result: DrillResult = {
        key,
        verdict: broken ? 'fail' : 'pass',
        evidence: broken ? 'delta +2 with the key left out' : `${key} evidence`,
        reason: broken ? 'delta +2 with the key left out' : undefined,
        evidenceDirs: [],
        broken,
        notes: [],
        durationMs: 10,
      };
      emit({ type: 'drill-finished', key, result });
      return result;
    },
    close: async () => {
      log.push('close');
    },
  };
}

function deps(log: string[], options: { kind?: Target['kind']; state?: TargetState } = {}): ConsoleDeps {
  const state = options.state ?? { kind: 'empty' };
  const target: Target = {
    kind: options.kind ?? 'url',
    url: 'postgres://me:secret@db.example/app',
    display: 'postgres://me:***@db.example/app',
    database: 'app',
    close: async () => {
      log.push('target closed');
    },
  };
  const drills = fakeDrills();
  return {
    resolveTarget: async ({ onProgress }) => {
      onProgress?.('connected');
      return target;
    },
    // The rule of src/postgres/prepare.ts: a URL target is only read until the operator consents.
    prepareTarget: async (prepared, { consent }) => {
      if (prepared.kind === 'url' && !consent) {
        return { kind: 'needs-consent', state, why: consentQuestion(prepared, state), installs: installs(state) };
      }
      log.push(`prepared consent=${consent}`);
      return { kind: 'ready', state };
    },
    createSession: () => fakeSession(drills, log),
    defaultDrillOptions: { paceMs: 50, claimHoldMs: 100, evidenceRoot: '/tmp/unused' },
    createPoller: () => ({
      setTables: (tables: string[]) => {
        log.push(`poll ${tables.join(',')}`);
      },
      pause: async () => {
        log.push('poller paused');
      },
      resume: () => {
        log.push('poller resumed');
      },
      stop: async () => {},
    }),
  };
}

/** A console over these deps, rendered, and started as start.tsx starts it. */
async function startConsole(options: ConsoleOptions, fakes: ConsoleDeps) {
  const controller = new ConsoleController(options, async () => fakes);
  const ui = await renderConsole(controller);
  await inAct(() => {
    void controller.start();
  });
  return ui;
}

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('the console over fake drills', () => {
  it('walks nine drills with the keys, saves the bundle, runs the mastery gate, exits 0', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sor-flow-'));
    const out = path.join(dir, 'bundle.md');
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    // A URL target with --yes: consent given up front, no question.
    const ui = await startConsole({ breaks: [], out, yes: true }, deps(log));
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    for (let index = 0; index < 9; index += 1) {
      if (index === 0) await ui.press(keys.enter); // the list opens the first drill; later ones open from the last
      await ui.waitFor((text) => text.includes('enter start drill'), `drill ${index + 1} intro`);
      await ui.press(keys.enter);
      if (index === 1) {
        await ui.waitFor((text) => text.includes('press k to kill it'), 'the kill ask');
        // The Worker reached the store once, through the session's process events.
        expect(getState().processes).toEqual([{ name: 'worker', pid: 4242, state: 'running', lastLine: 'turn 3 of 5' }]);
        await ui.press('k');
      }
      await ui.waitFor((text) => text.includes('✓ PASS'), `drill ${index + 1} verdict`);
      await ui.press(keys.enter);
    }
    // The poller is paused (its connection closed) for as long as the drill that needs the target to itself runs.
    expect(log.slice(0, 5)).toEqual(['prepared consent=true', 'poller paused', 'run migration_review', 'poll runs', 'poller resumed']);
    expect(log.filter((line) => line.startsWith('poller'))).toEqual(['poller paused', 'poller resumed']);
    expect(log).toContain('perform kill');
    await ui.waitFor((text) => text.includes('Release PERMITTED'), 'the decision');
    expect(ui.frame()).toContain('m repeats one drill');
    await ui.press(keys.ctrlS);
    await ui.waitFor((text) => text.includes(`saved to ${out}`), 'the saved bundle');
    const first = parseBundle(readFileSync(out, 'utf8'));
    expect(first.bundle.release_decision).toMatch(/^PERMITTED/);

    await ui.press('m');
    await ui.waitFor((text) => text.includes('Mastery gate'), 'the mastery screen');
    await ui.press(keys.enter); // the third drill is preselected
    await ui.waitFor((text) => text.includes('✗ FAIL'), 'the honest failure');
    await ui.press(keys.enter);
    await ui.waitFor((text) => text.includes('Release BLOCKED') && text.includes('the mastery bundle'), 'the second bundle');
    await ui.press(keys.ctrlS);
    const second = path.join(dir, 'bundle.mastery.md');
    await ui.waitFor((text) => text.includes(`saved to ${second}`), 'the second bundle saved');
    const mastery = parseBundle(readFileSync(second, 'utf8'));
    expect(mastery.bundle.idempotency_retry_test).toBe('fail: delta +2 with the key left out');
    expect(mastery.bundle.release_decision).toMatch(/^BLOCKED: idempotency_retry_test/);
    expect(log).toContain('run idempotency_retry_test broken');

    await ui.press('q');
    await expect(ui.controller.quit).resolves.toBe(0);
    await inAct(() => ui.controller.settled());
    expect(ui.controller.resources.session).toBeDefined();
    await ui.close();
  });

  // The rule `sor-drills run` follows too (there: --yes or exit 2): before this rule the console
  // installed into an empty URL database without asking.
  it('asks before writing into an empty URL database, and installs only after y', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole({ breaks: [] }, deps(log));
    await ui.waitFor((text) => text.includes('Write into this database?'), 'the consent prompt');
    expect(ui.frame()).toContain('is empty: the reference Reconciler schema');
    expect(ui.frame()).toContain('append-only');
    expect(log).toEqual([]);
    await ui.press('y');
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    expect(log[0]).toBe('prepared consent=true');
    expect(getState().boot.lines).toContain('consent given: installing the reference schema');
    await ui.press('q');
    await expect(ui.controller.quit).resolves.toBe(130);
    await ui.close();
  });

  it('asks for a foreign target too, naming its tables', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole({ breaks: [] }, deps(log, { state: { kind: 'foreign', tables: ['users'] } }));
    await ui.waitFor((text) => text.includes('Write into this database?'), 'the consent prompt');
    expect(ui.frame()).toContain('holds tables of its own (users)');
    await ui.press('y');
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    expect(log[0]).toBe('prepared consent=true');
    await ui.press('q');
    await expect(ui.controller.quit).resolves.toBe(130);
    await ui.close();
  });

  it('an installed URL target is asked about as well: y runs the drills on it as it is', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole({ breaks: [] }, deps(log, { state: { kind: 'installed', versions: ['1'] } }));
    await ui.waitFor((text) => text.includes('Write into this database?'), 'the consent prompt');
    expect(ui.frame()).toContain('y run the drills in it as it is');
    await ui.press('y');
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    await ui.press('q');
    await expect(ui.controller.quit).resolves.toBe(130);
    await ui.close();
  });

  it('the embedded cluster is its own: no question', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole({ breaks: [] }, deps(log, { kind: 'embedded' }));
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    expect(log[0]).toBe('prepared consent=false');
    await ui.press('q');
    await expect(ui.controller.quit).resolves.toBe(130);
    await ui.close();
  });

  it('n refuses: nothing written, exit code 1', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole({ breaks: [] }, deps(log, { state: { kind: 'foreign', tables: ['users'] } }));
    await ui.waitFor((text) => text.includes('Write into this database?'), 'the consent prompt');
    await ui.press('n');
    await expect(ui.controller.quit).resolves.toBe(1);
    expect(log).toEqual([]);
    expect(getState().boot.lines).toContain('refused: the target was left untouched');
    await ui.close();
  });

  it('a boot failure is shown and ends the console with its exit code', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const { TargetError } = await import('../../src/postgres/pg.js');
    const ui = await startConsole(
      { breaks: [] },
      {
        ...deps([]),
        resolveTarget: async () => {
          throw new TargetError('connection refused by postgres://me:***@db.example/app: is PostgreSQL running and listening there?');
        },
      },
    );
    let code: number | undefined;
    await inAct(async () => {
      code = await ui.controller.quit;
    });
    expect(code).toBe(3);
    await ui.waitFor((text) => text.includes('sor-drills: connection refused'), 'the error');
    await ui.close();
  });
});
