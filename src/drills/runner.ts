// The one runner: executes the drills in order, step by step, and emits typed
// events. The headless printer and the console are two listeners on the same
// events; neither runs a drill any other way.
import { builtInSource, type Profile, type ProfileInUse, type ProfileNames, type ProfileTable, profileTables, referenceWithRoles, resolveProfile } from '../postgres/profile/index.js';
import type { Roles } from '../postgres/roles.js';
import { errorMessage } from '../postgres/errors.js';
import { maskSecrets } from '../postgres/url.js';
import path from 'node:path';
import { historyRoot, logOffsets, recordVersion, writeRecord, type LogSlice, type RecordedObservation, type RecordedStep } from './record.js';
import { sqlState, withPgClient } from '../postgres/pg.js';
import { describeMissing, findMissingNames, missingNameStates, nothingMissing, resolveNeeds, unmappedHint } from './reference-schema.js';
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
import { stepSql } from './types.js';
import { withDrillClient } from './sql.js';
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
  /** The profile the drills go through; absent: the reference profile with these roles, resolved on the target. */
  profile?: ProfileInUse;
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

export function stepSummary(step: Step, names: ProfileNames): StepSummary {
  return { id: step.id, title: step.title, why: step.why, sql: stepSql(step, names), operator: step.operator, hint: step.hint, shows: step.shows };
}

export async function runDrills(run: RunOptions): Promise<DrillResult[]> {
  // Resolved once, at the first drill that runs: a run of nothing touches no database.
  let profile = run.profile;
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
    profile ??= await profileFor(run);
    const result = await runDrill(drill, { ...run, profile });
    results.push(result);
  }
  run.emit({ type: 'run-finished', results });
  return results;
}

/** A drill's table, named as the reference schema does, as the profile calls it in the target. */
export function physicalTable(profile: Profile, table: string): string {
  const part = table === 'agent_events' ? 'events' : table;
  return (profileTables as readonly string[]).includes(part) ? profile[part as ProfileTable].table : table;
}

/** The run's profile: the one given, or the built-in reference one read against the target. */
async function profileFor(run: Pick<RunOptions, 'profile' | 'url' | 'roles'>): Promise<ProfileInUse> {
  if (run.profile) return run.profile;
  return withPgClient(run.url, (client) => resolveProfile(client, referenceWithRoles(run.roles), builtInSource, false));
}

