// A console over fake drills (no database) for the flow tests: nine drills of
// two steps that pass (fail with their break), a target that asks for consent
// by the rule of src/postgres/prepare.ts, a poller that only logs, and a
// session whose process control is either a fake Worker (kill and restart do
// nothing) or the real one the test hands in (src/drills/processes.ts).
import { ConsoleController, type ConsoleOptions } from '../../src/console/controller.js';
import type { ConsoleDeps, ConsoleSession } from '../../src/console/deps.js';
import { askKey } from '../../src/console/keys.js';
import type { ProcessControl, SystemEvent } from '../../src/drills/processes.js';
import type { BundleKey, Drill, DrillResult, Operator, ProcessView, RunnerEvent } from '../../src/drills/types.js';
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
}

function fakeDrills(): Drill[] {
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
        run: async () => {},
      },
      {
        id: 'two',
        title: `${summary.key} step two`,
        why: 'why two',
        hint: { look: `look at ${summary.key} two`, mistake: `the mistake at ${summary.key} two` },
        run: async () => {},
      },
    ],
    verdict: () => ({ verdict: 'pass' as const, evidence: `${summary.key} evidence` }),
  }));
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

function fakeSession(drills: Drill[], log: string[], options: FakeOptions): ConsoleSession {
  const worker = fakeWorker(log);
  const processes = options.processes ?? worker.control;
  const actions = options.actions ?? { run_journal_resume_drill: worker.crash };
  return {
    drills,
    processes,
    async runOne(key, broken, operator, emit: (event: RunnerEvent) => void) {
      log.push(`run ${key}${broken ? ' broken' : ''}`);
      const drill = drills.find((candidate) => candidate.key === key)!;
      emit({ type: 'drill-started', key, broken, steps: drill.steps.map((s) => ({ id: s.id, title: s.title, why: s.why, sql: [] })) });
      emit({ type: 'tables', key, tables: drill.tables });
      emit({ type: 'step-started', key, index: 0, step: { id: 'one', title: drill.steps[0]!.title, why: 'why one', sql: [] } });
      await actions[key]?.(operator);
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
    createSession: () => fakeSession(drills, log, options),
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
