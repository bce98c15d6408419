// Glossary
//
// drill      One of the nine checks of the capstone, in its fixed order. A drill is data:
//            its number, bundle key, lesson and habit, and ordered steps.
// step       One thing a drill does and why: explain, show the SQL, act, observe. A step's
//            run(ctx, state) returns nothing: it shows what it saw with ctx.observe() and
//            keeps what later steps and the verdict need in the drill's state.
// state      A drill's own typed record for one run (Drill<S>, made fresh by init()): the
//            handles it started (a tool server, a tenant) and the values its steps read.
// observation A named value a step read from the database or a process (a count, an id,
//            a SQLSTATE, a pid), shown and recorded. Verdicts and evidence lines are built
//            only from values read this way, kept in the state.
// shared step A step several drills use, written once (src/drills/common-steps.ts).
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

import type { ProfileInUse, ProfileNames } from '../postgres/profile/index.js';
import type { Roles } from '../postgres/roles.js';
import type { DrillSystem, ProcessView } from './processes.js';
import type { Need } from './reference-schema.js';

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
  /** The drill's machine-readable record (src/drills/record.ts), when it was written. */
  record?: string;
  /** The logs of the processes that ran during the drill. */
  logs?: string[];
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
  /**
   * Before each step runs, after its statements are shown (the 'step-ready' event): resolves
   * when the operator lets it run. The console waits for enter (or `a`, the rest of the
   * drill); without it (the headless runner) every step runs at once. A rejection stops the
   * drill before the step (could-not-determine: stopped by the operator).
   */
  beforeStep?(key: BundleKey, index: number, step: StepSummary): Promise<void>;
}

export type RunnerEvent =
  | { type: 'run-started'; drills: DrillSummary[]; target: string }
  | { type: 'drill-started'; key: BundleKey; broken: boolean; steps: StepSummary[] }
  /** A step shown before it runs: the operator may read its statements and let it run. */
  | { type: 'step-ready'; key: BundleKey; index: number; step: StepSummary }
  | { type: 'step-started'; key: BundleKey; index: number; step: StepSummary }
  | { type: 'sql'; key: BundleKey; sql: string }
  | { type: 'observation'; key: BundleKey; label: string; value: string; ok?: boolean }
  | { type: 'operator-ask'; key: BundleKey; ask: OperatorAsk }
  | { type: 'operator-done'; key: BundleKey }
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
  /**
   * Set when the drill needs no other session on the target while it runs (the migration
   * drill's CREATE DATABASE ... TEMPLATE fails while any session is connected): the
   * console pauses its live-count poller for it.
   */
  needsExclusiveDatabase?: boolean;
}

export interface StepSummary {
  id: string;
  title: string;
  why: string;
  sql: string[];
  /** Set when the operator must act on this step. */
  operator?: OperatorAsk['kind'];
  hint?: StepHint;
  /** Set when what the step reads is the drill's proposal (its statements, never run): shown in place of SQL. */
  shows?: 'proposal';
}

/**
 * What the console's `h` shows for a step, written for a learner: what to look for in
 * what the step shows, and the mistake people make at this point. (The lesson's habit
 * comes from the drill.) A sentence or two each: the hint fits one screen.
 */
export interface StepHint {
  look: string;
  mistake: string;
}

/**
 * A proposal a drill reviews, shown before the drill runs (drill 1: the migration's up and
 * down sections), each statement marked with what the parser found on it.
 */
export interface Proposal {
  /** The file, relative to the working directory. */
  file: string;
  sections: ProposalSection[];
  /** One line when the file could not be read or parsed (the drill says the same when it runs). */
  error?: string;
}

export interface ProposalSection {
  direction: 'up' | 'down';
  /** False when the file has no such section (a missing down). */
  present: boolean;
  statements: Array<{ text: string; marks: ProposalMark[] }>;
}

