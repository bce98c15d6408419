// A console over fake drills (no database) for the flow tests: nine drills of
// two steps that pass (fail with their break), a target that asks for consent
// by the rule of src/postgres/prepare.ts, a poller that only logs, and a
// session whose process control is either a fake Worker (kill and restart do
// nothing) or the real one the test hands in (src/drills/processes.ts).
import { ConsoleController, type ConsoleOptions } from '../../src/console/controller.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openCapstone, type ConsoleDeps, type ConsoleSession } from '../../src/console/deps.js';
import { askKey } from '../../src/console/keys.js';
import type { DrillSystem, ProcessControl, SystemEvent } from '../../src/drills/processes.js';
import { runDrill } from '../../src/drills/runner.js';
import type { BundleKey, Drill, Operator, ProcessView, RunnerEvent } from '../../src/drills/types.js';
import { type ProfileInUse, profileNames, referenceProfile } from '../../src/postgres/profile/index.js';
import { defaultRoles } from '../../src/postgres/roles.js';
import { consentQuestion, installs } from '../../src/postgres/prepare.js';
import type { TargetState } from '../../src/postgres/setup.js';
import type { Target } from '../../src/postgres/target.js';
import { inAct, renderConsole, summaries } from './helpers.js';

/** What a drill does in its first step: its asks to the operator and the processes it starts. */
export type DrillAction = (operator: Operator) => Promise<void>;

export interface FakeOptions {
  kind?: Target['kind'];
  state?: TargetState;
  /** The console's process control; by default a fake Worker whose kill and restart do nothing. */
  processes?: ProcessControl;
  /** Per drill, what its first step does; by default the crash drill asks to kill the fake Worker. */
  actions?: Partial<Record<BundleKey, DrillAction>>;
  /** A working directory: the console keeps its capstone in .sor-drills/ there (the real capstone files). */
  capstoneCwd?: string;
}

/** Nine drills of two steps: the first does the drill's action (its asks), the second shows a statement. */
function fakeDrills(actions: Partial<Record<BundleKey, DrillAction>>): Drill[] {
  return summaries().map((summary) => ({
    ...summary,
    fix: `fix ${summary.key}`,
    init: () => ({}),
    steps: [
      {
        id: 'one',
        title: `${summary.key} step one`,
        why: 'why one',
        sql: ['select 1'],
        hint: { look: `look at ${summary.key} one`, mistake: `the mistake at ${summary.key} one` },
        run: async (ctx) => {
          await actions[summary.key]?.(ctx.operator);
        },
      },
      {
        id: 'two',
        title: `${summary.key} step two`,
        why: 'why two',
        hint: { look: `look at ${summary.key} two`, mistake: `the mistake at ${summary.key} two` },
        run: async (ctx) => {
          ctx.showSql(`select count(*) from ${summary.key} where tenant_id = 'alice'; alter role r password 'hunter22'`);
          ctx.observe('rows', 2, true);
        },
      },
    ],
    verdict: (ctx) =>
      ctx.broken
        ? { verdict: 'fail' as const, evidence: 'delta +2 with the key left out', reason: 'delta +2 with the key left out' }
        : { verdict: 'pass' as const, evidence: `${summary.key} evidence` },
  }));
}

/** The reference profile as a run holds it, without a database (the fake drills need no names). */
function fakeProfile(): ProfileInUse {
  return {
    source: 'built-in reference profile',
    given: false,
    profile: referenceProfile,
    names: profileNames(referenceProfile),
    keys: {} as ProfileInUse['keys'],
    problems: [],
    baseDir: process.cwd(),
  };
}

/** A Worker that is only a row: its kill and restart do nothing (the real one: src/drills/processes.ts). */
function fakeWorker(log: string[]): { control: ProcessControl; crash: DrillAction } {
  const processes: ProcessView[] = [{ name: 'worker', pid: 4242, state: 'running' }];
  const listeners = new Set<(event: SystemEvent) => void>();
  const control: ProcessControl = {
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
  };
  const crash: DrillAction = async (operator) => {
    // Process events come from the session's processes (the supervisor), not from the runner.
    for (const listener of listeners) listener({ type: 'process', process: processes[0]! });
    for (const listener of listeners) listener({ type: 'line', name: 'worker', line: 'turn 3 of 5' });
    await operator.request({ kind: 'kill', process: 'worker', prompt: 'The Worker is in turn 3 of 5: kill it (SIGKILL)' }, async () => {
      log.push('perform kill');
    });
  };
  return { control, crash };
}

/** One .agent-history of the fake run's own (its drills write their records there), removed at exit. */
function fakeHistory(): { oracle: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sor-fake-history-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { oracle: path.join(dir, 'oracle') };
}

function fakeSession(log: string[], options: FakeOptions): ConsoleSession {
  const history = fakeHistory();
  const worker = fakeWorker(log);
  const processes = options.processes ?? worker.control;
  const drills = fakeDrills(options.actions ?? { run_journal_resume_drill: worker.crash });
  const profile = fakeProfile();
  return {
    drills,
    processes,
    // The one runner, as the real session runs it: each step waits for the console's operator.
    async runOne(key, broken, operator, emit: (event: RunnerEvent) => void) {
      log.push(`run ${key}${broken ? ' broken' : ''}`);
      const drill = drills.find((candidate) => candidate.key === key)!;
      return runDrill(drill, {
        url: 'postgres://me:secret@db.example/app',
        display: 'postgres://me:***@db.example/app',
        database: 'app',
        embedded: false,
        roles: defaultRoles,
        profile,
        options: { paceMs: 0, claimHoldMs: 0, evidenceRoot: history.oracle },
        operator,
        breaks: new Set(broken ? [key] : []),
        system: {} as DrillSystem,
        emit,
      });
    },
    close: async () => {
      log.push('close');
    },
  };
}

export function fakeDeps(log: string[], options: FakeOptions = {}): ConsoleDeps {
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
    createSession: () => fakeSession(log, options),
    ...(options.capstoneCwd
      ? { openCapstone: (given) => openCapstone({ ...given, db: given.db ?? target.url, cwd: options.capstoneCwd }) }
      : {}),
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
export async function startConsole(options: ConsoleOptions, fakes: ConsoleDeps) {
  const controller = new ConsoleController(options, async () => fakes);
  const ui = await renderConsole(controller);
  await inAct(() => {
    void controller.start();
  });
  return ui;
}
