// snapshot(url, scope): what the database holds now, for the tables a scope names.
//
// A fresh connection for every snapshot (a long-lived one could be pinned to an old
// view), never inside a transaction: each table is read by ONE `COPY (select ...)
// TO STDOUT` statement, which is its own consistent read of committed rows, so the
// count is the number of rows that statement returned. Rows come ordered by the
// natural key, integers natively (the primary key's index serves the order) and
// everything else by its text in `collate "C"` order, which is the order the diff's
// merge compares in. Rows stay in memory up to the stream threshold and go to a file
// beyond it. Schema state comes from pg_catalog, never from a cache.
//
// Asked for its files (SnapshotOptions.files), the same pass writes the raw and the
// normalised document as the rows arrive (snapshot-files.ts): one read of the table
// for the diff's rows and both evidence files.
import type pg from 'pg';
import { CopyOut, type CopyConsumer } from './copy-out.js';
import { ident, literal, sqlState, TargetError, withPgClient, errorMessage } from '../postgres/pg.js';
import { maskUrl, UsageError } from '../postgres/url.js';
import { readTableCatalog } from './catalog.js';
import { RowSink } from './row-sink.js';
import { releaseStore } from './rows.js';
import { asWriteError, EvidenceWriteError, SnapshotFiles, writing, type SnapshotFileTargets } from './snapshot-files.js';
import type { ColumnInfo, KeyKind, NaturalKey, Scalar, Scope, Snapshot, TableScope, TableSnapshot, VolatileSpec } from './types.js';
import { defaultVolatiles, isVolatileColumn } from './volatiles.js';

export const defaultStreamThreshold = 50_000;

export interface SnapshotOptions {
  /** Where streamed rows are written (default: a fresh directory under the system temp dir). */
  workDir?: string;
  /** Called after each table is read. */
  onTable?: (table: TableSnapshot) => void;
  /**
   * Also write the snapshot's raw and normalised documents (before.json, before.normalised.json),
   * in the same pass over the rows, each atomically: the files writeSnapshotFiles(normalise(snapshot))
   * would write, byte for byte.
   */
  files?: SnapshotFileTargets;
}

