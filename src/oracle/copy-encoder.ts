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
import { renderValue, type RowRenderer } from './render.js';
import { splitCopyLine, unescapeCopy } from './rows.js';
import type { ColumnInfo } from './types.js';

/** A growable output buffer that hands full buffers to its file (see document-writer.ts). */
export interface ByteOutput {
  buf: Buffer;
  pos: number;
  /** Makes room for `bytes` more at `pos` (flushing what is there, or growing). */
  reserve(bytes: number): void;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;

const plain = 0;
const delimiter = 1;
const special = 2;
const newline = 3;
const high = 4;

/** What a byte of a COPY field is to the encoder. */
const byteClass = new Uint8Array(256);
for (let code = 0; code < 0x20; code += 1) byteClass[code] = special;
for (let code = 0x80; code < 0x100; code += 1) byteClass[code] = high;
byteClass[TAB] = delimiter;
byteClass[NEWLINE] = newline;
byteClass[QUOTE] = special;
byteClass[BACKSLASH] = special;

const hex = Buffer.from('0123456789abcdef', 'latin1');

const kindString = 0;
const kindNumber = 1;
const kindBool = 2;
const kindJson = 3;

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

/** Is buf[start, end) a JSON number, as render.ts's `jsonNumber` regex says? */
function isJsonNumber(buf: Uint8Array, start: number, end: number): boolean {
  let at = start;
  if (at < end && buf[at] === 0x2d) at += 1;
  if (at >= end) return false;
  let c = buf[at]!;
  if (c === 0x30) at += 1;
  else if (c >= 0x31 && c <= 0x39) {
    at += 1;
    while (at < end && (c = buf[at]!) >= 0x30 && c <= 0x39) at += 1;
  } else return false;
  if (at < end && buf[at] === 0x2e) {
    at += 1;
    const digits = at;
    while (at < end && (c = buf[at]!) >= 0x30 && c <= 0x39) at += 1;
    if (at === digits) return false;
  }
  if (at < end && (buf[at] === 0x65 || buf[at] === 0x45)) {
    at += 1;
    if (at < end && (buf[at] === 0x2b || buf[at] === 0x2d)) at += 1;
    const digits = at;
    while (at < end && (c = buf[at]!) >= 0x30 && c <= 0x39) at += 1;
    if (at === digits) return false;
  }
  return at === end;
}

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
}