export async function runDrill(drill: Drill, options: Omit<RunOptions, 'drills' | 'only'>): Promise<DrillResult> {
  const started = Date.now();
  const run = { ...options, profile: await profileFor(options) };
  const broken = run.breaks.has(drill.key);
  const cleanups: Array<() => Promise<void> | void> = [];
  // What the record keeps: each step's outcome, each observation (and the step that made it), the processes seen.
  const recordedSteps: RecordedStep[] = [];
  const observations: RecordedObservation[] = [];
  let currentStep: string | undefined;
  const processNames = new Set<string>();
  const unsubscribe =
    typeof run.system.subscribe === 'function'
      ? run.system.subscribe((event) => processNames.add(event.type === 'process' ? event.process.name : event.name))
      : () => {};
  for (const process of typeof run.system.list === 'function' ? run.system.list() : []) {
    if (process.state === 'running' || process.state === 'starting') processNames.add(process.name);
  }
  // Where each process log stands now (the session's logs live in <history>/processes): the drill's part begins there.
  const offsets = await logOffsets(path.join(historyRoot(run.options.evidenceRoot), 'processes'));
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
    profile: run.profile,
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
    // What is shown is masked once, here: a password in a statement or a URL never reaches a screen or a log.
    observe(label, value, ok) {
      const shown = maskSecrets(display(value));
      observations.push({ step: currentStep, label, value: shown, ...(ok === undefined ? {} : { ok }) });
      run.emit({ type: 'observation', key: drill.key, label, value: shown, ok });
    },
    showSql(sql) {
      run.emit({ type: 'sql', key: drill.key, sql: maskSecrets(sql.trim()) });
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
  };
  run.emit({ type: 'drill-started', key: drill.key, broken, steps: drill.steps.map((step) => stepSummary(step, run.profile.names)) });
  run.emit({ type: 'tables', key: drill.key, tables: drill.tables.map((table) => physicalTable(run.profile.profile, table)) });
  const state = drill.init();
  let failure = await checkNames(drill, ctx);
  for (const [index, step] of drill.steps.entries()) {
    if (failure) break;
    if (controller.signal.aborted) {
      failure = { verdict: 'could-not-determine', reason: 'stopped by the operator' };
      break;
    }
    const summary = stepSummary(step, run.profile.names);
    run.emit({ type: 'step-ready', key: drill.key, index, step: summary });
    if (run.operator.beforeStep) {
      try {
        await run.operator.beforeStep(drill.key, index, summary);
      } catch {
        failure = { verdict: 'could-not-determine', reason: 'stopped by the operator' };
        break;
      }
      if (controller.signal.aborted) {
        failure = { verdict: 'could-not-determine', reason: 'stopped by the operator' };
        break;
      }
    }
    run.emit({ type: 'step-started', key: drill.key, index, step: summary });
    currentStep = step.id;
    try {
      await step.run(ctx, state);
      recordedSteps.push({ id: step.id, title: step.title, ok: true });
      run.emit({ type: 'step-finished', key: drill.key, index, ok: true });
    } catch (error) {
      failure = stepFailure(step, error);
      recordedSteps.push({ id: step.id, title: step.title, ok: false, summary: failure.reason });
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
  unsubscribe();
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
  const supervisor = processNames.size > 0 ? supervisorOf(run.system) : undefined;
  const slices: LogSlice[] = [...processNames].flatMap((name) => {
    const file = supervisor?.get(name)?.logFile;
    return file ? [{ name, file, from: offsets.get(file) ?? 0 }] : [];
  });
  const root = historyRoot(run.options.evidenceRoot);
  try {
    const written = await writeRecord(run.options.evidenceRoot, {
      version: recordVersion,
      key: drill.key,
      broken,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date().toISOString(),
      stepCount: drill.steps.length,
      steps: recordedSteps,
      observations,
      verdict: result.verdict,
      evidence: result.evidence,
      ...(result.reason ? { reason: result.reason } : {}),
      evidenceDirs: result.evidenceDirs.map((dir) => path.relative(root, dir)),
    }, slices);
    result.record = written.file;
    if (written.logs.length > 0) result.logs = written.logs;
  } catch (error) {
    run.emit({ type: 'log', message: `the record of ${drill.key} could not be written: ${errorMessage(error)}` });
  }
  run.emit({ type: 'drill-finished', key: drill.key, result });
  return result;
}

type Failure = { verdict: 'fail' | 'could-not-determine'; reason: string };

/**
 * Before the first step: the tables and columns the drill needs, read from
 * pg_catalog on a fresh connection. A name the target lacks means the drill
 * cannot look at its habit here: could-not-determine, naming what is missing.
 */
async function checkNames(drill: Drill, ctx: DrillContext): Promise<Failure | undefined> {
  // A profile the operator gave was checked whole against the target before the run
  // (a misfit refuses the run); the needs below are the reference schema's names.
  if (ctx.profile.given) return undefined;
  const needs = drill.needs ?? [];
  if (needs.length === 0) return undefined;
  try {
    // The drill's own connection (sql.ts), which its steps then use too; not kept open for a
    // drill that needs the target to itself.
    const read = (client: Parameters<typeof findMissingNames>[0]) => findMissingNames(client, needs);
    const missing = drill.needsExclusiveDatabase ? await withPgClient(ctx.url, read) : await withDrillClient(ctx, read);
    if (nothingMissing(missing)) {
      const tables = resolveNeeds(needs).map((entry) => entry.table);
      ctx.observe('reference_names', `found: ${tables.join(', ')} with the columns the drill uses`, true);
      return undefined;
    }
    ctx.observe('missing_names', [...missing.tables, ...missing.columns], false);
    return { verdict: 'could-not-determine', reason: `could not determine: ${describeMissing(missing)}` };
  } catch (error) {
    return { verdict: 'could-not-determine', reason: `could not determine: the target's tables could not be read: ${errorMessage(error)}` };
  }
}

/** The session's supervisor, once processes ran (a system with none to give, as in a test, gives none). */
function supervisorOf(system: DrillSystem): ReturnType<DrillSystem['supervisor']> | undefined {
  try {
    return typeof system.supervisor === 'function' ? system.supervisor() : undefined;
  } catch {
    return undefined;
  }
}

/** The SQLSTATE of an error or of the first error in its cause chain that has one. */
function sqlStateOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; current !== undefined && depth < 5; depth += 1) {
    const code = sqlState(current);
    if (code) return code;
    current = current instanceof Error ? current.cause : undefined;
  }
  return undefined;
}

/**
 * A thrown step: could-not-determine when the step said so, or when Postgres
 * answered that a table, column or schema does not exist (the drill met a name
 * the target does not have, not a missing mechanism); otherwise the drill fails.
 */
function stepFailure(step: Step, error: unknown): Failure {
  const message = errorMessage(error) || 'unknown error';
  if (error instanceof CouldNotDetermine) return { verdict: 'could-not-determine', reason: `could not determine: ${message}` };
  const code = sqlStateOf(error);
  if (code && missingNameStates.has(code)) {
    return {
      verdict: 'could-not-determine',
      reason: `could not determine: ${step.title}: ${message} [SQLSTATE ${code}] (${unmappedHint})`,
    };
  }
  return { verdict: 'fail', reason: `${step.title}: ${message}` };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function display(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
