// The keys every part writes alike: its key column, a named column (optional or
// required), the amount with its unit, and the status column with the value of each
// drill word.
import { type Drafter, list, quoted, type Spec } from './drafter.js';
import { allowedOf, type CatalogColumn, type CatalogTable, columnsNamed, primaryKey } from './pg-catalog.js';
import { columnSynonyms, type Found, found, integerType, statusSynonyms, statusValueFor, type StatusWord } from './vocabulary.js';

export function statusColumn(table: CatalogTable): Found<CatalogColumn> {
  return found(columnsNamed(table, columnSynonyms.status));
}

export function describeColumn(table: CatalogTable, column: CatalogColumn, names: readonly string[]): string {
  const how = column.name === names[0] ? `named ${column.name}` : `named like ${names[0]} (${list(names)})`;
  return `column ${table.name}.${column.name} (${column.type}), ${how}`;
}

export function draftKey(d: Drafter, spec: Spec, part: string, table: CatalogTable): string | undefined {
  const key = primaryKey(table);
  if (key && key.columns.length === 1) {
    d.set(spec, `${part}.key`, key.columns[0], `the primary key ${key.name} of ${table.name}`);
    return key.columns[0];
  }
  d.todo(
    spec,
    `${part}.key`,
    key ? `the primary key ${key.name} of ${table.name} has ${key.columns.length} columns (${list(key.columns)}); write one column that identifies a row` : `${table.name} has no primary key; write the column that identifies a row`,
  );
  return undefined;
}

/** A column key: set when one column fits, a TODO when several do (or, for a required key, none). */
function column(
  d: Drafter,
  spec: Spec,
  key: string,
  table: CatalogTable,
  names: readonly string[],
  what: string,
  options: { optional: boolean; accept?: (column: CatalogColumn) => boolean },
): CatalogColumn | undefined {
  const candidates = columnsNamed(table, names, options.accept);
  if (candidates.length === 1) {
    d.set(spec, key, candidates[0]!.name, describeColumn(table, candidates[0]!, names));
    return candidates[0];
  }
  if (candidates.length > 1) {
    d.todo(spec, key, `${table.name} has ${list(candidates.map((candidate) => candidate.name))}, each could be ${what}; write the one it is${options.optional ? ', or remove this key' : ''}`);
  } else if (options.optional) {
    d.omit(key, `no column of ${table.name} named ${list(names)}`);
  } else {
    d.todo(spec, key, `no column of ${table.name} is named like ${what} (${list(names)}); write the column that holds it`);
  }
  return undefined;
}

export function optionalColumn(d: Drafter, spec: Spec, key: string, table: CatalogTable, names: readonly string[], what: string, accept?: (column: CatalogColumn) => boolean) {
  return column(d, spec, key, table, names, what, { optional: true, accept });
}

export function requiredColumn(d: Drafter, spec: Spec, key: string, table: CatalogTable, names: readonly string[], what: string, accept?: (column: CatalogColumn) => boolean) {
  return column(d, spec, key, table, names, what, { optional: false, accept });
}

export function draftAmount(d: Drafter, spec: Spec, part: string, table: CatalogTable): void {
  const candidates = columnsNamed(table, columnSynonyms.amount);
  const key = `${part}.amount`;
  if (candidates.length !== 1) {
    const why =
      candidates.length === 0
        ? `no column of ${table.name} is named like an amount (${list(columnSynonyms.amount)}); write {"column": ..., "unit": "cents" or "major"}`
        : `${table.name} has ${list(candidates.map((candidate) => candidate.name))}, each could be the amount; write {"column": ..., "unit": "cents" or "major"}`;
    d.todo(spec, key, why);
    return;
  }
  const amount = candidates[0]!;
  const unit = integerType.test(amount.type) ? 'cents' : /^numeric/.test(amount.type) ? (/cents|minor/.test(amount.name) ? 'cents' : 'major') : undefined;
  if (!unit) {
    d.todo(spec, key, `${table.name}.${amount.name} is ${amount.type}, neither an integer count of cents nor numeric; write {"column": "${amount.name}", "unit": ...}`);
    return;
  }
  const how = unit === 'cents' ? (integerType.test(amount.type) ? 'an integer type: cents' : 'numeric, named in cents') : 'numeric: major units';
  d.set(spec, key, { column: amount.name, unit }, `${describeColumn(table, amount, columnSynonyms.amount)}; ${how}`);
}

/** The status column and the value of each drill word. */
export function draftStatus(d: Drafter, spec: Spec, part: string, table: CatalogTable, words: readonly StatusWord[]): void {
  const key = `${part}.status`;
  const status = statusColumn(table);
  if (status.kind !== 'one') {
    const why =
      status.kind === 'none'
        ? `no column of ${table.name} is named status or state; write {"column": ..., "values": {${words.map((word) => `"${word}": ...`).join(', ')}}}`
        : `${table.name} has ${list(status.values.map((column) => column.name))}; write the status column and its values`;
    d.todo(spec, key, why);
    return;
  }
  const column = status.value;
  const values: Spec = {};
  const result = { column: column.name, values };
  spec.status = result;
  d.mapped.push({ key: `${key}.column`, value: column.name, evidence: describeColumn(table, column, columnSynonyms.status) });
  const allowed = allowedOf(table, column);
  const chosen = new Map<string, string>();
  for (const word of words) {
    const wordKey = `${key}.values.${word}`;
    if (!allowed) {
      d.todo(values, wordKey, `no CHECK or enum on ${table.name}.${column.name} lists its values; write the value that means ${word}`);
      continue;
    }
    const match = statusValueFor(word, allowed.values);
    if (match.kind === 'one') {
      const other = chosen.get(match.value);
      if (other) {
        d.todo(values, wordKey, `'${match.value}' of ${allowed.evidence} already means ${other}; write the value that means ${word}`);
        continue;
      }
      chosen.set(match.value, word);
      const how = match.value === word ? `'${word}'` : `'${match.value}', a word for ${word} (${list(statusSynonyms[word])})`;
      d.set(values, wordKey, match.value, `${allowed.evidence} allows ${how}`);
    } else if (match.kind === 'none') {
      d.todo(values, wordKey, `no value of ${allowed.evidence} means ${word} (it allows ${quoted(allowed.values)}; the words for ${word} are ${list(statusSynonyms[word])}); write the one a row gets when ${word}`);
    } else {
      d.todo(values, wordKey, `${allowed.evidence} allows ${quoted(match.values)}, each a word for ${word}; write the one it is`);
    }
  }
}
