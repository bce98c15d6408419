// The db-state oracle's vocabulary and data shapes (after seed 004, "db-state-QA").
//
// Glossary
// snapshot        What the database held at one moment for the tables a scope names: per table its
//                 row count, its rows in a stable order and (when asked) its schema state read from
//                 pg_catalog. Taken on a fresh connection, never inside a transaction: each table is
//                 one COPY statement, which is its own consistent read of committed state.
// normalise       Remove the volatile fields from a snapshot and render it deterministically (sorted
//                 column names, rows sorted by natural key), so two snapshots of the same state are
//                 byte-identical.
// volatile        A field whose value differs from run to run without meaning anything: id,
//                 created_at, updated_at, *_token, *_secret, lock_version, cached_* (the seed's set),
//                 plus what a drill or card adds. A column a spec asserts is never volatile.
// natural key     The columns that identify a row across the two snapshots, per table: the scope's
//                 choice, else the primary key unless one of its columns is volatile, else the first
//                 unique key on non-volatile NOT NULL columns, else the whole normalised row.
// predicate       One assertion of the spec about the diff ("widgets:+1", "audit_log:=",
//                 "widgets:+{name=X}", "widgets:+index:(slug)"); it ends satisfied, unsatisfied or
//                 could-not-determine, with the evidence that decided it.
// quiescence      The moment async work an action triggered has settled (a query's answer stops
//                 changing, a process exits). Waited for with a deadline; a timeout is
//                 could-not-determine, never a pass.
// evidence folder .agent-history/oracle/<card-id>/<timestamp>/ with the eight files of the seed:
//                 before.json, before.normalised.json, action.log, action_exit.txt, after.json,
//                 after.normalised.json, diff.txt, verdict.md. Written atomically, passwords masked.
// verdict         APPROVE (every predicate satisfied), REJECT (one unsatisfied), ESCALATE (the action
//                 failed, nothing was asserted, async work never settled, or a predicate could not
//                 be determined).
import type { TableCatalog } from './catalog.js';

/** A value a filter or an expectation compares a column with. */
export type Scalar = string | number | boolean | null;

/** Which fields are volatile. Patterns use `*` as a wildcard (`*_token`). */
export interface VolatileSpec {
  /** Column names removed from every table's rows, and keys removed at any depth inside json values. */
  patterns: string[];
  /** Extra column patterns for one table (top-level columns only): `{ expenses: ['description'] }`. */
  tables?: Record<string, string[]>;
  /** Columns never treated as volatile, per table (`'*'`: every table), e.g. a column a spec asserts. */
  keep?: Record<string, string[]>;
}

export interface TableScope {
  /** Table name as SQL would resolve it (search_path applies): `widgets`, `audit.log`. */
  name: string;
  /** Only rows whose columns equal these values (e.g. `{ run_id: 'R-44' }`). */
  filter?: Record<string, Scalar>;
  /** The natural key: column names, or 'row' for the whole normalised row. Default: see glossary. */
  key?: string[] | 'row';
  /** Read this table's schema state from pg_catalog (also on when Scope.schema is true). */
  schema?: boolean;
  /** Read the rows (default true); false keeps only the count. */
  rows?: boolean;
  /** When the key's columns are missing: true (default) refuses, false falls back to the default key. */
  keyStrict?: boolean;
}

export interface Scope {
  tables: Array<string | TableScope>;
  /** Read the schema state of every table. */
  schema?: boolean;
  /** Default: the seed's set (defaultVolatilePatterns). */
  volatiles?: VolatileSpec;
  /** Rows per table held in memory; above it the rows stream to a file on disk. Default 50,000. */
  streamThreshold?: number;
}

/** How key values compare: integers numerically (the database orders them natively, using the
 * index), anything else by the code points of its text form (the database orders by `::text collate "C"`). */
export type KeyKind = 'int' | 'text';

export interface ColumnInfo {
  name: string;
  /** format_type(), e.g. `bigint`, `character varying(20)`. */
  type: string;
  notNull: boolean;
  /** How the value is written in JSON. */
  render: 'number' | 'bool' | 'json' | 'string';
  /** Read as `to_json(col)` (arrays, composites) rather than `col::text`. */
  toJson: boolean;
  keyKind: KeyKind;
}

