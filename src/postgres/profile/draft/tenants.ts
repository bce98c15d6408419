// The tenants part, from the row-level policies (the table their compared column
// references, the setting they read), and the tenant column of every other part.
import { draftKey, optionalColumn } from './columns.js';
import { type Drafter, list, type Spec } from './drafter.js';
import { type CatalogTable, foreignKeys, foreignKeysTo } from './pg-catalog.js';
import { columnSynonyms, type Found, found, tableSynonyms, textType } from './vocabulary.js';

/** The identifiers of an expression, outside its string literals. */
function identifiersOf(expression: string): Set<string> {
  const bare = expression.replace(/'(?:[^']|'')*'/g, "''");
  return new Set([...bare.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][\w$]*)/g)].map((match) => match[1]?.replace(/""/g, '"') ?? match[2]!));
}

/** The settings an expression reads with current_setting('x', ...). */
function settingsOf(expression: string): string[] {
  return [...expression.matchAll(/current_setting\(\s*'((?:[^']|'')+)'/gi)].map((match) => match[1]!.replace(/''/g, "'"));
}

function policyText(policy: CatalogTable['policies'][number]): string {
  return [policy.using, policy.check].filter(Boolean).join(' ');
}

export function draftTenants(d: Drafter): CatalogTable | undefined {
  const spec = d.spec('tenants');
  // The tables a policy's column references: the tenant table, by the policies' own evidence.
  const referenced = new Map<string, Array<{ why: string; column: string | undefined }>>();
  const settings = new Map<string, string[]>();
  for (const table of d.catalog.tables) {
    for (const policy of table.policies) {
      const text = policyText(policy);
      for (const setting of new Set(settingsOf(text))) settings.set(setting, [...(settings.get(setting) ?? []), `${policy.name} on ${table.name}`]);
      const names = identifiersOf(text);
      for (const key of foreignKeys(table).filter((constraint) => names.has(constraint.columns[0]!))) {
        const why = `the policy ${policy.name} on ${table.name} compares ${key.columns[0]}, a foreign key to ${key.references}.${key.referencedColumns?.[0]}`;
        referenced.set(key.references!, [...(referenced.get(key.references!) ?? []), { why, column: key.referencedColumns?.[0] }]);
      }
    }
  }
  const byPolicy = [...referenced.keys()].map((name) => d.table(name)).filter((table): table is CatalogTable => table !== undefined);
  let tenants: CatalogTable | undefined;
  if (byPolicy.length > 0) {
    tenants = d.chooseTable('tenants', byPolicy, (table) => referenced.get(table.name)![0]!.why, '');
  } else {
    tenants = d.chooseTable(
      'tenants',
      d.catalog.tables.filter((table) => (tableSynonyms.tenants as readonly string[]).includes(table.name)),
      (table) => `named ${table.name} (no policy's column references a table)`,
      `no row-level policy compares a column that references a table, and no table is named ${list(tableSynonyms.tenants)}; write the table that holds one row per tenant`,
    );
  }
  if (tenants) {
    // The key is the column the policies' foreign keys reference, when they agree on one.
    const columns = [...new Set((referenced.get(tenants.name) ?? []).map((reference) => reference.column))];
    const keyColumn = columns.length === 1 ? columns[0] : undefined;
    if (keyColumn) d.set(spec, 'tenants.key', keyColumn, `the column the policies' foreign keys reference: ${tenants.name}.${keyColumn}`);
    else draftKey(d, spec, 'tenants', tenants);
    optionalColumn(d, spec, 'tenants.name', tenants, columnSynonyms.tenantName, 'a display name', (column) => textType.test(column.type));
  }
  const named = [...settings.keys()];
  if (named.length === 1) d.set(spec, 'tenants.setting', named[0], `current_setting('${named[0]}') in the policies ${list(settings.get(named[0]!)!)}`);
  else if (named.length === 0) {
    d.todo(spec, 'tenants.setting', "no row-level policy reads current_setting('...'); write the session setting that names the tenant (app.tenant_id)");
  } else {
    d.todo(spec, 'tenants.setting', `the policies read ${named.length} settings: ${list(named.map((name) => `${name} (${list(settings.get(name)!)})`))}; write the one that names the tenant`);
  }
  return tenants;
}

/** The names of the columns that reference the tenant table anywhere (tenant_id, user_id). */
export function tenantColumns(d: Drafter, tenants: CatalogTable | undefined): Set<string> {
  return new Set(d.catalog.tables.flatMap((table) => foreignKeysTo(table, tenants).map((key) => key.columns[0]!)));
}

export function tenantColumn(d: Drafter, table: CatalogTable, tenants: CatalogTable | undefined, names: Set<string>): Found<{ column: string; evidence: string }> {
  if (!tenants) return { kind: 'none' };
  const keys = foreignKeysTo(table, tenants);
  if (keys.length > 0) {
    return found(keys.map((key) => ({ column: key.columns[0]!, evidence: `column ${table.name}.${key.columns[0]}, a foreign key to ${tenants.name}` })));
  }
  return found(
    table.columns
      .filter((column) => names.has(column.name))
      .map((column) => ({ column: column.name, evidence: `column ${table.name}.${column.name}, named as the columns that reference ${tenants.name} (it has no foreign key)` })),
  );
}

export type TenantOf = (table: CatalogTable) => Found<{ column: string; evidence: string }>;

export function draftTenantColumn(d: Drafter, spec: Spec, part: string, table: CatalogTable, tenantOf: TenantOf, optional = false): string | undefined {
  const key = `${part}.tenant`;
  const tenant = tenantOf(table);
  if (tenant.kind === 'one') {
    d.set(spec, key, tenant.value.column, tenant.value.evidence);
    return tenant.value.column;
  }
  if (tenant.kind === 'many') d.todo(spec, key, `${table.name} has ${list(tenant.values.map((value) => value.column))} referencing the tenant table; write the one that owns the row`);
  else if (optional) d.omit(key, `no column of ${table.name} references the tenant table or is named as the tenant columns elsewhere`);
  else d.todo(spec, key, `no column of ${table.name} references the tenant table; write the column that holds the tenant`);
  return undefined;
}
