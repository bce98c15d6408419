// COPY text rows straight to JSON row lines, as bytes: the rows of before.json and
// before.normalised.json written in one pass over the COPY stream, column by column,
// without a string, an array or an object per row.
//
// The byte path gives exactly what render.ts gives for the same row (renderValue on
// the fields splitCopyLine reads), because COPY's text escapes and JSON's string
// escapes agree where it matters: a field without `"`, a backslash or a control
// byte is its own JSON string body; COPY's `\\ \b \f \n \r \t` are JSON's escapes
// byte for byte; only `\v`, `"` and raw control bytes are rewritten. Whatever the
// byte path does not know (json values, a number Postgres writes as `NaN`, an escape
// COPY never writes, bytes that are not UTF-8) is rendered by render.ts itself, one
// field or one block of lines at a time, so the output stays the same everywhere.
import { isUtf8 } from 'node:buffer';
import { DocumentOutput, type ByteOutput } from './byte-output.js';
import {
  BACKSLASH,
  byteClass,
  copyBytes,
  copyPlainWords,
  delimiter,
  falsWord,
  fieldEndFrom,
  high,
  isJsonNumber,
  NEWLINE,
  newline,
  nullWord,
  plain,
  QUOTE,
  TAB,
  trueWord,
  unicodeEscape,
  viewOf,
} from './copy-bytes.js';
import { splitCopyLine, unescapeCopy } from './copy-text.js';
import { renderValue, type RowRenderer } from './render.js';
import { kindBool, kindJson, kindNumber, kindString, planPrefix, planRun, planRunWithPrefix, rowLayout } from './row-layout.js';
import type { ColumnInfo } from './types.js';

export interface EncoderOptions {
  /** Every column, in the table's order (the order of the COPY's fields). */
  columns: ColumnInfo[];
  /** The normalised row's columns: indexes into `columns`, in the normalised order (sorted by name). */
  normalised: number[];
  /** Keys dropped inside json values of the normalised row (volatile at any depth). */
  drop: (key: string) => boolean;
  /** The indentation of a row line in each document. */
  rawIndent: string;
  normIndent: string;
  /** The string renderers, for what the byte path leaves to render.ts. */
  rawRender: RowRenderer;
  normRender: RowRenderer;
  /** The key columns (indexes into `columns`): their COPY text goes to the third output, a line per row. */
  keyColumns?: number[];
}

/**
 * Encodes one table's COPY rows into its rows in both documents. data() takes the COPY's bytes as
 * they come (a payload is usually one row, but a row may straddle payloads); end() after the last.
 * Rows are separated by `,\n` and the last one ends with `\n`: a comma after every row but the last.
 */
export class CopyRowEncoder {
  rows = 0;
  private readonly count: number;
  private readonly kinds: Uint8Array;
  private readonly columns: ColumnInfo[];
  private readonly raw: DocumentOutput;
  private readonly norm: DocumentOutput;
  /** The room a line needs in each output, beside its 6 bytes a byte. */
  private readonly bound: number;
  private readonly fieldStart: Int32Array;
  private readonly fieldEnd: Int32Array;
  private readonly valueStart: Int32Array;
  private readonly valueEnd: Int32Array;
  private readonly normJson: string[];
  private carry: Buffer | null = null;
  private readonly keyColumns: Int32Array;
  // The row layout (row-layout.ts).
  private readonly prefixes: Buffer;
  private readonly prefixView: DataView;
  private readonly rawPrefixAt: Int32Array;
  private readonly plan: Int32Array;
  // A DataView of the COPY buffer last seen, to move four bytes at a time.
  private srcSeen: Uint8Array | null = null;
  private srcView!: DataView;

