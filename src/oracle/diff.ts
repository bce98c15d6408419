// diff(before, after): per table the count delta and the rows added, removed and
// changed, keyed by the natural key; and diff.txt, the unified diff of the two
// normalised snapshots, in which the asserted change shows as `+` / `-` lines.
//
// Both sides' rows arrive sorted by the same key in the same order (the snapshot's
// COPY ordered them; compareKeys() compares the way Postgres ordered), so the rows
// are diffed by a sorted merge that reads each side once, a batch at a time: a
// million-row table is never held in memory, on either side. A snapshot that wrote
// its files as it read is merged from its normalised file's own lines, compared as
// bytes, with its keys read beside them (diff-sides.ts): no row is rendered again.
import { canonicalJson, compareIntText, compareText } from './json-text.js';
import { CopyLineSide, mergeSide, NormalisedFileSide, type MergeSide } from './diff-sides.js';
import { normalisedDocument, type DocumentPart } from './render.js';
import { AtomicTextWriter } from './atomic-text-writer.js';
import type {
  KeyKind,
  NormalisedSnapshot,
  NormalisedTable,
  Row,
  RowChange,
  SchemaObjectChange,
  SnapshotDiff,
  TableDiff,
} from './types.js';
import type { TableCatalog } from './catalog.js';
import { UnifiedDiffWriter } from './unified.js';
import { lineOps } from './unified.js';

export interface DiffOptions {
  /** Write the unified diff here (atomically), e.g. `<folder>/diff.txt`. */
  file?: string;
  /** Rows of each kind (added, removed, changed) kept per table for predicates and screens. Default 1,000. */
  sampleLimit?: number;
  /** Characters of the unified diff kept in the result's `text`. Default 256 KiB. */
  textLimit?: number;
  labels?: [string, string];
}

export async function diff(before: NormalisedSnapshot, after: NormalisedSnapshot, options: DiffOptions = {}): Promise<SnapshotDiff> {
  const names = (snapshot: NormalisedSnapshot) => snapshot.tables.map((table) => table.source.table).join(',');
  if (names(before) !== names(after)) {
    throw new Error(`the two snapshots name different tables (${names(before)} / ${names(after)}): take both with one scope`);
  }
  const textLimit = options.textLimit ?? 256 * 1024;
  const sampleLimit = options.sampleLimit ?? 1_000;
  const file = options.file ? new AtomicTextWriter(options.file) : undefined;
  let captured = '';
  let truncated = false;
  const sink = {
    write(chunk: string) {
      if (captured.length < textLimit) {
        captured += chunk.slice(0, textLimit - captured.length);
        if (chunk.length > 0 && captured.length >= textLimit) truncated = true;
      } else if (chunk.length > 0) truncated = true;
      return file?.write(chunk);
    },
  };
  const writer = new UnifiedDiffWriter(sink, options.labels ?? ['before.normalised.json', 'after.normalised.json']);
  const partsBefore = normalisedDocument(before);
  const partsAfter = normalisedDocument(after);
  const tables: TableDiff[] = [];
  try {
    for (let index = 0; index < partsBefore.length; index += 1) {
      const a = partsBefore[index]!;
      const b = partsAfter[index];
      if (a.kind === 'lines' && b?.kind === 'lines') {
        lineOps(a.lines, b.lines, writer);
        continue;
      }
      if (a.kind === 'rows' && b?.kind === 'rows') {
        tables.push(
          await mergeTable(before.tables[a.index]!, after.tables[b.index]!, a, b, writer, sampleLimit, before, after),
        );
        continue;
      }
      throw new Error('the two normalised documents do not line up (a table read rows on one side only)');
    }
    // Tables whose rows were not read (counts only) still get their entry.
    for (const [index, table] of before.tables.entries()) {
      if (!tables.some((entry) => entry.table === table.source.table)) {
        tables.push(countOnly(table, after.tables[index]!));
      }
    }
    tables.sort((x, y) => compareText(x.table, y.table));
    await writer.end();
    await file?.commit();
  } catch (error) {
    await file?.abort();
    throw error;
  }
  return { tables, text: captured, textTruncated: truncated, linesAdded: writer.linesAdded, linesRemoved: writer.linesRemoved };
}

