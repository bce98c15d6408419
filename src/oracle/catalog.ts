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

/** Reads the catalog of the named tables in schema `public` (null for a table that does not exist). */
export async function readCatalog(client: pg.Client, tables: readonly string[], schema = 'public'): Promise<Catalog> {
  const catalog: Catalog = {};
  for (const table of [...tables].sort()) {
    catalog[table] = await readTableCatalog(client, schema, table);
  }
  return catalog;
}

/** Reads one table's catalog (null when `schema.table` is not a table). */
export async function readTableCatalog(client: pg.Client, schema: string, table: string): Promise<TableCatalog | null> {
  const { rows: found } = await client.query<{ oid: number; owner: string; enabled: boolean; forced: boolean }>(
    `select c.oid::int as oid, pg_get_userbyid(c.relowner) as owner,
            c.relrowsecurity as enabled, c.relforcerowsecurity as forced
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`,
    [schema, table],
  );
  const head = found[0];
  if (!head) return null;
  const oid = head.oid;
  const columns = await client.query<ColumnState>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, not a.attnotnull as nullable,
            pg_get_expr(d.adbin, d.adrelid) as default,
            case a.attidentity when 'a' then 'always' when 'd' then 'by default' else null end as identity
       from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
      order by a.attname`,
    [oid],
  );
  const constraints = await client.query<TableCatalog['constraints'][number]>(
    `select c.conname as name,
            case c.contype when 'p' then 'primary key' when 'u' then 'unique' when 'f' then 'foreign key'
                           when 'c' then 'check' when 'x' then 'exclusion' else c.contype::text end as type,
            pg_get_constraintdef(c.oid) as definition,
            array(select a.attname::text
                    from unnest(coalesce(c.conkey, '{}'::int2[])) with ordinality as k(attnum, position)
                    join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum
                   order by k.position) as columns
       from pg_constraint c where c.conrelid = $1 and c.contype <> 'n'
      order by c.conname`,
    [oid],
  );
  const indexes = await client.query<TableCatalog['indexes'][number]>(
    `select i.relname as name, pg_get_indexdef(x.indexrelid) as definition,
            array(select pg_get_indexdef(x.indexrelid, k, true)
                    from generate_series(1, x.indnkeyatts::int) as k order by k) as columns,
            x.indisunique as unique
       from pg_index x join pg_class i on i.oid = x.indexrelid
      where x.indrelid = $1 order by i.relname`,
    [oid],
  );
  const policies = await client.query<TableCatalog['policies'][number]>(
    `select p.polname as name,
            case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                          when 'd' then 'delete' else 'all' end as command,
            p.polpermissive as permissive,
            array(select case when r = 0 then 'public' else pg_get_userbyid(r) end
                    from unnest(p.polroles) r order by 1) as roles,
            pg_get_expr(p.polqual, p.polrelid) as using,
            pg_get_expr(p.polwithcheck, p.polrelid) as check
       from pg_policy p where p.polrelid = $1 order by p.polname`,
    [oid],
  );
  const triggers = await client.query<{ name: string; enabled: string; definition: string }>(
    `select tgname as name,
            case tgenabled when 'O' then 'origin' when 'D' then 'disabled' when 'R' then 'replica'
                           when 'A' then 'always' else tgenabled::text end as enabled,
            pg_get_triggerdef(oid) as definition
       from pg_trigger where tgrelid = $1 and not tgisinternal order by tgname`,
    [oid],
  );
  const rules = await client.query<{ name: string; definition: string }>(
    `select rulename as name, definition from pg_rules where schemaname = $1 and tablename = $2 order by rulename`,
    [schema, table],
  );
  const grants = await client.query<{ grantee: string; privilege: string }>(
    `select case when a.grantee = 0 then 'public' else pg_get_userbyid(a.grantee) end as grantee,
            lower(a.privilege_type) as privilege
       from pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
      where c.oid = $1 and a.grantee <> c.relowner
      order by 1, 2`,
    [oid],
  );
  return {
    table,
    owner: head.owner,
    rls: { enabled: head.enabled, forced: head.forced },
    columns: columns.rows,
    constraints: constraints.rows,
    indexes: indexes.rows,
    policies: policies.rows,
    triggers: triggers.rows,
    rules: rules.rows,
    grants: grants.rows,
  };
}
