// The whole console over fake drills (no database): boot, consent, the nine
// drills in order with the operator's keys (the key table's kill key for the
// crash drill's ask), the live-count poller paused for the drill that needs the
// target to itself, the decision saved, the mastery gate's second bundle, and
// the exit code. And the kill and restart keys over a real supervised process:
// the OS process must be gone after the kill, and a new one run after the restart.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { askKey, bindingById } from '../../src/console/keys.js';
import { parseBundle } from '../../src/drills/bundle.js';
import { createDrillSystem, type DrillSystem, type ProcessView } from '../../src/drills/processes.js';
import { defaultRoles } from '../../src/postgres/roles.js';
import { getState, resetStore } from '../../src/store.js';
import { fakeDeps, startConsole } from './fake-console.js';
import { failOnActWarnings, inAct, keys, typed } from './helpers.js';

failOnActWarnings();

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
    const ui = await startConsole({ breaks: [], out, yes: true }, fakeDeps(log));
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    for (let index = 0; index < 9; index += 1) {
      if (index === 0) await ui.press(keys.enter); // the list opens the first drill; later ones open from the last
      // Step by step: enter runs step 1 (the drill starts), then step 2 waits for its own enter.
      await ui.waitFor((text) => text.includes('enter run step 1'), `drill ${index + 1}: step 1 shown, not run`);
      await ui.press(keys.enter);
      if (index === 1) {
        await ui.waitFor((text) => text.includes(`press ${askKey('kill')}  The Worker is in turn 3 of 5: kill it`), 'the kill ask');
        // The Worker reached the store once, through the session's process events.
        expect(getState().processes).toEqual([{ name: 'worker', pid: 4242, state: 'running', lastLine: 'turn 3 of 5' }]);
        await ui.press(typed(askKey('kill')));
      }
      await ui.waitFor((text) => text.includes('enter run step 2'), `drill ${index + 1}: step 2 waits`);
      await ui.press(keys.enter);
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
    await ui.press(keys.enter); // the third drill is preselected; enter runs its first step
    await ui.waitFor((text) => text.includes('enter run step 2'), 'the mastery drill: step 2 waits');
    await ui.press('a');
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
    const ui = await startConsole({ breaks: [] }, fakeDeps(log));
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
    const ui = await startConsole({ breaks: [] }, fakeDeps(log, { state: { kind: 'foreign', tables: ['users'] } }));
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
    const ui = await startConsole({ breaks: [] }, fakeDeps(log, { state: { kind: 'installed', versions: ['1'] } }));
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
    const ui = await startConsole({ breaks: [] }, fakeDeps(log, { kind: 'embedded' }));
    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    expect(log[0]).toBe('prepared consent=false');
    await ui.press('q');
    await expect(ui.controller.quit).resolves.toBe(130);
    await ui.close();
  });

  it('n refuses: nothing written, exit code 1', async () => {
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole({ breaks: [] }, fakeDeps(log, { state: { kind: 'foreign', tables: ['users'] } }));
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
        ...fakeDeps([]),
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

/** What signal 0 says about a pid: 'delivered' while the process exists (a zombie too), else the error code (ESRCH). */
function signalZero(pid: number): string {
  try {
    process.kill(pid, 0);
    return 'delivered';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

/** The command line of a live pid, or '' once it is gone. */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

describe('the console over a real supervised process', () => {
  let system: DrillSystem | undefined;
  afterEach(async () => {
    // Stops whatever the test left running and forgets the supervisor's exit hooks.
    await inAct(() => system?.supervisor().close());
    system = undefined;
  });

  it('the kill key SIGKILLs the OS process and the restart key starts a new one, through an ask and on the selected process', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sor-flow-'));
    // The drills' own process control over the real supervisor; no database: the Worker's URL is never asked for.
    system = createDrillSystem({ url: 'postgres://nobody@127.0.0.1:1/none', roles: defaultRoles, logDir: dir });
    const processes = system;
    const marker = `sor-flow-worker-${process.pid}`;
    // A Worker that only waits (as the crash drill's stalls in turn 3), named on its command line.
    const spec = { name: 'worker', args: ['-e', "console.log('waiting'); setInterval(() => {}, 1 << 30)", marker], env: {} };
    resetStore({ terminal: { columns: 120, rows: 40 } });
    const log: string[] = [];
    const ui = await startConsole(
      { breaks: [], yes: true },
      fakeDeps(log, {
        processes,
        actions: {
          run_journal_resume_drill: async (operator) => {
            await processes.supervisor().start(spec);
            await operator.request({ kind: 'kill', process: 'worker', prompt: `press ${askKey('kill')} to kill the Worker` }, () =>
              processes.kill('worker', 'SIGKILL'),
            );
            await operator.request({ kind: 'restart', process: 'worker', prompt: `press ${askKey('restart')} to restart the Worker` }, () =>
              processes.restart('worker'),
            );
            await operator.request({ kind: 'continue', prompt: `press ${askKey('continue')} to go on` }, async () => {});
            await processes.stop('worker');
          },
        },
      }),
    );
    const worker = (): ProcessView | undefined => getState().processes.find((candidate) => candidate.name === 'worker');
    /** The Worker the store shows, running a new OS process (not `before`) that is ours. */
    const running = async (what: string, before?: number): Promise<number> => {
      await ui.waitFor(() => worker()?.state === 'running' && worker()?.pid !== before, what, 15_000);
      const pid = worker()!.pid!;
      expect(signalZero(pid)).toBe('delivered');
      expect(commandLine(pid)).toContain(marker);
      return pid;
    };
    /** The store says killed by SIGKILL, and the OS has no such process any more. */
    const killed = async (pid: number, what: string): Promise<void> => {
      await ui.waitFor(() => worker()?.state === 'killed', `${what}: the store`, 15_000);
      expect(worker()).toMatchObject({ pid, state: 'killed', signal: 'SIGKILL' });
      await ui.waitFor(() => signalZero(pid) === 'ESRCH', `${what}: pid ${pid} gone (ESRCH)`, 15_000);
    };

    await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
    await ui.press(keys.enter);
    await ui.waitFor((text) => text.includes('enter run step 1'), 'drill 1 intro');
    await ui.press('a');
    await ui.waitFor((text) => text.includes('enter next drill'), 'drill 1 done');
    await ui.press(keys.enter);
    await ui.waitFor((text) => text.includes('enter run step 1'), 'drill 2 intro');
    await ui.press('a');

    // Through the ask: the key answers it, and the drill's perform kills the real process.
    await ui.waitFor((text) => text.includes(`press ${askKey('kill')} to kill the Worker`), 'the kill ask', 15_000);
    const first = await running('the Worker running');
    await ui.press(typed(askKey('kill')));
    await killed(first, 'the kill ask');
    await ui.waitFor((text) => text.includes(`press ${askKey('restart')} to restart the Worker`), 'the restart ask');
    await ui.press(typed(askKey('restart')));
    const second = await running('the restarted Worker', first);

    // With no kill or restart asked (the drill waits to go on): the keys act on the selected process.
    await ui.waitFor((text) => text.includes(`press ${askKey('continue')} to go on`), 'the continue ask');
    expect(getState().processes[getState().selected]?.name).toBe('worker');
    await ui.press(typed(bindingById('kill').keys));
    await killed(second, 'the kill key');
    await ui.waitFor((text) => text.includes('killed worker'), 'the notice');
    await ui.press(typed(bindingById('restart').keys));
    const third = await running('the Worker restarted by the key', second);
    expect(new Set([first, second, third]).size).toBe(3);
    expect(signalZero(first)).toBe('ESRCH');

    await ui.press(typed(askKey('continue')));
    await ui.waitFor((text) => text.includes('enter next drill'), 'drill 2 done');
    // The drill stopped its Worker itself (SIGTERM): the process the last restart started is gone too.
    await ui.waitFor(() => signalZero(third) === 'ESRCH', `pid ${third} gone`, 15_000);
    await ui.press('q');
    let code: number | undefined;
    await inAct(async () => {
      code = await ui.controller.quit;
    });
    expect(code).toBe(130);
    await inAct(() => ui.controller.settled());
    await ui.close();
  });
});
