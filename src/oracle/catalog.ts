// Schema state, read from pg_catalog (never from a cache): columns, constraints,
// indexes, policies with the RLS flags, triggers, rules and grants of the named
// tables. Every list is ordered so two reads of the same schema are identical.
import type pg from 'pg';

export interface ColumnState {
  name: string;
  type: string;
  nullable: boolean;
  default: string | null;
  identity: string | null;
}

export interface TableCatalog {
  table: string;
  owner: string;
  rls: { enabled: boolean; forced: boolean };
  columns: ColumnState[];
  /** `columns`: the constrained columns in order (empty for a check on an expression). */
  constraints: Array<{ name: string; type: string; definition: string; columns: string[] }>;
  /** `columns`: the key columns (or expressions) in order, without INCLUDE columns. */
  indexes: Array<{ name: string; definition: string; columns: string[]; unique: boolean }>;
  policies: Array<{
    name: string;
    command: string;
    permissive: boolean;
    roles: string[];
    using: string | null;
    check: string | null;
  }>;
  triggers: Array<{ name: string; enabled: string; definition: string }>;
  rules: Array<{ name: string; definition: string }>;
  grants: Array<{ grantee: string; privilege: string }>;
}

export type Catalog = Record<string, TableCatalog | null>;

/**
 * Reads the catalog of the named tables in `schema` (public by default; null for a
 * table that does not exist): one query per kind of object for all the tables at
 * once, not one per table, so a schema of nine tables is 8 round trips, not 72.
 */
export async function readCatalog(client: pg.Client, tables: readonly string[], schema = 'public'): Promise<Catalog> {
  const names = [...tables].sort();
  const { rows: heads } = await client.query<{ oid: number; table: string; owner: string; enabled: boolean; forced: boolean }>(
    `select c.oid::int as oid, c.relname::text as table, pg_get_userbyid(c.relowner) as owner,
            c.relrowsecurity as enabled, c.relforcerowsecurity as forced
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2::text[]) and c.relkind in ('r', 'p')`,
    [schema, names],
  );
  const catalog: Catalog = {};
  if (heads.length === 0) {
    for (const table of names) catalog[table] = null;
    return catalog;
  }
  const oids = heads.map((head) => head.oid);
  // Each query orders by the table first, then as a one-table read would: each table's rows keep that order.
  const columns = await client.query<ColumnState & { rel: number }>(
    `select a.attrelid::int as rel, a.attname as name, format_type(a.atttypid, a.atttypmod) as type, not a.attnotnull as nullable,
            pg_get_expr(d.adbin, d.adrelid) as default,
            case a.attidentity when 'a' then 'always' when 'd' then 'by default' else null end as identity
       from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
      order by a.attrelid, a.attname`,
    [oids],
  );
  const constraints = await client.query<TableCatalog['constraints'][number] & { rel: number }>(
    `select c.conrelid::int as rel, c.conname as name,
            case c.contype when 'p' then 'primary key' when 'u' then 'unique' when 'f' then 'foreign key'
                           when 'c' then 'check' when 'x' then 'exclusion' else c.contype::text end as type,
            pg_get_constraintdef(c.oid) as definition,
            array(select a.attname::text
                    from unnest(coalesce(c.conkey, '{}'::int2[])) with ordinality as k(attnum, position)
                    join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
                   order by k.position) as columns
       from pg_constraint c where c.conrelid = any($1::oid[]) and c.contype <> 'n'
      order by c.conrelid, c.conname`,
    [oids],
  );
  const indexes = await client.query<TableCatalog['indexes'][number] & { rel: number }>(
    `select x.indrelid::int as rel, i.relname as name, pg_get_indexdef(x.indexrelid) as definition,
            array(select pg_get_indexdef(x.indexrelid, k, true)
                    from generate_series(1, x.indnkeyatts::int) as k order by k) as columns,
            x.indisunique as unique
       from pg_index x join pg_class i on i.oid = x.indexrelid
      where x.indrelid = any($1::oid[]) order by x.indrelid, i.relname`,
    [oids],
  );
  const policies = await client.query<TableCatalog['policies'][number] & { rel: number }>(
    `select p.polrelid::int as rel, p.polname as name,
            case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                          when 'd' then 'delete' else 'all' end as command,
            p.polpermissive as permissive,
            array(select case when r = 0 then 'public' else pg_get_userbyid(r) end
                    from unnest(p.polroles) r order by 1) as roles,
            pg_get_expr(p.polqual, p.polrelid) as using,
            pg_get_expr(p.polwithcheck, p.polrelid) as check
       from pg_policy p where p.polrelid = any($1::oid[]) order by p.polrelid, p.polname`,
    [oids],
  );
  const triggers = await client.query<{ rel: number; name: string; enabled: string; definition: string }>(
    `select tgrelid::int as rel, tgname as name,
            case tgenabled when 'O' then 'origin' when 'D' then 'disabled' when 'R' then 'replica'
                           when 'A' then 'always' else tgenabled::text end as enabled,
            pg_get_triggerdef(oid) as definition
       from pg_trigger where tgrelid = any($1::oid[]) and not tgisinternal order by tgrelid, tgname`,
    [oids],
  );
  const rules = await client.query<{ table: string; name: string; definition: string }>(
    `select tablename::text as table, rulename as name, definition from pg_rules
      where schemaname = $1 and tablename = any($2::text[]) order by tablename, rulename`,
    [schema, heads.map((head) => head.table)],
  );
  const grants = await client.query<{ rel: number; grantee: string; privilege: string }>(
    `select c.oid::int as rel, case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end as grantee,
            lower(a.privilege_type) as privilege
       from pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
      where c.oid = any($1::oid[]) and a.grantee <> c.relowner
      order by 1, 2, 3`,
    [oids],
  );
  const byOid = new Map(heads.map((head) => [head.oid, head]));
  for (const table of names) catalog[table] = null;
  for (const head of heads) {
    catalog[head.table] = {
      table: head.table,
      owner: head.owner,
      rls: { enabled: head.enabled, forced: head.forced },
      columns: [],
      constraints: [],
      indexes: [],
      policies: [],
      triggers: [],
      rules: [],
      grants: [],
    };
  }
  const of = (oid: number): TableCatalog => catalog[byOid.get(oid)!.table]!;
  for (const { rel, ...row } of columns.rows) of(rel).columns.push(row);
  for (const { rel, ...row } of constraints.rows) of(rel).constraints.push(row);
  for (const { rel, ...row } of indexes.rows) of(rel).indexes.push(row);
  for (const { rel, ...row } of policies.rows) of(rel).policies.push(row);
  for (const { rel, ...row } of triggers.rows) of(rel).triggers.push(row);
  for (const { table, ...row } of rules.rows) catalog[table]!.rules.push(row);
  for (const { rel, ...row } of grants.rows) of(rel).grants.push(row);
  return catalog;
}

/** Reads one table's catalog (null when `schema.table` is not a table). */
export async function readTableCatalog(client: pg.Client, schema: string, table: string): Promise<TableCatalog | null> {
  return (await readCatalog(client, [table], schema))[table] ?? null;
}
