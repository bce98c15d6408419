// The names the drills know: the tables and columns of the reference Reconciler
// schema (fixtures/migrations) that the drills, the tool server, the Worker and
// the relay read or write when no profile is given (src/postgres/profile). A drill declares the tables it needs (`needs`); before
// its first step the runner reads pg_catalog and, when one of them or one of its
// columns is missing, the drill ends could-not-determine: it cannot look at a
// habit through names the target does not have, so it never blames one.
//
// Only names are checked here. A missing unique key, policy, trigger or grant is
// the mechanism a drill tests, and stays a fail of that drill.
import type pg from 'pg';

/**
 * Each table of the reference schema with the columns sor-drills names in its SQL
 * (columns no statement names, such as expenses.created_at, are left out: a target
 * without them can still be drilled). Checked against what fixtures/migrations
 * creates by test/integration/unmapped-schema.test.ts.
 */
export const referenceColumns = {
  tenants: ['id', 'name'],
  expenses: ['id', 'tenant_id', 'idempotency_key', 'transaction_id', 'amount_cents', 'description'],
  pending_transactions: [
    'id',
    'tenant_id',
    'amount_cents',
    'description',
    'status',
    'claimed_by',
    'locked_until',
    'processed_by',
    'processed_at',
  ],
  runs: ['id', 'tenant_id', 'worker', 'status', 'total_turns', 'error', 'started_at', 'finished_at'],
  turns: ['id', 'run_id', 'turn_no', 'status', 'started_at', 'finished_at'],
  tool_calls: [
    'id',
    'run_id',
    'turn_id',
    'turn_no',
    'call_no',
    'tool',
    'arguments',
    'status',
    'result',
    'error',
    'error_code',
    'started_at',
    'finished_at',
    'duration_ms',
  ],
  outbox: [
    'id',
    'tenant_id',
    'run_id',
    'dedup_key',
    'recipient',
    'subject',
    'body',
    'status',
    'attempts',
    'last_error',
    'next_attempt_at',
    'dispatched_at',
  ],
  agent_events: ['id', 'run_id', 'tenant_id', 'turn_no', 'event_type', 'detail', 'created_at'],
} as const;

export type ReferenceTable = keyof typeof referenceColumns;
export type ReferenceColumn<T extends ReferenceTable> = (typeof referenceColumns)[T][number];

/**
 * A table a drill needs: by name, with every column of referenceColumns, or as
 * `{ table, columns }` with only the columns the drill names itself.
 */
export type Need = ReferenceTable | { [T in ReferenceTable]: { table: T; columns: readonly ReferenceColumn<T>[] } }[ReferenceTable];

/** The tables and columns a list of needs comes to, one entry per table. */
export function resolveNeeds(needs: readonly Need[]): Array<{ table: ReferenceTable; columns: string[] }> {
  const byTable = new Map<ReferenceTable, Set<string>>();
  for (const need of needs) {
    const table = typeof need === 'string' ? need : need.table;
    const columns: readonly string[] = typeof need === 'string' ? referenceColumns[need] : need.columns;
    const known = byTable.get(table) ?? new Set<string>();
    for (const column of columns) known.add(column);
    byTable.set(table, known);
  }
  return [...byTable].map(([table, columns]) => ({ table, columns: [...columns] }));
}

export interface MissingNames {
  tables: string[];
  /** `table.column`, for tables that are there. */
  columns: string[];
}

export function nothingMissing(missing: MissingNames): boolean {
  return missing.tables.length === 0 && missing.columns.length === 0;
}

/**
 * Reads from pg_catalog which needed tables and columns the target lacks. A table
 * is found the way the drills' unqualified SQL finds it (to_regclass, through the
 * search_path), and may be any relation a query can read.
 */
export async function findMissingNames(client: Pick<pg.ClientBase, 'query'>, needs: readonly Need[]): Promise<MissingNames> {
  const wanted = resolveNeeds(needs);
  if (wanted.length === 0) return { tables: [], columns: [] };
  const { rows } = await client.query<{ table_name: string; found: boolean; columns: string[] }>(
    `select w.table_name,
            to_regclass(quote_ident(w.table_name)) is not null as found,
            array(select a.attname::text from pg_catalog.pg_attribute a
                   where a.attrelid = to_regclass(quote_ident(w.table_name)) and a.attnum > 0 and not a.attisdropped) as columns
       from unnest($1::text[]) with ordinality as w(table_name, n)
      order by w.n`,
    [wanted.map((entry) => entry.table)],
  );
  const missing: MissingNames = { tables: [], columns: [] };
  for (const entry of wanted) {
    const row = rows.find((candidate) => candidate.table_name === entry.table);
    if (!row?.found) {
      missing.tables.push(entry.table);
      continue;
    }
    for (const column of entry.columns) {
      if (!row.columns.includes(column)) missing.columns.push(`${entry.table}.${column}`);
    }
  }
  return missing;
}

/**
 * What the operator can do about it: the drills went by the reference Reconciler's
 * names because no profile was given, so a profile of the target's own names is the
 * fix. One line; it holds `;`, so it is always written in parentheses.
 */
export const unmappedHint =
  "the drills went by the reference Reconciler's names, since no profile was given; " +
  'draft a profile with `sor-drills profile --db URL --out profile.json` and run with `--profile profile.json`';

/** The SQLSTATEs of a name the target does not have: undefined_table, undefined_column, invalid_schema_name. */
export const missingNameStates: ReadonlySet<string> = new Set(['42P01', '42703', '3F000']);

const shownPerKind = 4;

function listed(names: readonly string[]): string {
  const shown = names.slice(0, shownPerKind).join(', ');
  return names.length > shownPerKind ? `${shown} and ${names.length - shownPerKind} more` : shown;
}

/** `no table tenants and no columns expenses.tenant_id, ... found in the target (<hint>)`: one line. */
export function describeMissing(missing: MissingNames): string {
  const parts: string[] = [];
  if (missing.tables.length > 0) parts.push(`${missing.tables.length === 1 ? 'table' : 'tables'} ${listed(missing.tables)}`);
  if (missing.columns.length > 0) parts.push(`${missing.columns.length === 1 ? 'column' : 'columns'} ${listed(missing.columns)}`);
  return `no ${parts.join(' and no ')} found in the target (${unmappedHint})`;
}
