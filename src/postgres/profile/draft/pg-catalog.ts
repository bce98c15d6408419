// What the draft reads from pg_catalog: the schema's tables (columns, constraints and
// unique indexes, policies, triggers, grants, owners) and the roles their owners and
// grants name, in one read; and the lookups the parts make over what was read.
import type pg from 'pg';

export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface CatalogColumn {
  name: string;
  /** format_type: `integer`, `numeric(12,2)`, `character varying(32)`, ... */
  type: string;
  notNull: boolean;
  /** A default, an identity or a generated column: an INSERT may leave it out. */
  hasDefault: boolean;
  /** An identity or serial (nextval) column: numbers that only grow. */
  increasing: boolean;
  /** The labels of an enum type, in order. */
  enumValues: string[] | null;
}

export interface CatalogConstraint {
  name: string;
  /** p primary key, u unique (constraint or unique index), f foreign key, c check. */
  kind: 'p' | 'u' | 'f' | 'c';
  columns: string[];
  definition: string;
  /** For a foreign key: the referenced table (schema-qualified when in another schema) and columns. */
  references: string | null;
  referencedColumns: string[] | null;
}

export interface CatalogTable {
  name: string;
  owner: string;
  rls: boolean;
  constraints: CatalogConstraint[];
  columns: CatalogColumn[];
  policies: Array<{ name: string; using: string | null; check: string | null }>;
  /** tgtype bits: 2 before, 8 delete, 16 update, 32 truncate. */
  triggers: Array<{ name: string; type: number; function: string }>;
  /** Direct grants (aclexplode), grantee PUBLIC included as 'PUBLIC'. */
  grants: Array<{ role: string; privilege: string }>;
}

export interface CatalogRole {
  name: string;
  superuser: boolean;
  bypassRls: boolean;
  /** The tables' owners this role is a member of (pg_has_role USAGE): it would bypass RLS as they do. */
  memberOf: string[];
}

export interface Catalog {
  schema: string;
  tables: CatalogTable[];
  roles: CatalogRole[];
}

/** The schema's tables with everything the draft reads, and the roles their grants and owners name. */
export async function readCatalog(client: Queryable, schema: string): Promise<Catalog> {
  const { rows: tables } = await client.query<CatalogTable>(
    `select c.relname as name, pg_catalog.pg_get_userbyid(c.relowner) as owner, c.relrowsecurity as rls,
            coalesce((select json_agg(json_build_object(
                        'name', a.attname, 'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'notNull', a.attnotnull,
                        'hasDefault', a.atthasdef or a.attidentity <> '' or a.attgenerated <> '',
                        'increasing', a.attidentity <> '' or coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid) like 'nextval(%', false),
                        'enumValues', (select json_agg(e.enumlabel order by e.enumsortorder) from pg_catalog.pg_enum e where e.enumtypid = a.atttypid))
                      order by a.attnum)
                from pg_catalog.pg_attribute a
                left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
               where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]') as columns,
            coalesce((select json_agg(json_build_object(
                        'name', k.conname, 'kind', k.contype, 'definition', pg_catalog.pg_get_constraintdef(k.oid),
                        'columns', (select coalesce(json_agg(a.attname order by u.ord), '[]') from unnest(k.conkey) with ordinality u(attnum, ord)
                                      join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum),
                        'references', case when k.contype = 'f' then
                                        (select case when r.relnamespace = c.relnamespace then r.relname else rn.nspname || '.' || r.relname end
                                           from pg_catalog.pg_class r join pg_catalog.pg_namespace rn on rn.oid = r.relnamespace where r.oid = k.confrelid) end,
                        'referencedColumns', case when k.contype = 'f' then
                                        (select json_agg(a.attname order by u.ord) from unnest(k.confkey) with ordinality u(attnum, ord)
                                           join pg_catalog.pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.attnum) end)
                      order by k.conname)
                from pg_catalog.pg_constraint k where k.conrelid = c.oid and k.contype in ('p', 'u', 'f', 'c')), '[]')::jsonb
            -- unique indexes that back no constraint (create unique index ...), on plain columns, without a predicate
            || coalesce((select json_agg(json_build_object(
                        'name', i.relname, 'kind', 'u', 'definition', pg_catalog.pg_get_indexdef(x.indexrelid), 'references', null, 'referencedColumns', null,
                        'columns', (select json_agg(a.attname order by u.ord) from unnest(x.indkey::int2[]) with ordinality u(attnum, ord)
                                      join pg_catalog.pg_attribute a on a.attrelid = x.indrelid and a.attnum = u.attnum))
                      order by i.relname)
                from pg_catalog.pg_index x join pg_catalog.pg_class i on i.oid = x.indexrelid
               where x.indrelid = c.oid and x.indisunique and x.indpred is null and 0 <> all (x.indkey::int2[])
                 and not exists (select 1 from pg_catalog.pg_constraint k where k.conindid = x.indexrelid)), '[]')::jsonb as constraints,
            coalesce((select json_agg(json_build_object('name', p.polname, 'using', pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                                                        'check', pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)) order by p.polname)
                from pg_catalog.pg_policy p where p.polrelid = c.oid), '[]') as policies,
            coalesce((select json_agg(json_build_object('name', t.tgname, 'type', t.tgtype, 'function', t.tgfoid::regproc::text) order by t.tgname)
                from pg_catalog.pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal), '[]') as triggers,
            coalesce((select json_agg(json_build_object('role', case when g.grantee = 0 then 'PUBLIC' else pg_catalog.pg_get_userbyid(g.grantee) end,
                                                        'privilege', g.privilege_type))
                from pg_catalog.aclexplode(c.relacl) g), '[]') as grants
       from pg_catalog.pg_class c
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
      order by c.relname`,
    [schema],
  );
  const owners = [...new Set(tables.map((table) => table.owner))];
  const names = [...new Set([...owners, ...tables.flatMap((table) => table.grants.map((grant) => grant.role))])].filter((role) => role !== 'PUBLIC');
  const { rows: roles } = await client.query<CatalogRole>(
    `select r.rolname as name, r.rolsuper as superuser, r.rolbypassrls as "bypassRls",
            array(select o.rolname from pg_catalog.pg_roles o
                   where o.rolname = any($2::text[]) and o.oid <> r.oid and pg_catalog.pg_has_role(r.oid, o.oid, 'USAGE')
                   order by o.rolname)::text[] as "memberOf"
       from pg_catalog.pg_roles r where r.rolname = any($1::text[]) order by r.rolname`,
    [names, owners],
  );
  return { schema, tables, roles };
}