  constructor(
    private readonly options: EncoderOptions,
    raw: ByteOutput,
    norm: ByteOutput,
    private readonly keys?: ByteOutput,
  ) {
    this.keyColumns = Int32Array.from(keys ? (options.keyColumns ?? []) : []);
    const { columns } = options;
    const layout = rowLayout(columns, options.normalised);
    this.columns = columns;
    this.count = columns.length;
    this.kinds = layout.kinds;
    this.prefixes = layout.prefixes;
    this.prefixView = viewOf(layout.prefixes);
    this.rawPrefixAt = layout.rawPrefixAt;
    this.plan = layout.plan;
    this.raw = new DocumentOutput(raw, options.rawIndent);
    this.norm = new DocumentOutput(norm, options.normIndent);
    // Per byte of a line a value takes at most 6 bytes (`\u00XX`), plus its name, its quotes (or
    // `false` for `f`), the braces and the separator.
    this.bound = layout.rawPrefixAt[columns.length]! + 8 * columns.length + 16 + Math.max(this.raw.next.length, this.norm.next.length);
    this.fieldStart = new Int32Array(columns.length);
    this.fieldEnd = new Int32Array(columns.length);
    this.valueStart = new Int32Array(columns.length);
    this.valueEnd = new Int32Array(columns.length);
    this.normJson = new Array<string>(columns.length).fill('');
  }

  /** buf[start, end): the next bytes of the COPY's text. */
  data(buf: Buffer, start: number, end: number): void {
    // The common case: a payload that is one whole row.
    if (this.carry === null && end > start && buf[end - 1] === NEWLINE && this.line(buf, start, end - 1)) return;
    let from = start;
    if (this.carry) {
      const first = buf.indexOf(NEWLINE, start);
      if (first < 0 || first >= end) {
        this.carry = Buffer.concat([this.carry, buf.subarray(start, end)]);
        return;
      }
      const line = Buffer.concat([this.carry, buf.subarray(start, first)]);
      this.carry = null;
      this.anyLine(line, 0, line.length);
      from = first + 1;
    }
    while (from < end) {
      const next = buf.indexOf(NEWLINE, from);
      if (next < 0 || next >= end) {
        this.carry = Buffer.from(buf.subarray(from, end));
        return;
      }
      this.anyLine(buf, from, next);
      from = next + 1;
    }
  }

  end(): void {
    if (this.carry && this.carry.length > 0) {
      // COPY ends every row with a newline; a stream cut short still renders what it had, as render.ts does.
      const line = this.carry;
      this.carry = null;
      this.anyLine(line, 0, line.length);
    }
    this.carry = null;
    if (this.rows > 0) {
      for (const { out } of [this.raw, this.norm]) {
        out.reserve(1);
        out.buf[out.pos++] = NEWLINE;
      }
    }
  }

  /** One row without its newline, by whichever path can take it. */
  private anyLine(buf: Buffer, start: number, end: number): void {
    if (!this.line(buf, start, end)) this.slowLine(buf.toString('utf8', start, end));
  }

  /** What goes before a row in each document (room reserved); the row is counted. */
  private separator(): void {
    const first = this.rows === 0;
    this.raw.separator(first);
    this.norm.separator(first);
    this.rows += 1;
  }

  /** A row as render.ts renders it (a line the byte path does not take). */
  private slowLine(line: string): void {
    const fields = splitCopyLine(line);
    const rawText = this.options.rawRender(fields);
    const normText = this.options.normRender(fields);
    const raw = this.raw.out;
    const norm = this.norm.out;
    raw.reserve(this.raw.next.length + Buffer.byteLength(rawText));
    norm.reserve(this.norm.next.length + Buffer.byteLength(normText));
    this.separator();
    raw.pos += raw.buf.write(rawText, raw.pos, 'utf8');
    norm.pos += norm.buf.write(normText, norm.pos, 'utf8');
    const keys = this.keys;
    if (keys) {
      // A field the line lacks reads as null, as splitCopyLine's caller reads it.
      const parts = line.split('\t');
      const text = `${Array.from(this.keyColumns, (column) => parts[column] ?? '\\N').join('\t')}\n`;
      keys.reserve(Buffer.byteLength(text));
      keys.pos += keys.buf.write(text, keys.pos, 'utf8');
    }
  }

