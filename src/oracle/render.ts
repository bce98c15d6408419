// Rendering a snapshot as JSON text: the raw snapshot (before.json, after.json:
// every column, in table order) and the normalised one (*.normalised.json: volatile
// fields removed, columns sorted by name, json values compacted with their volatile
// keys removed at any depth). One row per line, so a unified diff shows a changed
// row as one `-` and one `+` line, and identical states render byte-identical.
import { compactJson, prettyLines } from './json-text.js';
import { AtomicTextWriter } from './atomic-text-writer.js';
import { splitCopyLine } from './copy-text.js';
import { storeLines } from './rows.js';
import type { ColumnInfo, NormalisedSnapshot, NormalisedTable, RowStore, Snapshot, TableSnapshot, VolatileSpec } from './types.js';
import { isVolatileNestedKey } from './volatiles.js';

const jsonNumber = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** One value as JSON text, from the text Postgres gave for it. */
export function renderValue(column: ColumnInfo, text: string | null, drop?: (key: string) => boolean): string {
  if (text === null) return 'null';
  switch (column.render) {
    case 'number':
      return jsonNumber.test(text) ? text : JSON.stringify(text);
    case 'bool':
      return text === 'true' || text === 't' ? 'true' : text === 'false' || text === 'f' ? 'false' : JSON.stringify(text);
    case 'json':
      try {
        return compactJson(text, drop);
      } catch {
        return JSON.stringify(text);
      }
    default:
      return JSON.stringify(text);
  }
}

/** Turns a row's COPY fields into a JSON object line. */
export type RowRenderer = (fields: Array<string | null>) => string;

function rowRenderer(columns: ColumnInfo[], positions: number[], drop?: (key: string) => boolean): RowRenderer {
  const prefixes = positions.map((position, index) => `${index === 0 ? '' : ','}${JSON.stringify(columns[position]!.name)}:`);
  return (fields) => {
    let out = '{';
    for (let index = 0; index < positions.length; index += 1) {
      const position = positions[index]!;
      out += prefixes[index]! + renderValue(columns[position]!, fields[position] ?? null, drop);
    }
    return `${out}}`;
  };
}

/** Every column, in the table's order, values as read. */
export function rawRenderer(table: TableSnapshot): RowRenderer {
  return rowRenderer(
    table.columns,
    table.columns.map((_, index) => index),
  );
}

/** Non-volatile columns sorted by name; volatile keys removed inside json values too. */
export function normalisedRenderer(table: NormalisedTable, volatiles: VolatileSpec): RowRenderer {
  const source = table.source.columns;
  const positions = table.columns.map((column) => source.findIndex((candidate) => candidate.name === column.name));
  return rowRenderer(source, positions, (key) => isVolatileNestedKey(volatiles, key));
}

/** A document is fixed lines and, per table, a run of row lines (which the diff merges by key). */
export type DocumentPart =
  | { kind: 'lines'; lines: string[] }
  | { kind: 'rows'; index: number; store: RowStore | null; indent: string; render: RowRenderer };

const marker = (index: number) => `\u0001rows#${index}`;
const markerLine = /^(\s*)"rows": "\\u0001rows#(\d+)"(,?)$/;

function splitDocument(
  skeleton: unknown,
  rowsOf: (index: number) => { store: RowStore | null; render: RowRenderer },
): DocumentPart[] {
  const parts: DocumentPart[] = [];
  let lines: string[] = [];
  for (const line of prettyLines(skeleton, '')) {
    const match = markerLine.exec(line);
    if (!match) {
      lines.push(line);
      continue;
    }
    const indent = match[1]!;
    const index = Number(match[2]);
    lines.push(`${indent}"rows": [`);
    parts.push({ kind: 'lines', lines });
    parts.push({ kind: 'rows', index, indent: `${indent}  `, ...rowsOf(index) });
    lines = [`${indent}]${match[3]}`];
  }
  parts.push({ kind: 'lines', lines });
  return parts;
}

function tableHead(table: TableSnapshot, index: number): Record<string, unknown> {
  return {
    count: table.count,
    exists: table.exists,
    filter: table.filter,
    key: table.key.wholeRow ? null : table.key.columns,
    key_source: table.key.source,
    rows: table.rows ? marker(index) : null,
    ...(table.schemaRequested ? { schema: table.catalog } : {}),
  };
}

export function rawDocument(snapshot: Snapshot): DocumentPart[] {
  const skeleton = {
    engine: snapshot.engine,
    oracle: 'sor-drills db-state oracle',
    taken_at: snapshot.takenAt,
    target: snapshot.target,
    tables: Object.fromEntries(
      snapshot.tables.map((table, index) => [
        table.table,
        {
          ...tableHead(table, index),
          ...(table.rlsFiltered ? { rls_filtered: true } : {}),
          streamed: table.streamed,
          volatile: table.volatileColumns,
        },
      ]),
    ),
  };
  return splitDocument(skeleton, (index) => {
    const table = snapshot.tables[index]!;
    return { store: table.rows, render: rawRenderer(table) };
  });
}

export function normalisedDocument(normalised: NormalisedSnapshot): DocumentPart[] {
  const skeleton = {
    tables: Object.fromEntries(
      normalised.tables.map((table, index) => [
        table.source.table,
        { ...tableHead(table.source, index), volatile: table.volatileColumns },
      ]),
    ),
  };
  return splitDocument(skeleton, (index) => {
    const table = normalised.tables[index]!;
    return { store: table.source.rows, render: normalisedRenderer(table, normalised.volatiles) };
  });
}