// ---------------------------------------------------------------------------
// Lookups over the catalog read

/** Columns of a table with one of the names (in the names' order), that pass `accept`. */
export function columnsNamed(table: CatalogTable, names: readonly string[], accept: (column: CatalogColumn) => boolean = () => true): CatalogColumn[] {
  return names.flatMap((name) => table.columns.filter((column) => column.name === name && accept(column)));
}

export function foreignKeys(table: CatalogTable): CatalogConstraint[] {
  return table.constraints.filter((constraint) => constraint.kind === 'f' && constraint.columns.length === 1);
}

export function foreignKeysTo(table: CatalogTable, target: CatalogTable | undefined): CatalogConstraint[] {
  return target ? foreignKeys(table).filter((constraint) => constraint.references === target.name) : [];
}

export function uniqueKeys(table: CatalogTable): CatalogConstraint[] {
  return table.constraints.filter((constraint) => constraint.kind === 'u' || constraint.kind === 'p');
}

export function primaryKey(table: CatalogTable): CatalogConstraint | undefined {
  return table.constraints.find((constraint) => constraint.kind === 'p');
}

/** The string literals of a CHECK (`status = ANY (ARRAY['a'::text, 'b'::text])`). */
function checkLiterals(definition: string): string[] {
  return [...definition.matchAll(/'((?:[^']|'')*)'/g)].map((match) => match[1]!.replace(/''/g, "'"));
}

/** The values a column may hold: its single-column CHECKs' literals, or its enum's labels. */
export function allowedOf(table: CatalogTable, column: CatalogColumn): { values: string[]; evidence: string } | undefined {
  for (const check of table.constraints.filter((constraint) => constraint.kind === 'c' && constraint.columns.length === 1 && constraint.columns[0] === column.name)) {
    const values = checkLiterals(check.definition);
    if (values.length > 0) return { values, evidence: `the CHECK ${check.name} on ${table.name}.${column.name}` };
  }
  if (column.enumValues) return { values: column.enumValues, evidence: `the enum ${column.type} of ${table.name}.${column.name}` };
  return undefined;
}
