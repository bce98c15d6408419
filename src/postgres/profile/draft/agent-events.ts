// The events part: the table with a run column and append-only triggers (or named
// like agent_events), and the increasing column its events are read in order of.
import { draftRunColumn } from './agent-runs.js';
import { optionalColumn, requiredColumn } from './columns.js';
import { type Drafter, list } from './drafter.js';
import { type CatalogTable, foreignKeysTo, primaryKey } from './pg-catalog.js';
import { draftTenantColumn, type TenantOf } from './tenants.js';
import { columnSynonyms, integerType, tableSynonyms, textType, timeType } from './vocabulary.js';

/** BEFORE DELETE or BEFORE TRUNCATE triggers: the append-only guard (an updated_at trigger fires on UPDATE only). */
function guardTriggers(table: CatalogTable): string[] {
  return table.triggers.filter((trigger) => (trigger.type & 2) !== 0 && (trigger.type & (8 | 32)) !== 0).map((trigger) => trigger.name);
}

export function draftEvents(d: Drafter, tenantOf: TenantOf, runs: CatalogTable | undefined, turns: CatalogTable | undefined): void {
  const spec = d.spec('events');
  const runColumn = turns && runs ? foreignKeysTo(turns, runs)[0]?.columns[0] : undefined;
  const hasRun = (table: CatalogTable) => foreignKeysTo(table, runs).length > 0 || table.columns.some((candidate) => candidate.name === runColumn);
  const named = (table: CatalogTable) => (tableSynonyms.events as readonly string[]).includes(table.name);
  const candidates = d.free().filter((table) => hasRun(table) && (guardTriggers(table).length > 0 || named(table)));
  const table = d.chooseTable(
    'events',
    candidates,
    (candidate) => (guardTriggers(candidate).length > 0 ? `append-only triggers ${list(guardTriggers(candidate))}` : `named ${candidate.name}`),
    'no table with a run column has append-only triggers (BEFORE DELETE or TRUNCATE) or is named agent_events; write the table of agent events',
    [['append-only triggers', (candidate) => guardTriggers(candidate).length > 0]],
  );
  if (!table) return;
  // The ordering column: an increasing key (identity or serial), the primary key when it is one.
  const key = primaryKey(table);
  const keyColumn = key?.columns.length === 1 ? table.columns.find((candidate) => candidate.name === key.columns[0]) : undefined;
  const increasing = table.columns.filter((candidate) => candidate.increasing && integerType.test(candidate.type));
  if (keyColumn && (keyColumn.increasing || integerType.test(keyColumn.type))) {
    d.set(spec, 'events.key', keyColumn.name, `the primary key ${key!.name} of ${table.name} (${keyColumn.type}${keyColumn.increasing ? ', increasing' : ''}): events are read in its order`);
  } else if (increasing.length === 1) {
    d.set(spec, 'events.key', increasing[0]!.name, `column ${table.name}.${increasing[0]!.name}, an identity or serial ${increasing[0]!.type}: events are read in its order`);
  } else {
    d.todo(spec, 'events.key', `${table.name} has no single increasing key (an identity or serial column, or an integer primary key); write the column events are read in order of`);
  }
  draftRunColumn(d, spec, 'events', table, runs, turns, false);
  draftTenantColumn(d, spec, 'events', table, tenantOf, true);
  optionalColumn(d, spec, 'events.turn_number', table, columnSynonyms.callTurnNumber, 'the turn number', (c) => integerType.test(c.type));
  requiredColumn(d, spec, 'events.type', table, columnSynonyms.eventType, 'the event type', (c) => textType.test(c.type) || c.enumValues !== null);
  requiredColumn(d, spec, 'events.payload', table, columnSynonyms.eventPayload, 'the payload');
  optionalColumn(d, spec, 'events.created_at', table, columnSynonyms.createdAt, 'when it happened', (c) => timeType.test(c.type));
}