/** Renders a row both ways in one go: raw (every column) and normalised, each value rendered once. */
function pairRenderer(table: NormalisedTable, volatiles: VolatileSpec): (fields: Array<string | null>) => [string, string] {
  const columns = table.source.columns;
  const drop = (key: string) => isVolatileNestedKey(volatiles, key);
  const rawPrefixes = columns.map((column, index) => `${index === 0 ? '' : ','}${JSON.stringify(column.name)}:`);
  const normPositions = table.columns.map((column) => columns.findIndex((candidate) => candidate.name === column.name));
  const normPrefixes = normPositions.map((position, index) => `${index === 0 ? '' : ','}${JSON.stringify(columns[position]!.name)}:`);
  const values: string[] = new Array(columns.length);
  return (fields) => {
    let raw = '{';
    for (let index = 0; index < columns.length; index += 1) {
      values[index] = renderValue(columns[index]!, fields[index] ?? null);
      raw += rawPrefixes[index]! + values[index]!;
    }
    let norm = '{';
    for (let index = 0; index < normPositions.length; index += 1) {
      const position = normPositions[index]!;
      const column = columns[position]!;
      norm += normPrefixes[index]! + (column.render === 'json' ? renderValue(column, fields[position] ?? null, drop) : values[position]!);
    }
    return [`${raw}}`, `${norm}}`];
  };
}

/**
 * Writes the raw and the normalised snapshot (before.json and before.normalised.json) in one pass
 * over the rows, each atomically: both documents list the same tables in the same order.
 */
export async function writeSnapshotFiles(normalised: NormalisedSnapshot, rawFile: string, normalisedFile: string): Promise<void> {
  const rawParts = rawDocument(normalised.source);
  const normParts = normalisedDocument(normalised);
  const rawWriter = new AtomicTextWriter(rawFile);
  const normWriter = new AtomicTextWriter(normalisedFile);
  try {
    for (let index = 0; index < rawParts.length; index += 1) {
      const raw = rawParts[index]!;
      const norm = normParts[index]!;
      if (raw.kind === 'lines' && norm.kind === 'lines') {
        await rawWriter.write(`${raw.lines.join('\n')}\n`);
        await normWriter.write(`${norm.lines.join('\n')}\n`);
        continue;
      }
      if (raw.kind !== 'rows' || norm.kind !== 'rows') throw new Error('the raw and normalised documents do not line up');
      const render = pairRenderer(normalised.tables[norm.index]!, normalised.volatiles);
      const total = raw.store?.count ?? 0;
      let written = 0;
      for await (const batch of storeLines(raw.store)) {
        let rawChunk = '';
        let normChunk = '';
        for (const line of batch) {
          written += 1;
          const comma = written < total ? ',\n' : '\n';
          const [rawLine, normLine] = render(splitCopyLine(line));
          rawChunk += raw.indent + rawLine + comma;
          normChunk += norm.indent + normLine + comma;
          if (rawChunk.length > 1 << 16) {
            await rawWriter.write(rawChunk);
            await normWriter.write(normChunk);
            rawChunk = '';
            normChunk = '';
          }
        }
        await rawWriter.write(rawChunk);
        await normWriter.write(normChunk);
      }
    }
    await rawWriter.commit();
    await normWriter.commit();
  } catch (error) {
    await rawWriter.abort();
    await normWriter.abort();
    throw error;
  }
}

async function writeDocument(parts: DocumentPart[], file: string): Promise<void> {
  const writer = new AtomicTextWriter(file);
  try {
    for (const part of parts) {
      if (part.kind === 'lines') {
        await writer.write(`${part.lines.join('\n')}\n`);
        continue;
      }
      const total = part.store?.count ?? 0;
      let written = 0;
      for await (const batch of storeLines(part.store)) {
        let chunk = '';
        for (const line of batch) {
          written += 1;
          chunk += `${part.indent}${part.render(splitCopyLine(line))}${written < total ? ',' : ''}\n`;
          if (chunk.length > 1 << 16) {
            await writer.write(chunk);
            chunk = '';
          }
        }
        await writer.write(chunk);
      }
    }
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** Writes before.json / after.json alone (atomically, streaming the rows). */
export function writeSnapshotJson(snapshot: Snapshot, file: string): Promise<void> {
  return writeDocument(rawDocument(snapshot), file);
}

/** Writes before.normalised.json / after.normalised.json alone (atomically, streaming the rows). */
export function writeNormalisedJson(normalised: NormalisedSnapshot, file: string): Promise<void> {
  return writeDocument(normalisedDocument(normalised), file);
}

/** The whole document as a string (for tests and small snapshots; large ones belong in a file). */
export async function renderDocument(parts: DocumentPart[]): Promise<string> {
  let out = '';
  for (const part of parts) {
    if (part.kind === 'lines') {
      out += `${part.lines.join('\n')}\n`;
      continue;
    }
    const total = part.store?.count ?? 0;
    let written = 0;
    for await (const batch of storeLines(part.store)) {
      for (const line of batch) {
        written += 1;
        out += `${part.indent}${part.render(splitCopyLine(line))}${written < total ? ',' : ''}\n`;
      }
    }
  }
  return out;
}