export interface ProposalMark {
  kind: 'destructive' | 'other-table' | 'opaque' | 'guarded';
  text: string;
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
  /**
   * The migration branch's name; the seed's cap-migration-1 unless set. Tests that run the
   * migration drill side by side on one cluster give each their own, since a branch name is
   * cluster-wide.
   */
  branchName?: string;
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
  /** The profile's roles (the same as profile.profile.roles). */
  roles: Roles;
  /**
   * What the target calls each thing: every statement a drill writes takes its
   * table and column names from profile.names (src/postgres/profile).
   */
  profile: ProfileInUse;
  broken: boolean;
  options: DrillOptions;
  operator: Operator;
  signal: AbortSignal;
  emit(event: RunnerEvent): void;
  /**
   * Shows and records an observation: a value read from the database or a process.
   * It is not read back: what a verdict needs, a step keeps in the drill's state too.
   */
  observe(label: string, value: unknown, ok?: boolean): void;
  /** Shows a statement the step is running. */
  showSql(sql: string): void;
  /** Evidence folders written so far. */
  evidenceDirs: string[];
  notes: string[];
  /** Cleanups for what the drill started (processes, branches); run when the drill ends. */
  defer(cleanup: () => Promise<void> | void): void;
  /** The Reconciler processes, started on demand (src/drills/processes.ts). */
  system: DrillSystem;
}

/**
 * One step of a drill. `S` is the drill's state: the handles (a tool server, a
 * tenant) and the intermediate results one step leaves for the next and for the verdict.
 * Written as methods so a Drill<S> is a Drill<unknown> in a list of drills.
 */
export interface Step<S = unknown> {
  id: string;
  title: string;
  why: string;
  /** The statements the step shows before it runs: written once, through the profile's names. */
  sql?: readonly string[] | ((n: ProfileNames) => readonly string[]);
  operator?: OperatorAsk['kind'];
  /** What the console's `h` shows for this step: every step of a drill has one (test/unit/hints.test.ts). */
  hint: StepHint;
  /** Set when what the step reads is the drill's proposal (drill 1's migration, read and never run). */
  shows?: 'proposal';
  run(ctx: DrillContext, state: S): Promise<void>;
}

export interface VerdictResult {
  verdict: Verdict;
  evidence: string;
  reason?: string;
}

export interface Drill<S = unknown> extends DrillSummary {
  /**
   * The smallest change that would turn this drill green, for the decision paragraph:
   * in the target's own names when it names a table or column.
   */
  fix: string | ((n: ProfileNames) => string);
  /**
   * The reference tables (and columns) the drill and the processes it starts read or
   * write (src/drills/reference-schema.ts). Checked before the first step: a target
   * without one of them makes the drill could-not-determine, never a fail.
   */
  needs?: readonly Need[];
  /**
   * What the drill reviews, read before it runs (no database): the console shows it on
   * the drill's first screen. Only drill 1 has one (the proposed migration).
   */
  proposal?(options: DrillOptions, broken: boolean): Promise<Proposal>;
  /**
   * With needsExclusiveDatabase: the id of the last step that needs the target to itself
   * (the migration drill's branch, once made, is a database of its own). After it the
   * session may start what the next drills share (the tool server) while the rest runs.
   */
  exclusiveThrough?: string;
  /** A fresh state for one run of the drill. */
  init(): S;
  steps: Step<S>[];
  /** Built from the state the steps left, only. */
  verdict(ctx: DrillContext, state: S): VerdictResult;
}

/** The value a step needs from an earlier one; a missing one is a bug in the drill, said plainly. */
export function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`internal: ${what} is not set (a step that makes it did not run)`);
  return value;
}

/** A drill's fix, in a profile's names. */
export function fixText(drill: Pick<Drill, 'fix'>, names: ProfileNames): string {
  return typeof drill.fix === 'function' ? drill.fix(names) : drill.fix;
}

/** A step's statements as shown for a profile. */
export function stepSql(step: Pick<Step, 'sql'>, names: ProfileNames): string[] {
  const sql = typeof step.sql === 'function' ? step.sql(names) : (step.sql ?? []);
  return [...sql];
}