/** The line could not be encoded on the byte path (render.ts renders it). */
const bail = -1;

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
  private readonly rawPrefix: Uint8Array[];
  private readonly normIndex: Int32Array;
  private readonly normPrefix: Uint8Array[];
  private readonly rawNext: Buffer;
  private readonly normNext: Buffer;
  private readonly rawIndent: Buffer;
  private readonly normIndent: Buffer;
  private readonly bound: number;
  private readonly fieldStart: Int32Array;
  private readonly fieldEnd: Int32Array;
  private readonly valueStart: Int32Array;
  private readonly valueEnd: Int32Array;
  private readonly normJson: string[];
  private carry: Buffer | null = null;

  constructor(
    private readonly options: EncoderOptions,
    private readonly raw: ByteOutput,
    private readonly norm: ByteOutput,
  ) {
    const { columns } = options;
    this.columns = columns;
    this.count = columns.length;
    this.kinds = Uint8Array.from(columns.map(kindOf));
    const prefix = (name: string, first: boolean) => Uint8Array.from(Buffer.from(`${first ? '' : ','}${JSON.stringify(name)}:`, 'utf8'));
    this.rawPrefix = columns.map((column, index) => prefix(column.name, index === 0));
    this.normIndex = Int32Array.from(options.normalised);
    this.normPrefix = options.normalised.map((position, index) => prefix(columns[position]!.name, index === 0));
    this.rawIndent = Buffer.from(options.rawIndent, 'utf8');
    this.normIndent = Buffer.from(options.normIndent, 'utf8');
    this.rawNext = Buffer.concat([Buffer.from(',\n'), this.rawIndent]);
    this.normNext = Buffer.concat([Buffer.from(',\n'), this.normIndent]);
    // Per byte of a line a value takes at most 6 bytes (`\u00XX`), plus its name, its quotes (or
    // `false` for `f`), the braces and the separator.
    this.bound =
      this.rawPrefix.reduce((sum, piece) => sum + piece.length, 0) + 8 * columns.length + 16 + Math.max(this.rawNext.length, this.normNext.length);
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
      this.raw.reserve(1);
      this.raw.buf[this.raw.pos++] = NEWLINE;
      this.norm.reserve(1);
      this.norm.buf[this.norm.pos++] = NEWLINE;
    }
  }

  /** One row without its newline, by whichever path can take it. */
  private anyLine(buf: Buffer, start: number, end: number): void {
    if (!this.line(buf, start, end)) this.slowLine(buf.toString('utf8', start, end));
  }

  private separator(): void {
    const raw = this.raw;
    const norm = this.norm;
    if (this.rows === 0) {
      raw.pos += this.rawIndent.copy(raw.buf, raw.pos);
      norm.pos += this.normIndent.copy(norm.buf, norm.pos);
    } else {
      raw.pos += this.rawNext.copy(raw.buf, raw.pos);
      norm.pos += this.normNext.copy(norm.buf, norm.pos);
    }
    this.rows += 1;
  }

  /** A row as render.ts renders it (a line the byte path does not take). */
  private slowLine(line: string): void {
    const fields = splitCopyLine(line);
    const rawText = this.options.rawRender(fields);
    const normText = this.options.normRender(fields);
    this.raw.reserve(this.rawNext.length + Buffer.byteLength(rawText));
    this.norm.reserve(this.normNext.length + Buffer.byteLength(normText));
    this.separator();
    this.raw.pos += this.raw.buf.write(rawText, this.raw.pos, 'utf8');
    this.norm.pos += this.norm.buf.write(normText, this.norm.pos, 'utf8');
  }

  /**
   * One row, src[start, end) without its newline, on the byte path: false (nothing written) when
   * the line holds a newline (several rows), not this many fields, or bytes that are not UTF-8.
   */
  private line(src: Buffer, start: number, end: number): boolean {
    const raw = this.raw;
    const norm = this.norm;
    const reserve = this.bound + 6 * (end - start);
    raw.reserve(reserve);
    norm.reserve(reserve);
    const rawMark = raw.pos;
    const normMark = norm.pos;
    this.separator();

    const count = this.count;
    const kinds = this.kinds;
    const fieldStart = this.fieldStart;
    const fieldEnd = this.fieldEnd;
    const valueStart = this.valueStart;
    const valueEnd = this.valueEnd;
    const out = raw.buf;
    let pos = raw.pos;
    let at = start;
    let nonAscii = 0;
    out[pos++] = 0x7b;
    for (let column = 0; column < count; column += 1) {
      if (column > 0) {
        if (at >= end || src[at] !== TAB) return this.undo(rawMark, normMark);
        at += 1;
      }
      const prefix = this.rawPrefix[column]!;
      for (let index = 0; index < prefix.length; index += 1) out[pos++] = prefix[index]!;
      valueStart[column] = pos;
      fieldStart[column] = at;
      const kind = kinds[column]!;
      if (at + 1 < end && src[at] === BACKSLASH && src[at + 1] === 0x4e && (at + 2 === end || src[at + 2] === TAB)) {
        // \N: null
        out[pos] = 0x6e;
        out[pos + 1] = 0x75;
        out[pos + 2] = 0x6c;
        out[pos + 3] = 0x6c;
        pos += 4;
        at += 2;
        if (kind === kindJson) this.normJson[column] = 'null';
      } else if (kind === kindString) {
        out[pos++] = QUOTE;
        let slow = false;
        for (; at < end; at += 1) {
          const c = src[at]!;
          const type = byteClass[c]!;
          if (type === plain) {
            out[pos++] = c;
            continue;
          }
          if (type === delimiter) break;
          if (type === high) {
            nonAscii = 1;
            out[pos++] = c;
            continue;
          }
          if (type === newline) return this.undo(rawMark, normMark);
          if (c === BACKSLASH) {
            const next = at + 1 < end ? src[at + 1]! : 0;
            // COPY's \\ \b \f \n \r \t are JSON's own escapes.
            if (next === BACKSLASH || next === 0x62 || next === 0x66 || next === 0x6e || next === 0x72 || next === 0x74) {
              out[pos++] = BACKSLASH;
              out[pos++] = next;
              at += 1;
            } else if (next === 0x76) {
              pos = unicodeEscape(0x0b, out, pos);
              at += 1;
            } else {
              // An escape COPY does not write: render.ts reads the field.
              at = this.fieldEndFrom(src, at, end);
              if (at === bail) return this.undo(rawMark, normMark);
              pos = this.slowValue(column, src, fieldStart[column]!, at, out, valueStart[column]!);
              slow = true;
              break;
            }
          } else if (c === QUOTE) {
            out[pos++] = BACKSLASH;
            out[pos++] = QUOTE;
          } else {
            // A raw control byte (COPY writes those other than \b \t \n \v \f \r as they are).
            pos = unicodeEscape(c, out, pos);
          }
        }
        if (!slow) out[pos++] = QUOTE;
      } else if (kind === kindNumber || kind === kindBool) {
        let clean = true;
        for (; at < end; at += 1) {
          const c = src[at]!;
          const type = byteClass[c]!;
          if (type === plain) {
            out[pos++] = c;
            continue;
          }
          if (type === delimiter) break;
          if (type === newline) return this.undo(rawMark, normMark);
          if (type === high) nonAscii = 1;
          clean = false;
          out[pos++] = c;
        }
        const first = valueStart[column]!;
        if (kind === kindNumber) {
          if (!clean || !isJsonNumber(out, first, pos)) pos = this.slowValue(column, src, fieldStart[column]!, at, out, first);
        } else if (pos === first + 1 && out[first] === 0x74) {
          out[first] = 0x74; // true
          out[first + 1] = 0x72;
          out[first + 2] = 0x75;
          out[first + 3] = 0x65;
          pos = first + 4;
        } else if (pos === first + 1 && out[first] === 0x66) {
          out[first] = 0x66; // false
          out[first + 1] = 0x61;
          out[first + 2] = 0x6c;
          out[first + 3] = 0x73;
          out[first + 4] = 0x65;
          pos = first + 5;
        } else pos = this.slowValue(column, src, fieldStart[column]!, at, out, first);
      } else {
        at = this.fieldEndFrom(src, at, end);
        if (at === bail) return this.undo(rawMark, normMark);
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

    // The normalised row: its columns in their order, the same value bytes (json values without volatile keys).
    const target = norm.buf;
    let to = norm.pos;
    target[to++] = 0x7b;
    const normIndex = this.normIndex;
    for (let index = 0; index < normIndex.length; index += 1) {
      const column = normIndex[index]!;
      const prefix = this.normPrefix[index]!;
      for (let at = 0; at < prefix.length; at += 1) target[to++] = prefix[at]!;
      if (kinds[column] === kindJson) {
        to += target.write(this.normJson[column]!, to, 'utf8');
      } else {
        const from = valueStart[column]!;
        const until = valueEnd[column]!;
        if (until - from > 64) to += out.copy(target, to, from, until);
        else for (let at = from; at < until; at += 1) target[to++] = out[at]!;
      }
    }
    target[to++] = 0x7d;
    norm.pos = to;
    return true;
  }

  private undo(rawMark: number, normMark: number): false {
    this.raw.pos = rawMark;
    this.norm.pos = normMark;
    this.rows -= 1;
    return false;
  }

  /** Where the field that holds src[at] ends (its tab, or the line's end); bail at a newline. */
  private fieldEndFrom(src: Buffer, at: number, end: number): number {
    for (; at < end; at += 1) {
      const c = src[at]!;
      if (c === TAB) return at;
      if (c === NEWLINE) return bail;
    }
    return end;
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

function unicodeEscape(code: number, out: Buffer, pos: number): number {
  out[pos] = BACKSLASH;
  out[pos + 1] = 0x75; // u
  out[pos + 2] = 0x30;
  out[pos + 3] = 0x30;
  out[pos + 4] = hex[code >> 4]!;
  out[pos + 5] = hex[code & 15]!;
  return pos + 6;
}