function tableShell(before: NormalisedTable, after: NormalisedTable): TableDiff {
  const countBefore = before.source.count;
  const countAfter = after.source.count;
  return {
    table: before.source.table,
    existsBefore: before.source.exists,
    existsAfter: after.source.exists,
    countBefore,
    countAfter,
    delta: countBefore !== null && countAfter !== null ? countAfter - countBefore : null,
    rowsCompared: false,
    addedCount: 0,
    removedCount: 0,
    changedCount: 0,
    added: [],
    removed: [],
    changed: [],
    truncated: false,
    keyMismatch: false,
    schema: schemaChanges(before, after),
  };
}

function countOnly(before: NormalisedTable, after: NormalisedTable): TableDiff {
  return tableShell(before, after);
}

function sameLayout(before: NormalisedTable, after: NormalisedTable): boolean {
  const a = before.source.columns;
  const b = after.source.columns;
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index += 1) {
    if (a[index]!.name !== b[index]!.name || a[index]!.type !== b[index]!.type) return false;
  }
  return before.columns.map((column) => column.name).join(',') === after.columns.map((column) => column.name).join(',');
}

function keysCompatible(before: NormalisedTable, after: NormalisedTable): boolean {
  if (!before.source.exists || !after.source.exists) return true;
  const a = before.source.key;
  const b = after.source.key;
  return a.wholeRow === b.wholeRow && a.columns.join('\u0000') === b.columns.join('\u0000') && a.kinds.join() === b.kinds.join();
}

function compareKeys(a: Array<string | null>, b: Array<string | null>, kinds: KeyKind[]): number {
  for (let index = 0; index < kinds.length; index += 1) {
    const x = a[index] ?? null;
    const y = b[index] ?? null;
    if (x === y) continue;
    // Postgres orders nulls last in ascending order.
    if (x === null) return 1;
    if (y === null) return -1;
    const order = kinds[index] === 'int' ? compareIntText(x, y) : compareText(x, y);
    if (order !== 0) return order;
  }
  return 0;
}

function sameKey(a: Array<string | null>, b: Array<string | null>): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}

/**
 * Does the normalised text hold the key, so that two equal texts have equal keys? Only when every
 * key column is in it and none is a json value (whose volatile keys the text leaves out).
 */
function keyInText(table: NormalisedTable): boolean {
  const normalised = new Set(table.columns.map((column) => column.name));
  return table.source.key.columns.every((name) => {
    const column = table.source.columns.find((entry) => entry.name === name);
    return normalised.has(name) && column?.render !== 'json';
  });
}

/** The bytes of the last `lines` lines of the `bytes` from a side's current line on. */
function tailBytes(side: NormalisedFileSide, bytes: number, lines: number): number {
  let at = side.lineStart + bytes - 1;
  for (let index = 0; index < lines; index += 1) at = side.buffer.lastIndexOf(10, at - 1);
  return side.lineStart + bytes - 1 - at;
}

function parseRow(text: string): Row {
  return JSON.parse(text) as Row;
}

function keyObject(table: NormalisedTable, row: Row): Record<string, unknown> | null {
  if (table.source.key.wholeRow) return null;
  return Object.fromEntries(table.source.key.columns.map((name) => [name, row[name]]));
}

function changedColumns(before: Row, after: Row): string[] {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort(compareText);
  return names.filter(
    (name) => !(name in before) || !(name in after) || canonicalJson(before[name]) !== canonicalJson(after[name]),
  );
}

