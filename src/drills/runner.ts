// The one runner: executes the drills in order, step by step, and emits typed
// events. The headless printer and the console are two listeners on the same
// events; neither runs a drill any other way.
import type { Roles } from '../postgres/roles.js';
import { errorMessage } from '../postgres/errors.js';
import type {
  BundleKey,
  Drill,
  DrillContext,
  DrillOptions,
  DrillResult,
  DrillSummary,
  Operator,
  RunnerEvent,
  Step,
  StepSummary,
} from './types.js';
import type { DrillSystem } from './processes.js';

/** Thrown by a step whose precondition cannot be met (no CREATEDB, no statement log): could-not-determine. */
export class CouldNotDetermine extends Error {
  override name = 'CouldNotDetermine';
}

export interface RunOptions {
  drills: readonly Drill[];
  url: string;
  display: string;
  database: string;
  embedded: boolean;
  serverLog?: string;
  roles: Roles;
  options: DrillOptions;
  operator: Operator;
  /** Drills to run with their deliberate break. */
  breaks: ReadonlySet<BundleKey>;
  /** When set, only these drills run; the others are "fail: not run". */
  only?: ReadonlySet<BundleKey>;
  system: DrillSystem;
  signal?: AbortSignal;
  emit(event: RunnerEvent): void;
}

export function summarise(drill: Drill): DrillSummary {
  return {
    number: drill.number,
    key: drill.key,
    title: drill.title,
    lesson: drill.lesson,
    habit: drill.habit,
    tables: drill.tables,
    breakDescription: drill.breakDescription,
    needsExclusiveDatabase: drill.needsExclusiveDatabase,
  };
}

function stepSummary(step: Step): StepSummary {
  return { id: step.id, title: step.title, why: step.why, sql: step.sql ?? [], operator: step.operator };
}

export async function runDrills(run: RunOptions): Promise<DrillResult[]> {
  const results: DrillResult[] = [];
  run.emit({ type: 'run-started', drills: run.drills.map(summarise), target: run.display });
  for (const drill of run.drills) {
    if (run.signal?.aborted) break;
    if (run.only && !run.only.has(drill.key)) {
      const result: DrillResult = {
        key: drill.key,
        verdict: 'fail',
        evidence: 'not run',
        reason: 'not run',
        evidenceDirs: [],
        broken: false,
        notes: [],
        durationMs: 0,
      };
      results.push(result);
      run.emit({ type: 'drill-finished', key: drill.key, result });
      continue;
    }
    const result = await runDrill(drill, run);
    results.push(result);
  }
  run.emit({ type: 'run-finished', results });
  return results;
}

export async function runDrill(drill: Drill, run: Omit<RunOptions, 'drills' | 'only'>): Promise<DrillResult> {
  const started = Date.now();
  const broken = run.breaks.has(drill.key);
  const cleanups: Array<() => Promise<void> | void> = [];
  const controller = new AbortController();
  const onAbort = () => controller.abort(run.signal?.reason);
  run.signal?.addEventListener('abort', onAbort, { once: true });
  const ctx: DrillContext = {
    key: drill.key,
    url: run.url,
    display: run.display,
    database: run.database,
    embedded: run.embedded,
    serverLog: run.serverLog,
    roles: run.roles,
    broken,
    options: run.options,
    // Every ask reaches the listeners (the console shows it, the headless printer prints it).
    operator: {
      async request(ask, perform) {
        run.emit({ type: 'operator-ask', key: drill.key, ask });
        await run.operator.request(ask, perform);
        run.emit({ type: 'operator-done', key: drill.key });
      },
    },
    signal: controller.signal,
    emit: run.emit,
    evidenceDirs: [],
    notes: [],
    system: run.system,
    observe(label, value, ok) {
      run.emit({ type: 'observation', key: drill.key, label, value: display(value), ok });
    },
    showSql(sql) {
      run.emit({ type: 'sql', key: drill.key, sql: sql.trim() });
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
  };
  run.emit({ type: 'drill-started', key: drill.key, broken, steps: drill.steps.map(stepSummary) });
  run.emit({ type: 'tables', key: drill.key, tables: drill.tables });
  const state = drill.init();
  let failure: { verdict: 'fail' | 'could-not-determine'; reason: string } | undefined;
  for (const [index, step] of drill.steps.entries()) {
    if (controller.signal.aborted) {
      failure = { verdict: 'could-not-determine', reason: 'stopped by the operator' };
      break;
    }
    run.emit({ type: 'step-started', key: drill.key, index, step: stepSummary(step) });
    try {
      await step.run(ctx, state);
      run.emit({ type: 'step-finished', key: drill.key, index, ok: true });
    } catch (error) {
      const message = errorMessage(error) || 'unknown error';
      failure =
        error instanceof CouldNotDetermine
          ? { verdict: 'could-not-determine', reason: `could not determine: ${message}` }
          : { verdict: 'fail', reason: `${step.title}: ${message}` };
      run.emit({ type: 'step-finished', key: drill.key, index, ok: false, summary: failure.reason });
      break;
    }
  }
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      run.emit({ type: 'log', message: `cleanup after ${drill.key}: ${errorMessage(error)}` });
    }
  }
  run.signal?.removeEventListener('abort', onAbort);
  let verdict = failure
    ? { verdict: failure.verdict, evidence: failure.reason, reason: failure.reason }
    : drill.verdict(ctx, state);
  if (verdict.verdict !== 'pass' && !verdict.reason) verdict = { ...verdict, reason: verdict.evidence };
  const result: DrillResult = {
    key: drill.key,
    verdict: verdict.verdict,
    evidence: oneLine(verdict.evidence),
    reason: verdict.reason ? oneLine(verdict.reason) : undefined,
    evidenceDirs: ctx.evidenceDirs,
    broken,
    notes: ctx.notes,
    durationMs: Date.now() - started,
  };
  run.emit({ type: 'drill-finished', key: drill.key, result });
  return result;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function display(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
