// The outbox part: the table with a unique dedup column and a status column, and the
// columns of the message it holds.
import { draftRunColumn } from './agent-runs.js';
import { draftKey, draftStatus, optionalColumn, statusColumn } from './columns.js';
import { type Drafter, list } from './drafter.js';
import { allowedOf, type CatalogColumn, type CatalogTable, uniqueKeys } from './pg-catalog.js';
import { draftTenantColumn, type TenantOf } from './tenants.js';
import { columnSynonyms, integerType, jsonType, textType, timeType } from './vocabulary.js';

function dedupColumns(table: CatalogTable): string[] {
  return uniqueKeys(table)
    .filter((key) => key.columns.length === 1 && (columnSynonyms.dedupKey as readonly string[]).includes(key.columns[0]!))
    .map((key) => key.columns[0]!);
}

export function draftOutbox(d: Drafter, tenantOf: TenantOf, runs: CatalogTable | undefined, turns: CatalogTable | undefined): void {
  const spec = d.spec('outbox');
  const candidates = d.free().filter((table) => dedupColumns(table).length > 0 && statusColumn(table).kind === 'one');
  const table = d.chooseTable(
    'outbox',
    candidates,
    (candidate) => `a unique ${dedupColumns(candidate)[0]} and a status column`,
    `no table has a unique dedup column (${list(columnSynonyms.dedupKey)}) and a status column; write the outbox table`,
    [['it has a status CHECK', (candidate) => { const status = statusColumn(candidate); return status.kind === 'one' && allowedOf(candidate, status.value) !== undefined; }]],
  );
  if (!table) return;
  draftKey(d, spec, 'outbox', table);
  draftTenantColumn(d, spec, 'outbox', table, tenantOf);
  draftRunColumn(d, spec, 'outbox', table, runs, turns, true);
  const dedup = dedupColumns(table);
  if (dedup.length === 1) d.set(spec, 'outbox.dedup_key', dedup[0], `column ${table.name}.${dedup[0]}, unique`);
  else d.todo(spec, 'outbox.dedup_key', `${table.name} has ${list(dedup)}, each unique and named like a dedup key; write the one it is`);
  const text = (c: CatalogColumn) => textType.test(c.type);
  optionalColumn(d, spec, 'outbox.recipient', table, columnSynonyms.recipient, 'the recipient', text);
  optionalColumn(d, spec, 'outbox.subject', table, columnSynonyms.subject, 'the subject', text);
  optionalColumn(d, spec, 'outbox.body', table, columnSynonyms.body, 'the body', text);
  optionalColumn(d, spec, 'outbox.payload', table, columnSynonyms.payload, 'a json payload {to, subject, body}', (c) => jsonType.test(c.type));
  draftStatus(d, spec, 'outbox', table, ['pending', 'dispatched', 'failed']);
  optionalColumn(d, spec, 'outbox.attempts', table, columnSynonyms.attempts, 'the attempts', (c) => integerType.test(c.type));
  optionalColumn(d, spec, 'outbox.last_error', table, columnSynonyms.lastError, 'the last error', text);
  optionalColumn(d, spec, 'outbox.next_attempt_at', table, columnSynonyms.nextAttemptAt, 'when it is tried next', (c) => timeType.test(c.type));
  optionalColumn(d, spec, 'outbox.dispatched_at', table, columnSynonyms.dispatchedAt, 'when it was dispatched', (c) => timeType.test(c.type));
  if (!spec.recipient && !spec.payload) {
    d.todo(spec, 'outbox.payload', `${table.name} has no recipient column (${list(columnSynonyms.recipient)}) and no json payload; write the column that says where a message goes`);
  }
}
