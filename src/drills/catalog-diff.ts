// What changed between two catalog reads, one line per change, so a drill can
// say "the schema diff is exactly the new nullable notes column".
import type { Catalog, TableCatalog } from '../oracle/index.js';

type Named = { name: string };

function listDiff<T extends Named>(table: string, what: string, before: T[], after: T[], show: (item: T) => string): string[] {
  const changes: string[] = [];
  const beforeByName = new Map(before.map((item) => [item.name, item]));
  const afterByName = new Map(after.map((item) => [item.name, item]));
  for (const [name, item] of afterByName) {
    const old = beforeByName.get(name);
    if (!old) changes.push(`${table}: + ${what} ${show(item)}`);
    else if (JSON.stringify(old) !== JSON.stringify(item)) changes.push(`${table}: ~ ${what} ${show(old)} -> ${show(item)}`);
  }
  for (const [name, item] of beforeByName) {
    if (!afterByName.has(name)) changes.push(`${table}: - ${what} ${show(item)}`);
  }
  return changes;
}

export function describeColumn(column: TableCatalog['columns'][number]): string {
  return `${column.name} ${column.type}${column.nullable ? ' nullable' : ' not null'}${column.default ? ` default ${column.default}` : ''}`;
}

export function catalogDiff(before: Catalog, after: Catalog): string[] {
  const changes: string[] = [];
  const tables = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  for (const table of tables) {
    const old = before[table] ?? null;
    const now = after[table] ?? null;
    if (!old && !now) continue;
    if (!old) {
      changes.push(`+ table ${table}`);
      continue;
    }
    if (!now) {
      changes.push(`- table ${table}`);
      continue;
    }
    if (old.owner !== now.owner) changes.push(`${table}: ~ owner ${old.owner} -> ${now.owner}`);
    if (JSON.stringify(old.rls) !== JSON.stringify(now.rls)) changes.push(`${table}: ~ rls ${JSON.stringify(old.rls)} -> ${JSON.stringify(now.rls)}`);
    changes.push(...listDiff(table, 'column', old.columns, now.columns, describeColumn));
    changes.push(...listDiff(table, 'constraint', old.constraints, now.constraints, (c) => `${c.name} ${c.definition}`));
    changes.push(...listDiff(table, 'index', old.indexes, now.indexes, (i) => i.definition));
    changes.push(...listDiff(table, 'policy', old.policies, now.policies, (p) => p.name));
    changes.push(...listDiff(table, 'trigger', old.triggers, now.triggers, (t) => `${t.name} (${t.enabled})`));
    changes.push(...listDiff(table, 'rule', old.rules, now.rules, (r) => r.name));
    const grants = (catalog: TableCatalog) => catalog.grants.map((grant) => ({ name: `${grant.grantee}:${grant.privilege}` }));
    changes.push(...listDiff(table, 'grant', grants(old), grants(now), (g) => g.name));
  }
  return changes;
}