  /**
   * One row, src[start, end) without its newline, on the byte path: false (nothing written) when
   * the line holds a newline (several rows), not this many fields, or bytes that are not UTF-8.
   */
  private line(src: Buffer, start: number, end: number): boolean {
    const raw = this.raw.out;
    const norm = this.norm.out;
    const reserve = this.bound + 6 * (end - start);
    raw.reserve(reserve);
    norm.reserve(reserve);
    const rawMark = raw.pos;
    const normMark = norm.pos;
    this.separator();

    if (src !== this.srcSeen) {
      this.srcSeen = src;
      this.srcView = viewOf(src);
    }
    // (separator() has seen the output buffers.)
    const out = raw.buf;
    const srcView = this.srcView;
    const outView = this.raw.view;
    const prefixes = this.prefixes;
    const prefixView = this.prefixView;
    const rawPrefixAt = this.rawPrefixAt;
    const count = this.count;
    const kinds = this.kinds;
    const fieldStart = this.fieldStart;
    const fieldEnd = this.fieldEnd;
    const valueStart = this.valueStart;
    const valueEnd = this.valueEnd;
    let pos = raw.pos;
    let at = start;
    let nonAscii = 0;
    out[pos++] = 0x7b;
    for (let column = 0; column < count; column += 1) {
      if (column > 0) {
        if (at >= end || src[at] !== TAB) return this.undo(rawMark, normMark);
        at += 1;
      }
      pos = copyBytes(prefixes, prefixView, rawPrefixAt[column]!, rawPrefixAt[column + 1]!, out, outView, pos);
      valueStart[column] = pos;
      fieldStart[column] = at;
      const kind = kinds[column]!;
      if (at + 1 < end && src[at] === BACKSLASH && src[at + 1] === 0x4e && (at + 2 === end || src[at + 2] === TAB)) {
        // \N: null
        outView.setInt32(pos, nullWord, true);
        pos += 4;
        at += 2;
        if (kind === kindJson) this.normJson[column] = 'null';
      } else if (kind === kindString) {
        out[pos++] = QUOTE;
        let slow = false;
        for (;;) {
          // Four plain bytes at a time; a word with anything else in it goes byte by byte.
          const run = copyPlainWords(srcView, at, end, outView, pos);
          at += run;
          pos += run;
          if (at >= end) break;
          const c = src[at]!;
          const type = byteClass[c]!;
          if (type === plain) {
            out[pos++] = c;
            at += 1;
            continue;
          }
          if (type === delimiter) break;
          if (type === high) {
            nonAscii = 1;
            out[pos++] = c;
            at += 1;
            continue;
          }
          if (type === newline) return this.undo(rawMark, normMark);
          if (c === BACKSLASH) {
            const next = at + 1 < end ? src[at + 1]! : 0;
            // COPY's \\ \b \f \n \r \t are JSON's own escapes.
            if (next === BACKSLASH || next === 0x62 || next === 0x66 || next === 0x6e || next === 0x72 || next === 0x74) {
              out[pos++] = BACKSLASH;
              out[pos++] = next;
              at += 2;
            } else if (next === 0x76) {
              pos = unicodeEscape(0x0b, out, pos);
              at += 2;
            } else {
              // An escape COPY does not write: render.ts reads the field.
              at = fieldEndFrom(src, at, end);
              if (at < 0) return this.undo(rawMark, normMark);
              pos = this.slowValue(column, src, fieldStart[column]!, at, out, valueStart[column]!);
              slow = true;
              break;
            }
          } else if (c === QUOTE) {
            out[pos++] = BACKSLASH;
            out[pos++] = QUOTE;
            at += 1;
          } else {
            // A raw control byte (COPY writes those other than \b \t \n \v \f \r as they are).
            pos = unicodeEscape(c, out, pos);
            at += 1;
          }
        }
        if (!slow) out[pos++] = QUOTE;
      } else if (kind === kindNumber || kind === kindBool) {
        // The field as it is, then checked: a JSON number, `t` or `f`, or else render.ts's rendering.
        let clean = true;
        for (;;) {
          const run = copyPlainWords(srcView, at, end, outView, pos);
          at += run;
          pos += run;
          if (at >= end) break;
          const c = src[at]!;
          const type = byteClass[c]!;
          if (type === delimiter) break;
          if (type === newline) return this.undo(rawMark, normMark);
          if (type === high) nonAscii = 1;
          if (type !== plain) clean = false;
          out[pos++] = c;
          at += 1;
        }
        const first = valueStart[column]!;
        if (kind === kindNumber) {
          if (!clean || !isJsonNumber(out, first, pos)) pos = this.slowValue(column, src, fieldStart[column]!, at, out, first);
        } else if (pos === first + 1 && out[first] === 0x74) {
          outView.setInt32(first, trueWord, true);
          pos = first + 4;
        } else if (pos === first + 1 && out[first] === 0x66) {
          outView.setInt32(first, falsWord, true);
          out[first + 4] = 0x65;
          pos = first + 5;
        } else pos = this.slowValue(column, src, fieldStart[column]!, at, out, first);
      } else {
        at = fieldEndFrom(src, at, end);
        if (at < 0) return this.undo(rawMark, normMark);
        for (let index = fieldStart[column]!; index < at; index += 1) if (src[index]! >= 0x80) nonAscii = 1;
        pos = this.slowValue(column, src, fieldStart[column]!, at, out, valueStart[column]!);
      }
      fieldEnd[column] = at;
      valueEnd[column] = pos;
    }
    if (at !== end) return this.undo(rawMark, normMark);
    if (nonAscii && !isUtf8(src.subarray(start, end))) {
      // Not UTF-8 (a SQL_ASCII or LATIN1 database): render.ts decodes it with replacement characters.
      return this.undo(rawMark, normMark);
    }
    out[pos++] = 0x7d;
    raw.pos = pos;
    if (this.keys) this.keyLine(src, start, end);
    this.normalisedLine(out, outView);
    return true;
  }