/** The scope's tables as TableScope objects, sorted by name, one per name. */
export function scopeTables(scope: Scope): TableScope[] {
  const byName = new Map<string, TableScope>();
  for (const entry of scope.tables) {
    const table = typeof entry === 'string' ? { name: entry } : entry;
    const name = table.name.trim();
    if (!name) throw new UsageError('a scope names an empty table');
    const known = byName.get(name);
    byName.set(name, known ? { ...known, ...table, name } : { ...table, name });
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export async function snapshot(url: string, scope: Scope, options: SnapshotOptions = {}): Promise<Snapshot> {
  const tables = scopeTables(scope);
  if (tables.length === 0) throw new UsageError('a snapshot needs at least one table');
  const volatiles = scope.volatiles ?? defaultVolatiles();
  const threshold = scope.streamThreshold ?? defaultStreamThreshold;
  return withPgClient(
    url,
    async (client) => {
      const session = await prepareSession(client);
      const read: TableSnapshot[] = [];
      const base = { target: maskUrl(url), engine: `PostgreSQL ${session.version}`, volatiles };
      const files = options.files ? await writing(() => SnapshotFiles.create(options.files!, threshold, options.workDir)) : undefined;
      try {
        for (const table of tables) {
          const result = await readTable(client, table, {
            volatiles,
            threshold,
            workDir: options.workDir,
            schema: Boolean(scope.schema || table.schema),
            bypassesRls: session.bypassesRls,
            user: session.user,
            files: files && { writer: files, partial: (current) => ({ ...base, takenAt: new Date().toISOString(), tables: [...read, current] }) },
          });
          read.push(result);
          options.onTable?.(result);
        }
        const taken: Snapshot = { takenAt: new Date().toISOString(), ...base, tables: read };
        if (files) await writing(() => files.finish(taken));
        return taken;
      } catch (error) {
        for (const table of read) await releaseStore(table.rows);
        await files?.abort();
        throw error;
      }
    },
    { applicationName: 'sor-drills oracle' },
  );
}

/** Removes the files a snapshot streamed to disk (a no-op for rows held in memory). */
export async function releaseSnapshot(snapshot: Snapshot): Promise<void> {
  for (const table of snapshot.tables) await releaseStore(table.rows);
}

interface Session {
  version: string;
  user: string;
  bypassesRls: boolean;
}

/** Output settings fixed per session, so the text of a value does not depend on the server's defaults. */
async function prepareSession(client: pg.Client): Promise<Session> {
  const { rows } = await client.query<{ version: string; user: string; bypass: boolean }>(
    `select set_config('DateStyle', 'ISO, YMD', false) as a, set_config('IntervalStyle', 'postgres', false) as b,
            set_config('TimeZone', 'UTC', false) as c, set_config('extra_float_digits', '1', false) as d,
            set_config('bytea_output', 'hex', false) as e, set_config('standard_conforming_strings', 'on', false) as f,
            current_setting('server_version') as version, current_user as user,
            coalesce((select rolsuper or rolbypassrls from pg_roles where rolname = current_user), false) as bypass`,
  );
  const row = rows[0]!;
  return { version: row.version, user: row.user, bypassesRls: row.bypass };
}

interface ReadOptions {
  volatiles: VolatileSpec;
  threshold: number;
  workDir: string | undefined;
  schema: boolean;
  bypassesRls: boolean;
  user: string;
  /** The evidence files written while the rows stream, and the snapshot so far with a table added. */
  files?: { writer: SnapshotFiles; partial: (current: TableSnapshot) => Snapshot };
}

interface Relation {
  oid: number;
  schema: string;
  name: string;
  kind: string;
  owner: string;
  rls: boolean;
  forceRls: boolean;
  /** The planner's row estimate (pg_class.reltuples; -1 when never vacuumed or analysed). */
  estimate: number;
}

async function resolveRelation(client: pg.Client, name: string): Promise<Relation | null> {
  try {
    const { rows } = await client.query<Relation>(
      `select c.oid::int as oid, n.nspname as schema, c.relname as name, c.relkind::text as kind,
              pg_get_userbyid(c.relowner) as owner, c.relrowsecurity as rls, c.relforcerowsecurity as "forceRls",
              c.reltuples::float8 as estimate
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.oid = to_regclass($1)`,
      [name],
    );
    return rows[0] ?? null;
  } catch (error) {
    const code = sqlState(error);
    // A malformed name (42601, 42602), a schema that does not exist (3F000): the scope is wrong.
    if (code === '42601' || code === '42602' || code === '3F000' || code === '22023') {
      throw new UsageError(`not a table name: ${name} (${errorMessage(error)})`);
    }
    throw describeReadError(name, error, 'the snapshot role');
  }
}

interface ColumnRow {
  name: string;
  type: string;
  not_null: boolean;
  base_oid: number;
  category: string;
  typtype: string;
}

const intTypes = new Set([20, 21, 23, 26]);
const jsonTypes = new Set([114, 3802]);
const moneyType = 790;

async function readColumns(client: pg.Client, oid: number): Promise<ColumnInfo[]> {
  const { rows } = await client.query<ColumnRow>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
            b.oid::int as base_oid, b.typcategory::text as category, b.typtype::text as typtype
       from pg_attribute a
       join pg_type t on t.oid = a.atttypid
       join pg_type b on b.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
      where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
      order by a.attnum`,
    [oid],
  );
  return rows.map((row) => {
    let render: ColumnInfo['render'] = 'string';
    const toJson = !jsonTypes.has(row.base_oid) && (row.category === 'A' || row.typtype === 'c');
    if (jsonTypes.has(row.base_oid) || toJson) render = 'json';
    else if (row.category === 'N' && row.base_oid !== moneyType) render = 'number';
    else if (row.category === 'B') render = 'bool';
    return {
      name: row.name,
      type: row.type,
      notNull: row.not_null,
      render,
      toJson,
      keyKind: intTypes.has(row.base_oid) ? 'int' : 'text',
    };
  });
}

interface KeyCandidate {
  name: string;
  primary: boolean;
  columns: string[];
}

async function keyCandidates(client: pg.Client, oid: number): Promise<KeyCandidate[]> {
  const { rows } = await client.query<KeyCandidate & { is_constraint: boolean }>(
    `select ic.relname as name, x.indisprimary as primary,
            array(select a.attname::text
                    from unnest((x.indkey::int2[])[0:x.indnkeyatts - 1]) with ordinality as k(attnum, position)
                    join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum
                   order by k.position) as columns
       from pg_index x join pg_class ic on ic.oid = x.indexrelid
      where x.indrelid = $1 and x.indisunique and x.indisvalid and x.indpred is null and x.indexprs is null
      order by x.indisprimary desc,
               not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid and c.contype in ('p', 'u')),
               ic.relname`,
    [oid],
  );
  return rows;
}

function wholeRowKey(columns: ColumnInfo[], volatile: Set<string>, source = 'whole row'): NaturalKey {
  const kept = columns.filter((column) => !volatile.has(column.name));
  return { columns: kept.map((column) => column.name), kinds: kept.map(() => 'text' as KeyKind), source, wholeRow: true };
}

function keyOf(columns: ColumnInfo[], names: string[], source: string): NaturalKey {
  const byName = new Map(columns.map((column) => [column.name, column]));
  return {
    columns: names,
    kinds: names.map((name) => byName.get(name)!.keyKind),
    source,
    wholeRow: false,
  };
}

/** The natural key: the scope's, else the primary key unless a column of it is volatile, else the
 * first unique key on non-volatile NOT NULL columns, else the whole normalised row. */
export function chooseKey(
  table: TableScope,
  columns: ColumnInfo[],
  candidates: KeyCandidate[],
  volatile: Set<string>,
): NaturalKey {
  const fallback = defaultKey(columns, candidates, volatile);
  const names = new Set(columns.map((column) => column.name));
  if (table.key === 'row') return fallback.wholeRow ? fallback : wholeRowKey(columns, volatile, 'whole row (scope)');
  if (table.key && table.key.length > 0) {
    const missing = table.key.filter((name) => !names.has(name));
    if (missing.length === 0) {
      // A key the scope repeats from the default keeps the default's name (pinned keys read the same).
      return !fallback.wholeRow && fallback.columns.join('\u0000') === table.key.join('\u0000')
        ? fallback
        : keyOf(columns, table.key, 'scope');
    }
    if (table.keyStrict !== false) {
      throw new UsageError(`${table.name} has no column ${missing.join(', ')} (named as its key)`);
    }
  }
  return fallback;
}

function defaultKey(columns: ColumnInfo[], candidates: KeyCandidate[], volatile: Set<string>): NaturalKey {
  const notNull = new Set(columns.filter((column) => column.notNull).map((column) => column.name));
  for (const candidate of candidates) {
    if (candidate.columns.length === 0 || candidate.columns.some((name) => volatile.has(name))) continue;
    if (!candidate.primary && candidate.columns.some((name) => !notNull.has(name))) continue;
    return keyOf(columns, candidate.columns, `${candidate.primary ? 'primary key' : 'unique'} ${candidate.name}`);
  }
  return wholeRowKey(columns, volatile);
}

/**
 * The SQL of a column as the oracle reads it: arrays and composites as JSON; a column the rows are
 * ordered by as text (`::text`), so the text the merge compares is the very text Postgres ordered;
 * any other column as it is (COPY writes it with its type's output function, the cheapest read).
 */
function columnExpression(column: ColumnInfo, orderedAsText: boolean): string {
  if (column.toJson) return `to_json(t.${ident(column.name)})::text`;
  return orderedAsText ? `t.${ident(column.name)}::text` : `t.${ident(column.name)}`;
}

function orderExpression(column: ColumnInfo, kind: KeyKind): string {
  return kind === 'int' ? `t.${ident(column.name)}` : `(${columnExpression(column, true)}) collate "C"`;
}

function filterClause(table: TableScope, columns: ColumnInfo[]): string {
  const filter = table.filter ?? {};
  const names = new Set(columns.map((column) => column.name));
  const clauses = Object.entries(filter).map(([name, value]) => {
    if (!names.has(name)) throw new UsageError(`${table.name} has no column ${name} (named in its filter)`);
    return value === null ? `t.${ident(name)} is null` : `t.${ident(name)} = ${literal(String(value))}`;
  });
  return clauses.length > 0 ? ` where ${clauses.join(' and ')}` : '';
}

/** The one statement that reads a table's rows, ordered by its key (COPY takes no bind parameters:
 * filter values are quoted literals, identifiers are quoted with ident()). */
export function copyStatement(qualified: string, table: TableScope, columns: ColumnInfo[], key: NaturalKey): string {
  const byName = new Map(columns.map((column) => [column.name, column]));
  const asText = new Set(key.columns.filter((_, index) => key.kinds[index] === 'text'));
  const select = columns.map((column) => columnExpression(column, asText.has(column.name))).join(', ');
  const order = key.columns.map((name, index) => orderExpression(byName.get(name)!, key.kinds[index]!)).join(', ');
  return `copy (select ${select} from ${qualified} t${filterClause(table, columns)}${order ? ` order by ${order}` : ''}) to stdout`;
}

function describeReadError(table: string, error: unknown, user: string): Error {
  const code = sqlState(error);
  const message = errorMessage(error);
  if (code === '42501') {
    return new TargetError(`cannot read ${table} as ${user}: ${message} (42501): grant it SELECT, or snapshot as another role`, code, {
      cause: error,
    });
  }
  if (code?.startsWith('08') || code === '57P01' || !code) {
    return new TargetError(`lost the connection while reading ${table}: ${message}`, code, { cause: error });
  }
  return new Error(`cannot read ${table}: ${message} (SQLSTATE ${code})`, { cause: error });
}

async function readTable(client: pg.Client, table: TableScope, options: ReadOptions): Promise<TableSnapshot> {
  const relation = await resolveRelation(client, table.name);
  const filter = table.filter && Object.keys(table.filter).length > 0 ? (table.filter as Record<string, Scalar>) : null;
  if (!relation) {
    const missing: TableSnapshot = {
      table: table.name,
      qualified: null,
      exists: false,
      count: null,
      filter,
      columns: [],
      key: { columns: [], kinds: [], source: 'none (no such table)', wholeRow: false },
      volatileColumns: [],
      rows: table.rows === false ? null : { kind: 'memory', lines: [], count: 0 },
      streamed: false,
      catalog: null,
      schemaRequested: options.schema,
      rlsFiltered: false,
    };
    const files = options.files;
    if (files && missing.rows) {
      // Its (empty) rows have their place in the documents all the same.
      writing(() => files.writer.beginTable(files.partial(missing)));
      await writing(() => files.writer.endTable());
    }
    return missing;
  }
  const qualified = `${ident(relation.schema)}.${ident(relation.name)}`;
  const columns = await readColumns(client, relation.oid);
  const volatile = new Set(
    columns.filter((column) => isVolatileColumn(options.volatiles, table.name, column.name)).map((column) => column.name),
  );
  const key = chooseKey(table, columns, await keyCandidates(client, relation.oid), volatile);
  const catalog = options.schema ? await readTableCatalog(client, relation.schema, relation.name) : null;
  const rlsFiltered =
    relation.rls && !options.bypassesRls && !(relation.owner === options.user && !relation.forceRls);
  const shell = {
    table: table.name,
    qualified: `${relation.schema}.${relation.name}`,
    exists: true,
    filter,
    columns,
    key,
    volatileColumns: columns.filter((column) => volatile.has(column.name)).map((column) => column.name),
    catalog,
    schemaRequested: options.schema,
    rlsFiltered,
  };

  let count: number;
  let rows: TableSnapshot['rows'] = null;
  let streamed = false;
  if (table.rows === false) {
    try {
      const result = await client.query<{ n: string }>(
        `select count(*)::text as n from ${qualified} t${filterClause(table, columns)}`,
      );
      count = Number(result.rows[0]?.n ?? 0);
    } catch (error) {
      throw describeReadError(table.name, error, options.user);
    }
  } else if (options.files) {
    // One pass: the rows go to the two documents as they arrive, their keys beside them; the diff
    // reads them back from the normalised file.
    const files = options.files;
    const likely = files.writer.likelyCount(table.name, filter ? 0 : relation.estimate);
    const current: TableSnapshot = { ...shell, count: likely, rows: { kind: 'memory', lines: [], count: likely }, streamed: false };
    const encoder = writing(() => files.writer.beginTable(files.partial(current)));
    const consumer: CopyConsumer = {
      data: (buf, start, end) => {
        try {
          encoder.data(buf, start, end);
        } catch (error) {
          throw asWriteError(error);
        }
      },
      ready: () => writing(() => files.writer.ready()),
    };
    try {
      await client.query(new CopyOut(copyStatement(qualified, table, columns, key), consumer)).done;
    } catch (error) {
      throw error instanceof UsageError || error instanceof EvidenceWriteError ? error : describeReadError(table.name, error, options.user);
    }
    rows = await writing(() => files.writer.endTable());
    count = rows.count;
    streamed = count > options.threshold;
  } else {
    const sink = new RowSink(options.threshold, options.workDir, table.name);
    const consumer: CopyConsumer = { data: (buf, start, end) => sink.data(buf, start, end), ready: () => sink.ready() };
    try {
      await client.query(new CopyOut(copyStatement(qualified, table, columns, key), consumer)).done;
    } catch (error) {
      await sink.discard();
      throw error instanceof UsageError ? error : describeReadError(table.name, error, options.user);
    }
    rows = await sink.finish();
    streamed = sink.streamed;
    count = rows.count;
  }
  return {
    table: shell.table,
    qualified: shell.qualified,
    exists: true,
    count,
    filter,
    columns,
    key,
    volatileColumns: shell.volatileColumns,
    rows,
    streamed,
    catalog,
    schemaRequested: options.schema,
    rlsFiltered,
  };
}
