// One side of a table in the diff's merge: its rows in key order, each as its
// normalised text and its key. Rows come from either kind of store:
// - COPY lines (a snapshot taken without files): the normalised text is rendered when
//   asked, and two sides with the same columns compare their COPY lines first;
// - the normalised file's own lines (a snapshot that wrote its files as it read): the
//   text is there already, compared as bytes where it lies, with the keys' COPY text
//   read beside it. Nothing is rendered twice and no COPY text is kept.
import { open, type FileHandle } from 'node:fs/promises';
import { canonicalJson } from './json-text.js';
import { normalisedRenderer, type RowRenderer } from './render.js';
import { splitCopyLine } from './copy-text.js';
import { rowCursor, type RowCursor } from './row-cursor.js';
import type { NormalisedTable, RowStore, VolatileSpec } from './types.js';

export interface MergeSide {
  readonly total: number;
  read: number;
  /** Makes the current row available: true, false at the end, or a promise of either. */
  load(): boolean | Promise<boolean>;
  /** The current row's normalised text (the JSON object, without indent or comma). */
  body(): string;
  /** The same text, read later (still valid after advance()). */
  capture(): () => string;
  /** The current row's key values (COPY text, unescaped; null for NULL), in key order. */
  key(): Array<string | null>;
  advance(): void;
  close(): Promise<void>;
}

/** A side whose rows are COPY lines. */
export class CopyLineSide implements MergeSide {
  read = 0;
  private fields: Array<string | null> | undefined;
  private text: string | undefined;
  readonly cursor: RowCursor;
  private readonly render: RowRenderer;

  constructor(
    readonly table: NormalisedTable,
    store: RowStore | null,
    volatiles: VolatileSpec,
    private readonly keyPositions: number[],
  ) {
    this.cursor = rowCursor(store);
    this.render = normalisedRenderer(table, volatiles);
    this.total = store?.count ?? 0;
  }

  readonly total: number;

  load(): boolean | Promise<boolean> {
    return this.cursor.load();
  }

  /** The current row's fields (split once per row). */
  copyFields(): Array<string | null> {
    this.fields ??= splitCopyLine(this.cursor.text());
    return this.fields;
  }

  body(): string {
    this.text ??= this.render(this.copyFields());
    return this.text;
  }

  capture(): () => string {
    if (this.text !== undefined) {
      const text = this.text;
      return () => text;
    }
    const line = this.cursor.capture();
    const render = this.render;
    return () => render(splitCopyLine(line()));
  }

  key(): Array<string | null> {
    const fields = this.copyFields();
    return this.keyPositions.map((position) => fields[position] ?? null);
  }

  advance(): void {
    this.cursor.advance();
    this.fields = undefined;
    this.text = undefined;
  }

  close(): Promise<void> {
    return this.cursor.close();
  }
}

const readSize = 1 << 20;

/** A side whose rows are lines of its normalised file, bytes `start` to `end`, keys beside them. */
export class NormalisedFileSide implements MergeSide {
  read = 0;
  readonly total: number;
  buffer: Buffer = Buffer.alloc(0);
  /** The current line: buffer[lineStart, lineEnd) without its newline; lineEnd -1 until loaded. */
  lineStart = 0;
  lineEnd = -1;
  private handle: FileHandle | undefined;
  private offset: number;
  private readonly end: number;
  private readonly indent: number;
  private readonly keys: RowCursor;

  constructor(store: Extract<RowStore, { kind: 'normalised' }>) {
    this.total = store.count;
    this.offset = store.start;
    this.end = store.end;
    this.indent = Buffer.byteLength(store.indent);
    this.file = store.file;
    this.keys = rowCursor(store.keys);
  }

  private readonly file: string;

  load(): boolean | Promise<boolean> {
    if (this.lineEnd >= 0) return true;
    if (this.read >= this.total) return false;
    const newline = this.buffer.indexOf(10, this.lineStart);
    if (newline >= 0) {
      this.lineEnd = newline;
      return this.loadKey();
    }
    return this.fill();
  }

  private loadKey(): boolean | Promise<boolean> {
    const ready = this.keys.load();
    if (ready === true) return true;
    if (ready === false) throw new Error(`${this.file}: fewer keys than rows`);
    return ready.then((loaded) => {
      if (!loaded) throw new Error(`${this.file}: fewer keys than rows`);
      return true;
    });
  }

  /** Called before a buffer is reused: text captured from it (capture()) must be read by then. */
  beforeReuse: (() => void) | undefined;
  private spare: Buffer | undefined;

