// The expenses part: the table with a unique key holding a column named like
// idempotency, and its transaction column once the pending transactions are known.
import { draftAmount, draftKey, optionalColumn } from './columns.js';
import { type Drafter, list } from './drafter.js';
import { type CatalogConstraint, type CatalogTable, foreignKeysTo, uniqueKeys } from './pg-catalog.js';
import { draftTenantColumn, type TenantOf } from './tenants.js';
import { columnSynonyms, idempotencyColumn, textType, transactionColumn } from './vocabulary.js';

function idempotencyKeys(table: CatalogTable): CatalogConstraint[] {
  return uniqueKeys(table).filter((key) => key.columns.some((name) => idempotencyColumn.test(name)));
}

export function draftExpenses(d: Drafter, tenants: CatalogTable | undefined, tenantOf: TenantOf): CatalogTable | undefined {
  const spec = d.spec('expenses');
  const candidates = d.free().filter((table) => idempotencyKeys(table).length > 0);
  const table = d.chooseTable(
    'expenses',
    candidates,
    (candidate) => `the unique key ${idempotencyKeys(candidate)[0]!.name} (${list(idempotencyKeys(candidate)[0]!.columns)}) holds a column named like idempotency${candidate.rls ? ', row-level security on' : ''}`,
    'no table has a unique key with a column named like idempotency_key; write the table the Worker records expenses in',
    [
      ['row-level security on', (candidate) => candidate.rls],
      ['it references the tenant table', (candidate) => foreignKeysTo(candidate, tenants).length > 0],
    ],
  );
  if (!table) return undefined;
  draftKey(d, spec, 'expenses', table);
  const tenant = draftTenantColumn(d, spec, 'expenses', table, tenantOf);
  const keys = idempotencyKeys(table);
  if (keys.length === 1) {
    const columns = keys[0]!.columns;
    const others = columns.filter((name) => name !== tenant);
    if (others.length === 1) d.set(spec, 'expenses.idempotency_key', columns, `the unique key ${keys[0]!.name} of ${table.name}`);
    else {
      d.todo(spec, 'expenses.idempotency_key', `the unique key ${keys[0]!.name} (${list(columns)}) has ${others.length} columns besides the tenant column; write the key column, with the tenant column when the key is per tenant`);
    }
  } else {
    d.todo(spec, 'expenses.idempotency_key', `${table.name} has ${keys.length} unique keys with a column named like idempotency (${list(keys.map((key) => `${key.name} (${list(key.columns)})`))}); write the columns a repeated write conflicts on`);
  }
  draftAmount(d, spec, 'expenses', table);
  optionalColumn(d, spec, 'expenses.description', table, columnSynonyms.description, 'a description', (candidate) => textType.test(candidate.type));
  return table;
}

/** expenses.transaction, once the pending table is known: a foreign key to it, else a column named like a transaction id. */
export function draftExpenseTransaction(d: Drafter, expenses: CatalogTable | undefined, pending: CatalogTable | undefined): void {
  if (!expenses) return;
  const spec = d.spec('expenses');
  const key = 'expenses.transaction';
  const references = foreignKeysTo(expenses, pending);
  if (references.length === 1) {
    d.set(spec, key, references[0]!.columns[0], `column ${expenses.name}.${references[0]!.columns[0]}, a foreign key to ${pending!.name}`);
    return;
  }
  const named = references.length > 1 ? references.map((reference) => reference.columns[0]!) : expenses.columns.map((candidate) => candidate.name).filter((name) => transactionColumn.test(name));
  if (named.length === 1) d.set(spec, key, named[0], `column ${expenses.name}.${named[0]}, named like a transaction id (it has no foreign key)`);
  else if (named.length === 0) d.omit(key, `no column of ${expenses.name} references the pending transactions or is named like transaction_id`);
  else d.todo(spec, key, `${expenses.name} has ${list(named)}, each could hold the pending transaction; write the one it is, or remove this key`);
}
