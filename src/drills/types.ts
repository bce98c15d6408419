// Glossary
//
// drill      One of the nine checks of the capstone, in its fixed order. A drill is data:
//            its number, bundle key, lesson and habit, and ordered steps.
// step       One thing a drill does and why: explain, show the SQL, act, observe. A step's
//            run() returns nothing; what it saw it records as observations.
// observation A named value the step read from the database or a process (a count, an id,
//            a SQLSTATE, a pid). Verdicts and evidence lines are built only from these.
// verdict    pass or fail (could-not-determine counts as fail in the bundle), with the
//            one-line evidence and, on fail, the one-line reason.
// oracle     The db-state oracle (src/oracle): snapshot, act, snapshot, normalise, diff.
// evidence   What a drill leaves on disk: the oracle's folder under
//            .agent-history/oracle/<bundle-key>/<timestamp>/ and the bundle's lines.
// break      A drill's deliberate break: the same drill run with its mechanism removed
//            (by our own switch), which must fail honestly.
// sabotage   The mechanism removed from the *target database* itself (a dropped unique key,
//            policy, trigger or grant). The drill must fail then too, and report, not repair.
// target     The PostgreSQL database under test (embedded by default, or --db URL).
// operator   Whoever presses the keys: a person in the console, the autoplay, or the
//            headless runner (which acts at once).

import type { Roles } from '../postgres/roles.js';
import type { DrillSystem, ProcessView } from './processes.js';

export type { ProcessView } from './processes.js';

export const bundleKeys = [
  'migration_review',
  'run_journal_resume_drill',
  'idempotency_retry_test',
  'concurrency_claim_test',
  'outbox_relay_retry_test',
  'append_only_event_test',
  'rls_identity_flip_test',
  'mcp_boundary_test',
  'forensics_drill',
] as const;

export type BundleKey = (typeof bundleKeys)[number];

export function isBundleKey(value: string): value is BundleKey {
  return (bundleKeys as readonly string[]).includes(value);
}

export type Verdict = 'pass' | 'fail' | 'could-not-determine';

export interface DrillResult {
  key: BundleKey;
  verdict: Verdict;
  /** One line, built from observed values. */
  evidence: string;
  /** One line: why it failed (absent on pass). */
  reason?: string;
  /** Oracle evidence folders written by this drill. */
  evidenceDirs: string[];
  /** Whether the deliberate break was applied. */
  broken: boolean;
  /** Anything the bundle must record besides the verdict (e.g. a migration's drop override). */
  notes: string[];
  durationMs: number;
}

/** What the operator is asked to do. In the console a key does it; headless, the runner does. */
export type OperatorAsk =
  | { kind: 'kill'; process: string; prompt: string }
  | { kind: 'restart'; process: string; prompt: string }
  | { kind: 'start'; processes: string[]; prompt: string }
  | { kind: 'continue'; prompt: string };

export interface Operator {
  /**
   * Resolves once the operator has done what was asked. `perform` is how the drill
   * would do it itself (the headless runner and the autoplay call it); the console
   * calls it when the operator presses the key.
   */
  request(ask: OperatorAsk, perform: () => Promise<void>): Promise<void>;
}

export type RunnerEvent =
  | { type: 'run-started'; drills: DrillSummary[]; target: string }
  | { type: 'drill-started'; key: BundleKey; broken: boolean; steps: StepSummary[] }
  | { type: 'step-started'; key: BundleKey; index: number; step: StepSummary }
  | { type: 'sql'; key: BundleKey; sql: string }
  | { type: 'observation'; key: BundleKey; label: string; value: string; ok?: boolean }
  | { type: 'operator-ask'; key: BundleKey; ask: OperatorAsk }
  | { type: 'operator-done'; key: BundleKey }
  | { type: 'process'; process: ProcessView }
  | { type: 'process-line'; name: string; line: string }
  | { type: 'diff'; key: BundleKey; text: string; folder: string }
  | { type: 'tables'; key: BundleKey; tables: string[] }
  | { type: 'step-finished'; key: BundleKey; index: number; ok: boolean; summary?: string }
  | { type: 'drill-finished'; key: BundleKey; result: DrillResult }
  | { type: 'run-finished'; results: DrillResult[] }
  | { type: 'log'; message: string };

/** What the console and the printer show of a drill (a Drill is this plus its steps and verdict). */
export interface DrillSummary {
  number: number;
  key: BundleKey;
  title: string;
  lesson: number;
  habit: string;
  /** Tables whose live counts the console shows while this drill runs. */
  tables: string[];
  breakDescription: string;
}

export interface StepSummary {
  id: string;
  title: string;
  why: string;
  sql: string[];
  /** Set when the operator must act on this step. */
  operator?: OperatorAsk['kind'];
}

export interface DrillOptions {
  /** A dbmate migration file to review instead of the fixtures' notes-column migration. */
  migrationFile?: string;
  /** Milliseconds the Worker waits between tool calls. */
  paceMs: number;
  /** Milliseconds a claim holds its row lock in the race drill. */
  claimHoldMs: number;
  /** Where evidence folders go (default .agent-history/oracle). */
  evidenceRoot: string;
  /** Neon credentials for the migration branch, when configured. */
  neon?: { apiKey: string; projectId: string };
}

/** What every step can reach. Built for each drill by runDrill (src/drills/runner.ts). */
export interface DrillContext {
  key: BundleKey;
  /** Superuser (or owner) URL of the target database. */
  url: string;
  display: string;
  database: string;
  embedded: boolean;
  /** The embedded cluster's log file (the statement log of the boundary drill). */
  serverLog?: string;
  roles: Roles;
  broken: boolean;
  options: DrillOptions;
  operator: Operator;
  signal: AbortSignal;
  emit(event: RunnerEvent): void;
  /** Records an observation (emits it too). */
  observe(label: string, value: unknown, ok?: boolean): void;
  /** Shows a statement the step is running. */
  showSql(sql: string): void;
  /** Observations so far, by label. */
  observations: Map<string, unknown>;
  /** Evidence folders written so far. */
  evidenceDirs: string[];
  notes: string[];
  /** Cleanups for what the drill started (processes, branches); run when the drill ends. */
  defer(cleanup: () => Promise<void> | void): void;
  /** The Reconciler processes, started on demand (src/drills/processes.ts). */
  system: DrillSystem;
}

export interface Step {
  id: string;
  title: string;
  why: string;
  sql?: string[];
  operator?: OperatorAsk['kind'];
  run(ctx: DrillContext): Promise<void>;
}

export interface VerdictResult {
  verdict: Verdict;
  evidence: string;
  reason?: string;
}

export interface Drill extends DrillSummary {
  /** The smallest change that would turn this drill green, for the decision paragraph. */
  fix: string;
  steps: Step[];
  /** Built from ctx.observations only. */
  verdict(ctx: DrillContext): VerdictResult;
}
