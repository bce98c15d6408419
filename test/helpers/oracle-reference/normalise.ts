// FROZEN: src/oracle/normalise.ts as of commit e8de64c, before the oracle's one-pass writer (issue 15).
// The byte-identity test compares the new writer's evidence files with this one's; do not edit.
// normalise(snapshot, volatiles): the snapshot seen without its volatile fields.
// It is a view, not a copy: rows are rendered without the volatile columns (and
// without volatile keys inside json values) when they are written or diffed, so a
// million-row table is never held twice.
import { compareText } from './json-text.js';
import type { NormalisedSnapshot, NormalisedTable, Snapshot, VolatileSpec } from '../../../src/oracle/types.js';
import { extendVolatiles, isVolatileColumn } from './volatiles.js';

/**
 * `volatiles`: a whole VolatileSpec, or extra entries (`col`, `table.col`, `!col`) added to the
 * set the snapshot was taken with. The natural key stays the one the snapshot ordered by.
 */
export function normalise(snapshot: Snapshot, volatiles?: VolatileSpec | readonly string[]): NormalisedSnapshot {
  const spec = !volatiles
    ? snapshot.volatiles
    : Array.isArray(volatiles)
      ? extendVolatiles(snapshot.volatiles, volatiles as readonly string[])
      : (volatiles as VolatileSpec);
  const tables: NormalisedTable[] = snapshot.tables.map((table) => {
    const volatileColumns = table.columns
      .filter((column) => isVolatileColumn(spec, table.table, column.name))
      .map((column) => column.name);
    const removed = new Set(volatileColumns);
    return {
      source: table,
      volatileColumns,
      columns: table.columns.filter((column) => !removed.has(column.name)).sort((a, b) => compareText(a.name, b.name)),
    };
  });
  return { source: snapshot, volatiles: spec, tables };
}
