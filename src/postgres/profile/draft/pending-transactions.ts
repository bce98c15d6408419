// The pending_transactions part: the table with a status CHECK holding a word for
// pending, and a claim column.
import { draftAmount, draftKey, draftStatus, optionalColumn, statusColumn } from './columns.js';
import { type Drafter, list } from './drafter.js';
import { allowedOf, type CatalogTable, columnsNamed } from './pg-catalog.js';
import { draftTenantColumn, type TenantOf } from './tenants.js';
import { columnSynonyms, statusSynonyms, statusValueFor, textType, timeType } from './vocabulary.js';

const claimColumns = [...columnSynonyms.claimedBy, ...columnSynonyms.leaseUntil, 'claimed_at', 'locked_at'];

export function draftPending(d: Drafter, tenantOf: TenantOf): CatalogTable | undefined {
  const spec = d.spec('pending_transactions');
  const pendingValue = (table: CatalogTable) => {
    const status = statusColumn(table);
    if (status.kind !== 'one') return undefined;
    const allowed = allowedOf(table, status.value);
    if (!allowed) return undefined;
    const match = statusValueFor('pending', allowed.values);
    return match.kind === 'one' ? { value: match.value, evidence: allowed.evidence } : undefined;
  };
  const claim = (table: CatalogTable) => columnsNamed(table, claimColumns);
  const candidates = d.free().filter((table) => pendingValue(table) && claim(table).length > 0);
  const table = d.chooseTable(
    'pending_transactions',
    candidates,
    (candidate) => `${pendingValue(candidate)!.evidence} allows '${pendingValue(candidate)!.value}', and it has a claim column (${list(claim(candidate).map((c) => c.name))})`,
    `no table has a status CHECK with a word for pending (${list(statusSynonyms.pending)}) and a claim column (${list(claimColumns)}); write the table of bank transactions waiting to be reconciled`,
    [
      ['it has an amount', (candidate) => columnsNamed(candidate, columnSynonyms.amount).length > 0],
      ['row-level security on', (candidate) => candidate.rls],
    ],
  );
  if (!table) return undefined;
  draftKey(d, spec, 'pending_transactions', table);
  draftTenantColumn(d, spec, 'pending_transactions', table, tenantOf);
  draftAmount(d, spec, 'pending_transactions', table);
  optionalColumn(d, spec, 'pending_transactions.description', table, columnSynonyms.description, 'a description', (candidate) => textType.test(candidate.type));
  draftStatus(d, spec, 'pending_transactions', table, ['pending', 'claimed', 'processed']);
  optionalColumn(d, spec, 'pending_transactions.claimed_by', table, columnSynonyms.claimedBy, 'who claimed it');
  optionalColumn(d, spec, 'pending_transactions.lease_until', table, columnSynonyms.leaseUntil, 'when a claim expires', (candidate) => timeType.test(candidate.type));
  optionalColumn(d, spec, 'pending_transactions.processed_by', table, columnSynonyms.processedBy, 'who processed it');
  optionalColumn(d, spec, 'pending_transactions.processed_at', table, columnSynonyms.processedAt, 'when it was processed', (candidate) => timeType.test(candidate.type));
  return table;
}