export interface NaturalKey {
  /** Column names; for a whole-row key, every non-volatile column. */
  columns: string[];
  kinds: KeyKind[];
  /** 'scope', 'primary key <name>', 'unique <name>' or 'whole row'. */
  source: string;
  wholeRow: boolean;
}

/**
 * Rows as COPY text lines (tab-separated fields, one per column in `columns` order), sorted by key;
 * or, for a snapshot that wrote its files as it read (SnapshotOptions.files), the row lines of its
 * normalised file (bytes `start` to `end` of `file`: one row a line, indented, commas between) with
 * the COPY text of each row's key columns beside them in `keys`, in the same order.
 */
export type RowStore =
  | { kind: 'memory'; lines: string[]; count: number }
  | { kind: 'file'; path: string; count: number; ownedDir?: string }
  | {
      kind: 'normalised';
      file: string;
      start: number;
      end: number;
      count: number;
      /** The indentation of a row line. */
      indent: string;
      /** The normalised columns the lines hold, and the volatile set they were written with. */
      columns: string[];
      volatiles: VolatileSpec;
      /** The key columns' COPY text per row (tab-separated), as a store of its own. */
      keys: Extract<RowStore, { kind: 'memory' | 'file' }>;
    };

export interface TableSnapshot {
  /** The name as the scope gave it (the key of this table everywhere in the evidence). */
  table: string;
  /** Schema-qualified name as resolved, e.g. `public.widgets`; null when the table does not exist. */
  qualified: string | null;
  exists: boolean;
  /** Rows read (after the filter); null when the table does not exist. */
  count: number | null;
  filter: Record<string, Scalar> | null;
  columns: ColumnInfo[];
  key: NaturalKey;
  /** Top-level columns the normalisation removes for this table. */
  volatileColumns: string[];
  /** Null when the scope asked for counts only. */
  rows: RowStore | null;
  /** True when the rows went to disk (more than the stream threshold). */
  streamed: boolean;
  /** Schema state from pg_catalog; null when not asked or not a table. */
  catalog: TableCatalog | null;
  schemaRequested: boolean;
  /** Row-level security hides rows from the role that read this table (the count may be partial). */
  rlsFiltered: boolean;
}

export interface Snapshot {
  takenAt: string;
  /** The target with its password masked. */
  target: string;
  /** `PostgreSQL 17.6`. */
  engine: string;
  volatiles: VolatileSpec;
  tables: TableSnapshot[];
}

export interface NormalisedTable {
  source: TableSnapshot;
  volatileColumns: string[];
  /** Columns of the normalised row, sorted by name (volatile ones removed). */
  columns: ColumnInfo[];
}

/** A snapshot seen through a volatile set: rows are rendered without volatile fields when read. */
export interface NormalisedSnapshot {
  source: Snapshot;
  volatiles: VolatileSpec;
  tables: NormalisedTable[];
}

/** A normalised row, parsed (numbers beyond 2^53 lose precision here; the files keep them exact). */
export type Row = Record<string, unknown>;

export interface RowChange {
  key: Record<string, unknown> | null;
  before: Row;
  after: Row;
  /** Columns whose normalised value differs. */
  columns: string[];
}

export interface SchemaObjectChange {
  kind: 'column' | 'constraint' | 'index' | 'policy' | 'trigger' | 'rule' | 'grant' | 'rls' | 'owner' | 'table';
  name: string;
  change: 'added' | 'removed' | 'changed';
}

export interface TableDiff {
  table: string;
  existsBefore: boolean;
  existsAfter: boolean;
  countBefore: number | null;
  countAfter: number | null;
  /** countAfter - countBefore; null when either is unknown. */
  delta: number | null;
  rowsCompared: boolean;
  addedCount: number;
  removedCount: number;
  changedCount: number;
  /** The first `sampleLimit` of each; `truncated` says some were left out. */
  added: Row[];
  removed: Row[];
  changed: RowChange[];
  truncated: boolean;
  /** The key differed between the snapshots (e.g. a migration changed it): rows compared as wholes. */
  keyMismatch: boolean;
  /** Null when schema state was not read on both sides. */
  schema: SchemaObjectChange[] | null;
}

export interface SnapshotDiff {
  tables: TableDiff[];
  /** The unified diff of the two normalised snapshots (first `textLimit` characters). */
  text: string;
  textTruncated: boolean;
  /** Lines added and removed in the unified diff. */
  linesAdded: number;
  linesRemoved: number;
}