async function mergeTable(
  before: NormalisedTable,
  after: NormalisedTable,
  partBefore: Extract<DocumentPart, { kind: 'rows' }>,
  partAfter: Extract<DocumentPart, { kind: 'rows' }>,
  writer: UnifiedDiffWriter,
  sampleLimit: number,
  snapshotBefore: NormalisedSnapshot,
  snapshotAfter: NormalisedSnapshot,
): Promise<TableDiff> {
  const result = tableShell(before, after);
  result.rowsCompared = true;
  const positions = (table: NormalisedTable) =>
    table.source.key.columns.map((name) => table.source.columns.findIndex((column) => column.name === name));
  const a = mergeSide(before, partBefore.store, snapshotBefore.volatiles, positions(before));
  const b = mergeSide(after, partAfter.store, snapshotAfter.volatiles, positions(after));
  const indentA = partBefore.indent;
  const indentB = partAfter.indent;
  const compatible = keysCompatible(before, after);
  result.keyMismatch = !compatible;
  const layout = compatible && sameLayout(before, after);
  const kinds = before.source.exists ? before.source.key.kinds : after.source.key.kinds;
  const normPositions = before.columns.map((column) => before.source.columns.findIndex((c) => c.name === column.name));
  const jsonAt = new Set(normPositions.filter((position) => before.source.columns[position]!.render === 'json'));
  // Two COPY sides with the same columns: equal lines are equal rows, and equal normalised fields equal texts.
  const copyPair = layout && a instanceof CopyLineSide && b instanceof CopyLineSide ? { a, b } : null;
  // Two normalised files: equal texts (as bytes) are equal rows when the texts hold the keys, else the keys say.
  const filePair = a instanceof NormalisedFileSide && b instanceof NormalisedFileSide ? { a, b, keyInText: keyInText(before) && keyInText(after) } : null;
  // A normalised file's buffers are reused: the context lines captured from them are read first.
  for (const side of [a, b]) if (side instanceof NormalisedFileSide) side.beforeReuse = () => writer.settle();

  /** The very same row on both sides (equal keys and equal normalised texts)? */
  const sameRow = (): boolean => {
    if (copyPair) return copyPair.a.cursor.sameAs(copyPair.b.cursor);
    if (filePair) return filePair.a.sameBodyAs(filePair.b) && (filePair.keyInText || filePair.a.sameKeyAs(filePair.b));
    return a.body() === b.body() && sameKey(a.key(), b.key());
  };
  /** Rows of equal keys: are their normalised texts equal? */
  const sameText = (): boolean => {
    if (copyPair) {
      const fieldsA = copyPair.a.copyFields();
      const fieldsB = copyPair.b.copyFields();
      for (const position of normPositions) {
        const x = fieldsA[position] ?? null;
        const y = fieldsB[position] ?? null;
        if (x === y) continue;
        return jsonAt.has(position) ? a.body() === b.body() : false;
      }
      return true;
    }
    if (filePair) return filePair.a.sameBodyAs(filePair.b);
    return a.body() === b.body();
  };

  const line = (side: MergeSide, indent: string, text: string) => `${indent}${text}${side.read < side.total ? ',' : ''}`;
  const removed = () => {
    const text = a.body();
    a.advance();
    a.read += 1;
    writer.removed(line(a, indentA, text));
    result.removedCount += 1;
    if (result.removed.length < sampleLimit) result.removed.push(parseRow(text));
    else result.truncated = true;
  };
  const added = () => {
    const text = b.body();
    b.advance();
    b.read += 1;
    writer.added(line(b, indentB, text));
    result.addedCount += 1;
    if (result.added.length < sampleLimit) result.added.push(parseRow(text));
    else result.truncated = true;
  };

  try {
    const load = async (side: MergeSide): Promise<boolean> => {
      const ready = side.load();
      return ready === true || ready === false ? ready : await ready;
    };
    if (!compatible) {
      // The key changed between the snapshots (a migration dropped or changed it): no row can be matched.
      while (await load(a)) {
        removed();
        if (writer.shouldFlush) await writer.flush();
      }
      while (await load(b)) {
        added();
        if (writer.shouldFlush) await writer.flush();
      }
      return result;
    }
    for (;;) {
      let hasA = a.load();
      if (hasA !== true && hasA !== false) hasA = await hasA;
      let hasB = b.load();
      if (hasB !== true && hasB !== false) hasB = await hasB;
      if (!hasA && !hasB) break;
      if (writer.shouldFlush) await writer.flush();
      if (!hasA) {
        added();
        continue;
      }
      if (!hasB) {
        removed();
        continue;
      }
      const lastA = a.read + 1 === a.total;
      const lastB = b.read + 1 === b.total;
      if (lastA === lastB && sameRow()) {
        // The common case: the very same row. It is only decoded if it lands in a hunk's context.
        const comma = lastA ? '' : ',';
        const captured = a.capture();
        a.advance();
        b.advance();
        a.read += 1;
        b.read += 1;
        writer.same(() => `${indentA}${captured()}${comma}`);
        if (filePair?.keyInText && !writer.inHunk && (await load(a)) && (await load(b))) {
          // Long runs of the same lines (most of a table): compared as blocks, counted, skipped;
          // the last few go through same() above, as the context of whatever change comes next.
          const run = filePair.a.sameLinesAs(filePair.b, Math.min(a.total - a.read, b.total - b.read));
          const skip = run.lines - 4;
          if (skip > 0) {
            const bytes = run.bytes - (run.lines - skip === 0 ? 0 : tailBytes(filePair.a, run.bytes, run.lines - skip));
            await filePair.a.skip(skip, bytes);
            await filePair.b.skip(skip, bytes);
            writer.skipSame(skip);
          }
        }
        continue;
      }
      const order = compareKeys(a.key(), b.key(), kinds);
      if (order < 0) {
        removed();
        continue;
      }
      if (order > 0) {
        added();
        continue;
      }
      const equal = sameText();
      const textA = a.body();
      const textB = b.body();
      a.advance();
      b.advance();
      a.read += 1;
      b.read += 1;
      if (equal && lastA === lastB) {
        const comma = lastA ? '' : ',';
        writer.same(`${indentA}${textA}${comma}`);
        continue;
      }
      writer.removed(`${indentA}${textA}${lastA ? '' : ','}`);
      writer.added(`${indentB}${textB}${lastB ? '' : ','}`);
      if (equal) continue; // only the trailing comma moved: the row itself is unchanged
      result.changedCount += 1;
      if (result.changed.length < sampleLimit) {
        const rowA = parseRow(textA);
        const rowB = parseRow(textB);
        const change: RowChange = { key: keyObject(after, rowB), before: rowA, after: rowB, columns: changedColumns(rowA, rowB) };
        result.changed.push(change);
      } else result.truncated = true;
    }
    return result;
  } finally {
    await a.close();
    await b.close();
  }
}