  private async fill(): Promise<boolean> {
    for (;;) {
      if (this.offset >= this.end) {
        if (this.lineStart < this.buffer.length) {
          this.lineEnd = this.buffer.length;
          return this.loadKey();
        }
        return false;
      }
      this.handle ??= await open(this.file, 'r');
      // Two buffers in turn: the rest of the current line moves to the front of the other one.
      const rest = this.buffer.length - this.lineStart;
      const size = Math.min(readSize, this.end - this.offset);
      let next = this.spare;
      if (next && next.length >= rest + size) this.beforeReuse?.();
      else next = Buffer.allocUnsafe(Math.max(2 * readSize, rest + size));
      this.buffer.copy(next, 0, this.lineStart);
      const { bytesRead } = await this.handle.read(next, rest, size, this.offset);
      if (bytesRead === 0) throw new Error(`${this.file} ended before its rows did (was it changed?)`);
      this.offset += bytesRead;
      const backing = this.buffer.buffer;
      this.spare = backing.byteLength >= 2 * readSize ? Buffer.from(backing, 0, backing.byteLength) : undefined;
      this.buffer = next.subarray(0, rest + bytesRead);
      this.lineStart = 0;
      const newline = this.buffer.indexOf(10, 0);
      if (newline >= 0) {
        this.lineEnd = newline;
        return this.loadKey();
      }
    }
  }

  /** Where the current row's text is: buffer[bodyStart(), bodyEnd()). */
  bodyStart(): number {
    return this.lineStart + this.indent;
  }

  bodyEnd(): number {
    // Every row line but the last ends with a comma.
    return this.read + 1 < this.total ? this.lineEnd - 1 : this.lineEnd;
  }

  body(): string {
    return this.buffer.toString('utf8', this.bodyStart(), this.bodyEnd());
  }

  capture(): () => string {
    // A later fill() makes a new buffer and never writes into this one.
    const buffer = this.buffer;
    const start = this.bodyStart();
    const end = this.bodyEnd();
    return () => buffer.toString('utf8', start, end);
  }

  /** The current row's keys' COPY text, as one line. */
  keyText(): string {
    return this.keys.text();
  }

  sameKeyAs(other: NormalisedFileSide): boolean {
    return this.keys.sameAs(other.keys);
  }

  key(): Array<string | null> {
    return splitCopyLine(this.keys.text());
  }

  sameBodyAs(other: NormalisedFileSide): boolean {
    const start = this.bodyStart();
    const end = this.bodyEnd();
    const otherStart = other.bodyStart();
    const otherEnd = other.bodyEnd();
    return end - start === otherEnd - otherStart && this.buffer.compare(other.buffer, otherStart, otherEnd, start, end) === 0;
  }

  advance(): void {
    this.lineStart = this.lineEnd + 1;
    this.lineEnd = -1;
    this.keys.advance();
  }

  /**
   * How many whole lines from the current one on are the same bytes on both sides, as far as both
   * buffers reach (compared in blocks where they lie), and where they end on each: the start of the
   * line after them (the same offset from lineStart on both sides).
   */
  sameLinesAs(other: NormalisedFileSide, limit: number): { lines: number; bytes: number } {
    const start = this.lineStart;
    const otherStart = other.lineStart;
    const available = Math.min(this.buffer.length - start, other.buffer.length - otherStart);
    let equal = 0;
    for (let block = 1 << 16; block >= 64 && equal < available; ) {
      const size = Math.min(block, available - equal);
      if (this.buffer.compare(other.buffer, otherStart + equal, otherStart + equal + size, start + equal, start + equal + size) === 0) equal += size;
      else block >>= 2;
    }
    let lines = 0;
    let bytes = 0;
    for (let at = this.buffer.indexOf(10, start); at >= 0 && at < start + equal && lines < limit; at = this.buffer.indexOf(10, at + 1)) {
      lines += 1;
      bytes = at + 1 - start;
    }
    return { lines, bytes };
  }

  /** Moves past `lines` rows taking `bytes` (from sameLinesAs), their keys too. */
  async skip(lines: number, bytes: number): Promise<void> {
    this.lineStart += bytes;
    this.lineEnd = -1;
    this.read += lines;
    await this.keys.skip(lines);
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    await this.keys.close();
  }
}

/** The side for a table's store, checking that a normalised file holds the rows as `table` normalises them. */
export function mergeSide(table: NormalisedTable, store: RowStore | null, volatiles: VolatileSpec, keyPositions: number[]): MergeSide {
  if (store?.kind !== 'normalised') return new CopyLineSide(table, store, volatiles, keyPositions);
  const columns = table.columns.map((column) => column.name);
  if (columns.join('\u0000') !== store.columns.join('\u0000') || canonicalJson(volatiles) !== canonicalJson(store.volatiles)) {
    throw new Error(
      `${table.source.table}: its rows were written normalised with other volatile fields (${store.columns.join(', ')}); diff it as it was normalised then`,
    );
  }
  return new NormalisedFileSide(store);
}