export type SchemaObjectKind = 'table' | 'column' | 'index' | 'constraint' | 'policy' | 'trigger';

export type Expectation =
  | { kind: 'count'; table: string; delta: number; text: string }
  | { kind: 'unchanged'; table: string; text: string }
  | { kind: 'row-added' | 'row-removed'; table: string; match: Record<string, Scalar>; text: string }
  | {
      kind: 'row-changed';
      table: string;
      match: Record<string, Scalar>;
      to: Record<string, Scalar>;
      deltas: Record<string, number>;
      text: string;
    }
  | {
      kind: 'schema';
      table: string;
      object: SchemaObjectKind;
      /** The object's name, or for an index or constraint its columns (`(slug)`). */
      name: string | null;
      columns: string[] | null;
      state: 'added' | 'removed' | 'present' | 'absent';
      text: string;
    };

export type PredicateVerdict = 'satisfied' | 'unsatisfied' | 'could-not-determine';

export interface ExpectationResult {
  expectation: Expectation;
  /** A human description of the predicate, e.g. `widgets count +1`. */
  predicate: string;
  verdict: PredicateVerdict;
  /** What decided it: a diff hunk line, row content, counts, or the reason it could not be decided. */
  evidence: string;
}

export type Verdict = 'APPROVE' | 'REJECT' | 'ESCALATE';

export type QuiescenceCondition =
  /** The query's answer (all rows, as text) stays the same for `stableForMs`. */
  | { kind: 'query-settles'; url: string; sql: string; params?: unknown[]; stableForMs?: number }
  /** The query's first column of its first row is true. */
  | { kind: 'query-true'; url: string; sql: string; params?: unknown[] }
  /** The process has exited. */
  | { kind: 'process-exits'; pid: number }
  | { kind: 'check'; what: string; check: () => boolean | Promise<boolean> };

export interface QuiescenceResult {
  settled: boolean;
  what: string;
  waitedMs: number;
  polls: number;
  /** The last answer seen (for a query), or why it did not settle. */
  detail: string;
}

export interface ActionOutcome {
  exitCode: number;
  /** Text to put in action.log (besides what was passed to log()). */
  log?: string;
}

/** The action the oracle wraps: a command to spawn, or a function (a drill's step). */
export type OracleAction =
  | {
      command: string;
      args?: string[];
      cwd?: string;
      env?: Record<string, string>;
      timeoutMs?: number;
      /** http-qa, cli-qa or library-qa; guessed from the command when absent. */
      primary?: string;
    }
  | {
      label: string;
      run: (log: (text: string) => void) => Promise<number | ActionOutcome>;
      primary?: string;
    };

export interface ActionResult {
  label: string;
  primary: string;
  exitCode: number;
  signal: string | null;
  durationMs: number;
  /** Why it failed to run at all (not found, threw), when it did. */
  error: string | null;
}

export const evidenceFiles = [
  'before.json',
  'before.normalised.json',
  'action.log',
  'action_exit.txt',
  'after.json',
  'after.normalised.json',
  'diff.txt',
  'verdict.md',
] as const;

export type EvidenceFile = (typeof evidenceFiles)[number];

export interface TableSummary {
  table: string;
  before: number | null;
  after: number | null;
  delta: number | null;
  added: number;
  removed: number;
  changed: number;
  streamed: boolean;
  /** "yes", "no", "not asserted" ..., the seed's "Change matches spec?" column. */
  matches: string;
}

export interface OracleResult {
  verdict: Verdict;
  card: string;
  /** The evidence folder. */
  folder: string;
  files: Record<EvidenceFile, string>;
  action: ActionResult;
  quiescence: QuiescenceResult | null;
  expectations: ExpectationResult[];
  tables: TableSummary[];
  findings: string[];
  /** The normalised diff (diff.txt), possibly cut; `diff.textTruncated` says so. */
  diffText: string;
  diff: SnapshotDiff | null;
}

/** Progress, for a screen or a log: one typed event per step of the workflow. */
export type OracleEvent =
  | { type: 'snapshot'; phase: 'before' | 'after'; table: string; count: number | null; streamed: boolean }
  | { type: 'action-start'; label: string }
  | { type: 'action-exit'; exitCode: number; durationMs: number }
  | { type: 'quiescence'; result: QuiescenceResult }
  | { type: 'diff'; linesAdded: number; linesRemoved: number }
  | { type: 'verdict'; verdict: Verdict; folder: string };