type Named = { name: string };

function listChanges<T extends Named>(
  kind: SchemaObjectChange['kind'],
  before: readonly T[],
  after: readonly T[],
): SchemaObjectChange[] {
  const changes: SchemaObjectChange[] = [];
  const old = new Map(before.map((item) => [item.name, canonicalJson(item)]));
  const now = new Map(after.map((item) => [item.name, canonicalJson(item)]));
  for (const [name, text] of now) {
    const previous = old.get(name);
    if (previous === undefined) changes.push({ kind, name, change: 'added' });
    else if (previous !== text) changes.push({ kind, name, change: 'changed' });
  }
  for (const name of old.keys()) if (!now.has(name)) changes.push({ kind, name, change: 'removed' });
  return changes;
}

/** What changed in a table's schema state, object by object (null unless read on both sides). */
export function schemaChanges(before: NormalisedTable, after: NormalisedTable): SchemaObjectChange[] | null {
  if (!before.source.schemaRequested || !after.source.schemaRequested) return null;
  const a: TableCatalog | null = before.source.catalog;
  const b: TableCatalog | null = after.source.catalog;
  const name = before.source.table;
  if (!a && !b) return [];
  if (!a) return [{ kind: 'table', name, change: 'added' }];
  if (!b) return [{ kind: 'table', name, change: 'removed' }];
  const changes: SchemaObjectChange[] = [];
  if (a.owner !== b.owner) changes.push({ kind: 'owner', name: b.owner, change: 'changed' });
  if (canonicalJson(a.rls) !== canonicalJson(b.rls)) changes.push({ kind: 'rls', name, change: 'changed' });
  changes.push(...listChanges('column', a.columns, b.columns));
  changes.push(...listChanges('constraint', a.constraints, b.constraints));
  changes.push(...listChanges('index', a.indexes, b.indexes));
  changes.push(...listChanges('policy', a.policies, b.policies));
  changes.push(...listChanges('trigger', a.triggers, b.triggers));
  changes.push(...listChanges('rule', a.rules, b.rules));
  const grants = (catalog: TableCatalog) => catalog.grants.map((grant) => ({ name: `${grant.grantee}:${grant.privilege}` }));
  changes.push(...listChanges('grant', grants(a), grants(b)));
  return changes;
}