  /** The key columns' COPY text of the row line() has just read, as the diff's merge compares it. */
  private keyLine(src: Buffer, start: number, end: number): void {
    const keys = this.keys!;
    const keyColumns = this.keyColumns;
    const fieldStart = this.fieldStart;
    const fieldEnd = this.fieldEnd;
    keys.reserve(end - start + keyColumns.length + 1);
    const kb = keys.buf;
    let k = keys.pos;
    for (let index = 0; index < keyColumns.length; index += 1) {
      if (index > 0) kb[k++] = TAB;
      const column = keyColumns[index]!;
      const until = fieldEnd[column]!;
      for (let from = fieldStart[column]!; from < until; from += 1) kb[k++] = src[from]!;
    }
    kb[k++] = NEWLINE;
    keys.pos = k;
  }

  /** The normalised row, put together as the plan says from the raw row line() has just written (in out). */
  private normalisedLine(out: Buffer, outView: DataView): void {
    const norm = this.norm.out;
    const target = norm.buf;
    const targetView = this.norm.view;
    const prefixes = this.prefixes;
    const prefixView = this.prefixView;
    const rawPrefixAt = this.rawPrefixAt;
    const valueStart = this.valueStart;
    const valueEnd = this.valueEnd;
    let to = norm.pos;
    target[to++] = 0x7b;
    const plan = this.plan;
    for (let step = 0; step < plan.length; step += 3) {
      const what = plan[step]!;
      const a = plan[step + 1]!;
      const b = plan[step + 2]!;
      if (what === planPrefix) to = copyBytes(prefixes, prefixView, a, b, target, targetView, to);
      else if (what === planRun) to = copyBytes(out, outView, valueStart[a]!, valueEnd[b]!, target, targetView, to);
      else if (what === planRunWithPrefix) to = copyBytes(out, outView, valueStart[a]! - (rawPrefixAt[a + 1]! - rawPrefixAt[a]!), valueEnd[b]!, target, targetView, to);
      else to += target.write(this.normJson[a]!, to, 'utf8');
    }
    target[to++] = 0x7d;
    norm.pos = to;
  }

  private undo(rawMark: number, normMark: number): false {
    this.raw.out.pos = rawMark;
    this.norm.out.pos = normMark;
    this.rows -= 1;
    return false;
  }

  /** What render.ts writes for one field (json values, numbers such as NaN, anything unusual), at out[pos]. */
  private slowValue(column: number, src: Buffer, start: number, end: number, out: Buffer, pos: number): number {
    const field = src.toString('utf8', start, end);
    const text = field.includes('\\') ? unescapeCopy(field) : field;
    const info = this.columns[column]!;
    if (this.kinds[column] === kindJson) this.normJson[column] = renderValue(info, text, this.options.drop);
    return pos + out.write(renderValue(info, text), pos, 'utf8');
  }
}
