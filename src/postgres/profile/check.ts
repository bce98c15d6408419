// A profile held against the target's catalog, before anything runs: every table
// and column it names is there, every status value is one its CHECK allows, its
// roles exist, and every NOT NULL column without a default that no drill fills
// has a template. Each problem is one line naming the profile key.
//
// What it returns (the key columns' types and defaults) is how inserts make keys:
// a key with a default is left to it; a uuid or text key without one is made here.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { ProfileError } from './load.js';
import { type Profile, type ProfileTable, profileTables } from './schema.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface ColumnInfo {
  name: string;
  type: string;
  notNull: boolean;
  /** A default, an identity or a generated column: an INSERT may leave it out. */
  hasDefault: boolean;
}

export interface TableInfo {
  found: boolean;
  columns: ColumnInfo[];
  /** CHECK constraints: their name, the columns they read and their definition. */
  checks: Array<{ name: string; columns: string[]; definition: string }>;
}

export interface KeyInfo {
  type: string;
  hasDefault: boolean;
}

export interface CheckedProfile {
  profile: Profile;
  keys: Record<ProfileTable, KeyInfo>;
}

/** Reads the tables a profile names, with their columns and CHECK constraints. */
export async function readTables(client: Queryable, schema: string, tables: readonly string[]): Promise<Map<string, TableInfo>> {
  const { rows } = await client.query<{
    table_name: string;
    found: boolean;
    columns: ColumnInfo[] | null;
    checks: TableInfo['checks'] | null;
  }>(
    `select w.table_name, c.oid is not null as found,
            (select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                                               'notNull', a.attnotnull,
                                               'hasDefault', a.atthasdef or a.attidentity <> '' or a.attgenerated <> '')
                             order by a.attnum)
               from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns,
            (select json_agg(json_build_object('name', k.conname, 'definition', pg_get_constraintdef(k.oid),
                                               'columns', (select coalesce(json_agg(a.attname), '[]'::json) from pg_catalog.pg_attribute a
                                                            where a.attrelid = c.oid and a.attnum = any(k.conkey))))
               from pg_catalog.pg_constraint k where k.conrelid = c.oid and k.contype = 'c') as checks
       from unnest($2::text[]) as w(table_name)
       left join pg_catalog.pg_namespace s on s.nspname = $1
       left join pg_catalog.pg_class c on c.relnamespace = s.oid and c.relname = w.table_name and c.relkind in ('r', 'p', 'v', 'm', 'f')`,
    [schema, [...new Set(tables)]],
  );
  return new Map(
    rows.map((row) => [row.table_name, { found: row.found, columns: row.columns ?? [], checks: row.checks ?? [] }]),
  );
}

/** The string literals of a CHECK on one column (`status = ANY (ARRAY['a'::text, 'b'::text])`), or undefined. */
export function allowedValues(definition: string): string[] | undefined {
  const literals = [...definition.matchAll(/'((?:[^']|'')*)'/g)].map((match) => match[1]!.replace(/''/g, "'"));
  return literals.length > 0 ? literals : undefined;
}

/** The names a part of the profile gives, as [profile key, column]. */
function namedColumns(profile: Profile, part: ProfileTable): Array<[string, string]> {
  const spec = profile[part] as Record<string, unknown>;
  const named: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'table' || key === 'setting') continue;
    if (typeof value === 'string') named.push([`${part}.${key}`, value]);
    else if (Array.isArray(value)) value.forEach((column, index) => named.push([`${part}.${key}.${index}`, String(column)]));
    else if (value && typeof value === 'object' && 'column' in value) named.push([`${part}.${key}.column`, String(value.column)]);
    else if (key === 'required' && value && typeof value === 'object') {
      for (const column of Object.keys(value)) named.push([`${part}.required.${column}`, column]);
    }
  }
  return named;
}

/**
 * Every problem of a profile on this target, one line each (empty: none). Roles
 * are looked up in pg_roles; tables in the profile's schema.
 */
export async function profileProblems(client: Queryable, profile: Profile): Promise<{ problems: string[]; tables: Map<string, TableInfo> }> {
  const tables = await readTables(client, profile.schema, profileTables.map((part) => profile[part].table));
  const problems: string[] = [];
  for (const part of profileTables) {
    const spec = profile[part];
    const info = tables.get(spec.table);
    if (!info?.found) {
      problems.push(`${part}.table names ${spec.table}, which is not a table in schema ${profile.schema}`);
      continue;
    }
    const byName = new Map(info.columns.map((column) => [column.name, column]));
    const named = namedColumns(profile, part);
    for (const [key, column] of named) {
      if (!byName.has(column)) problems.push(`${key} names column ${column}, which ${spec.table} does not have`);
    }
    if ('status' in spec) {
      const column = spec.status.column;
      for (const check of info.checks.filter((candidate) => candidate.columns.length === 1 && candidate.columns[0] === column)) {
        const allowed = allowedValues(check.definition);
        if (!allowed) continue;
        for (const [word, value] of Object.entries(spec.status.values)) {
          if (!allowed.includes(value)) {
            problems.push(
              `${part}.status.values.${word} is '${value}', which the CHECK ${check.name} on ${spec.table}.${column} does not allow (it allows ${allowed.map((item) => `'${item}'`).join(', ')})`,
            );
          }
        }
      }
    }
    const covered = new Set(named.map(([, column]) => column));
    for (const column of info.columns) {
      if (column.notNull && !column.hasDefault && !covered.has(column.name)) {
        problems.push(
          `${spec.table}.${column.name} is NOT NULL with no default and the profile does not fill it: add it to ${part}.required with a value template`,
        );
      }
    }
    const key = byName.get(spec.key);
    if (key && !key.hasDefault && !makeableKey(key.type)) {
      problems.push(`${part}.key ${spec.table}.${spec.key} is ${key.type} with no default: sor-drills can make only text or uuid keys itself`);
    }
  }
  const { rows: roles } = await client.query<{ rolname: string }>('select rolname from pg_catalog.pg_roles where rolname = any($1::text[])', [
    Object.values(profile.roles),
  ]);
  for (const [key, role] of Object.entries(profile.roles)) {
    if (!roles.some((row) => row.rolname === role)) problems.push(`roles.${key} names role ${role}, which the server does not have`);
  }
  return { problems, tables };
}

function makeableKey(type: string): boolean {
  return type === 'uuid' || type === 'text' || /^character varying/.test(type) || type === 'varchar';
}

/** Checks a profile on the target; throws one ProfileError naming the first problem (and how many more). */
export async function checkProfile(client: Queryable, profile: Profile, source: string): Promise<CheckedProfile> {
  const { problems, tables } = await profileProblems(client, profile);
  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    throw new ProfileError(`profile ${source} does not fit the target: ${problems[0]}${more}`);
  }
  const keys = Object.fromEntries(
    profileTables.map((part) => {
      const column = tables.get(profile[part].table)!.columns.find((candidate) => candidate.name === profile[part].key)!;
      return [part, { type: column.type, hasDefault: column.hasDefault }];
    }),
  ) as Record<ProfileTable, KeyInfo>;
  return { profile, keys };
}

/**
 * A key for a new row: undefined when the column has a default (leave it out and
 * read it back with RETURNING), a uuid for a uuid key, else `${prefix}-<random>`.
 */
export function newKey(key: KeyInfo, prefix: string): string | undefined {
  if (key.hasDefault) return undefined;
  if (key.type === 'uuid') return randomUUID();
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
