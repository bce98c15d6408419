// Each part's `required`: a value template for every NOT NULL column with no default
// that no key of the part fills.
import type { Drafter, Spec } from './drafter.js';
import { type CatalogTable, foreignKeys, uniqueKeys } from './pg-catalog.js';
import { templateFor } from './vocabulary.js';

/** The columns a part's keys name (as the catalog check counts them). */
function namedColumns(spec: Spec): Set<string> {
  const named = new Set<string>();
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'table' || key === 'setting' || key === 'required') continue;
    if (typeof value === 'string') named.add(value);
    else if (Array.isArray(value)) for (const item of value) named.add(String(item));
    else if (value && typeof value === 'object' && 'column' in value) named.add(String((value as { column: unknown }).column));
  }
  return named;
}

export function draftRequired(d: Drafter, part: string, tenants: CatalogTable | undefined): void {
  const table = d.chosen.get(part);
  if (!table) return;
  const spec = d.spec(part);
  const covered = namedColumns(spec);
  const required: Spec = {};
  for (const candidate of table.columns.filter((c) => c.notNull && !c.hasDefault && !covered.has(c.name))) {
    const key = `${part}.required.${candidate.name}`;
    const references = foreignKeys(table).find((fk) => fk.columns[0] === candidate.name)?.references;
    const unique = uniqueKeys(table).some((uniqueKey) => uniqueKey.columns.length === 1 && uniqueKey.columns[0] === candidate.name);
    const template = templateFor(candidate, { unique, references, tenantTable: tenants?.name });
    if ('template' in template) {
      d.set(required, key, template.template, `${table.name}.${candidate.name} is NOT NULL with no default and no key fills it (${candidate.type}${references ? `, references ${references}` : ''})`);
    } else {
      d.todo(required, key, `${table.name}.${candidate.name} is NOT NULL with no default and ${template.why}; write a value template ({key}, {tenant}, {uuid} or a constant)`);
    }
  }
  if (Object.keys(required).length > 0) spec.required = required;
}
