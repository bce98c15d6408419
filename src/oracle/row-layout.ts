// What the encoder (copy-encoder.ts) knows of a table's rows before it reads one: how each
// column is written, the `,"name":` in front of each value in both rows, and how the normalised
// row is put together from the raw row it has just written. The normalised row's columns are a
// subset of the raw row's, sorted by name: most of it is runs of raw columns that stand in the
// same order in both rows, copied as bytes.
import type { ColumnInfo } from './types.js';

// How a column's COPY text is written (RowLayout.kinds).
export const kindString = 0;
export const kindNumber = 1;
export const kindBool = 2;
export const kindJson = 3;

/** A plan step: copy a normalised prefix, prefixes[a, b). */
export const planPrefix = 0;
/** A plan step: copy raw columns a..b, from column a's value to column b's end. */
export const planRun = 1;
/** A plan step: copy raw columns a..b from column a's prefix (the two rows' prefixes agree there). */
export const planRunWithPrefix = 2;
/** A plan step: write column a's normalised json value (the volatile keys dropped). */
export const planJson = 3;

export interface RowLayout {
  /** Each column's kind. */
  kinds: Uint8Array;
  /** Every raw prefix in one array (column c's at rawPrefixAt[c] .. rawPrefixAt[c + 1]), then the normalised ones. */
  prefixes: Buffer;
  rawPrefixAt: Int32Array;
  /** How the normalised row is put together from the raw one, as triples (what, a, b): see the plan steps. */
  plan: Int32Array;
}

function kindOf(column: ColumnInfo): number {
  switch (column.render) {
    case 'number':
      return kindNumber;
    case 'bool':
      return kindBool;
    case 'json':
      return kindJson;
    default:
      return kindString;
  }
}

/** The layout of a table's rows: `columns` in the table's order, `order` the normalised row's (indexes into `columns`). */
export function rowLayout(columns: ColumnInfo[], order: number[]): RowLayout {
  const kinds = Uint8Array.from(columns.map(kindOf));
  const prefix = (name: string, first: boolean) => Buffer.from(`${first ? '' : ','}${JSON.stringify(name)}:`, 'utf8');
  const rawPrefix = columns.map((column, index) => prefix(column.name, index === 0));
  const normPrefix = order.map((position, index) => prefix(columns[position]!.name, index === 0));
  // A Buffer like the others, so the copies see one kind of array.
  const prefixes = Buffer.concat([...rawPrefix, ...normPrefix]);
  const rawPrefixAt = new Int32Array(columns.length + 1);
  for (let column = 0; column < columns.length; column += 1) rawPrefixAt[column + 1] = rawPrefixAt[column]! + rawPrefix[column]!.length;
  const normPrefixAt = new Int32Array(order.length + 1);
  normPrefixAt[0] = rawPrefixAt[columns.length]!;
  for (let index = 0; index < order.length; index += 1) normPrefixAt[index + 1] = normPrefixAt[index]! + normPrefix[index]!.length;

  const plan: number[] = [];
  for (let index = 0; index < order.length; ) {
    const column = order[index]!;
    if (kinds[column] === kindJson) {
      plan.push(planPrefix, normPrefixAt[index]!, normPrefixAt[index + 1]!, planJson, column, column);
      index += 1;
      continue;
    }
    // The run: the raw columns after this one that follow it in the normalised row too (their
    // prefixes, `,"name":`, are the same bytes in both rows).
    let last = column;
    let next = index + 1;
    while (next < order.length && order[next] === last + 1 && kinds[last + 1] !== kindJson) {
      last += 1;
      next += 1;
    }
    if (index > 0 && column > 0) plan.push(planRunWithPrefix, column, last);
    else plan.push(planPrefix, normPrefixAt[index]!, normPrefixAt[index + 1]!, planRun, column, last);
    index = next;
  }
  return { kinds, prefixes, rawPrefixAt, plan: Int32Array.from(plan) };
}
