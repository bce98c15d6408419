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

const planPrefix = 0;
const planRun = 1;
const planRunWithPrefix = 2;
const planJson = 3;

/** Copies src[at, end) to out[pos...], four bytes at a time; returns the new position. */
function copyBytes(src: Uint8Array, srcView: DataView, at: number, end: number, out: Uint8Array, outView: DataView, pos: number): number {
  while (at + 4 <= end) {
    outView.setInt32(pos, srcView.getInt32(at, true), true);
    at += 4;
    pos += 4;
  }
  while (at < end) out[pos++] = src[at++]!;
  return pos;
}

/** Are the four bytes of w (little-endian) all plain: no control byte, `"`, backslash or byte >= 0x80? */
function plainWord(w: number): boolean {
  const quote = w ^ 0x22222222;
  const backslash = w ^ 0x5c5c5c5c;
  return ((((w - 0x20202020) & ~w) | ((quote - 0x01010101) & ~quote) | ((backslash - 0x01010101) & ~backslash) | w) & 0x80808080) === 0;
}

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

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
  /** The key columns (indexes into `columns`): their COPY text goes to the third output, a line per row. */
  keyColumns?: number[];
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
  private readonly normPrefix: Uint8Array[];
  private readonly rawNext: Buffer;
  private readonly normNext: Buffer;
  private readonly rawNextView: DataView;
  private readonly normNextView: DataView;
  private readonly rawIndent: Buffer;
  private readonly normIndent: Buffer;
  private readonly bound: number;
  private readonly fieldStart: Int32Array;
  private readonly fieldEnd: Int32Array;
  private readonly valueStart: Int32Array;
  private readonly valueEnd: Int32Array;
  private readonly normJson: string[];
  private carry: Buffer | null = null;
  private readonly keyColumns: Int32Array;
  /** Every raw prefix in one array (column c's at rawPrefixAt[c] .. rawPrefixAt[c + 1]), and the normalised ones. */
  private readonly prefixes: Buffer;
  private readonly prefixView: DataView;
  private readonly rawPrefixAt: Int32Array;
  /**
   * How the normalised row is put together from the raw one, as triples (what, a, b): a normalised
   * prefix (prefixes[a, b)), a run of raw columns a..b copied with the prefixes between them (from
   * column a's value, or from its prefix when the two rows' prefixes agree), or a json value (a).
   */
  private readonly plan: Int32Array;
  // DataViews of the buffers last seen, to move four bytes at a time.
  private srcSeen: Uint8Array | null = null;
  private srcView!: DataView;
  private rawSeen: Uint8Array | null = null;
  private rawView!: DataView;
  private normSeen: Uint8Array | null = null;
  private normView!: DataView;

  constructor(
    private readonly options: EncoderOptions,
    private readonly raw: ByteOutput,
    private readonly norm: ByteOutput,
    private readonly keys?: ByteOutput,
  ) {
    this.keyColumns = Int32Array.from(keys ? (options.keyColumns ?? []) : []);
    const { columns } = options;
    this.columns = columns;
    this.count = columns.length;
    this.kinds = Uint8Array.from(columns.map(kindOf));
    const prefix = (name: string, first: boolean) => Uint8Array.from(Buffer.from(`${first ? '' : ','}${JSON.stringify(name)}:`, 'utf8'));
    this.rawPrefix = columns.map((column, index) => prefix(column.name, index === 0));
    this.normPrefix = options.normalised.map((position, index) => prefix(columns[position]!.name, index === 0));
    this.rawIndent = Buffer.from(options.rawIndent, 'utf8');
    this.normIndent = Buffer.from(options.normIndent, 'utf8');
    this.rawNext = Buffer.concat([Buffer.from(',\n'), this.rawIndent]);
    this.normNext = Buffer.concat([Buffer.from(',\n'), this.normIndent]);
    this.rawNextView = viewOf(this.rawNext);
    this.normNextView = viewOf(this.normNext);
    // Per byte of a line a value takes at most 6 bytes (`\u00XX`), plus its name, its quotes (or
    // `false` for `f`), the braces and the separator.
    this.bound =
      this.rawPrefix.reduce((sum, piece) => sum + piece.length, 0) + 8 * columns.length + 16 + Math.max(this.rawNext.length, this.normNext.length);
    this.fieldStart = new Int32Array(columns.length);
    this.fieldEnd = new Int32Array(columns.length);
    this.valueStart = new Int32Array(columns.length);
    this.valueEnd = new Int32Array(columns.length);
    this.normJson = new Array<string>(columns.length).fill('');

    const normPrefixBytes = this.normPrefix;
    // A Buffer like the others, so the copies see one kind of array.
    this.prefixes = Buffer.concat([...this.rawPrefix, ...normPrefixBytes]);
    this.prefixView = new DataView(this.prefixes.buffer, this.prefixes.byteOffset, this.prefixes.byteLength);
    this.rawPrefixAt = new Int32Array(columns.length + 1);
    for (let column = 0; column < columns.length; column += 1) {
      this.rawPrefixAt[column + 1] = this.rawPrefixAt[column]! + this.rawPrefix[column]!.length;
    }
    const order = options.normalised;
    const normPrefixAt = new Int32Array(order.length + 1);
    normPrefixAt[0] = this.rawPrefixAt[columns.length]!;
    for (let index = 0; index < order.length; index += 1) normPrefixAt[index + 1] = normPrefixAt[index]! + normPrefixBytes[index]!.length;
    const plan: number[] = [];
    for (let index = 0; index < order.length; ) {
      const column = order[index]!;
      if (this.kinds[column] === kindJson) {
        plan.push(planPrefix, normPrefixAt[index]!, normPrefixAt[index + 1]!, planJson, column, column);
        index += 1;
        continue;
      }
      // The run: the raw columns after this one that follow it in the normalised row too (their
      // prefixes, `,"name":`, are the same bytes in both rows).
      let last = column;
      let next = index + 1;
      while (next < order.length && order[next] === last + 1 && this.kinds[last + 1] !== kindJson) {
        last += 1;
        next += 1;
      }
      if (index > 0 && column > 0) plan.push(planRunWithPrefix, column, last);
      else plan.push(planPrefix, normPrefixAt[index]!, normPrefixAt[index + 1]!, planRun, column, last);
      index = next;
    }
    this.plan = Int32Array.from(plan);
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

  /** What goes before a row in each document: its indent, after `,\n` for all but the first. */
  private separator(): void {
    const raw = this.raw;
    const norm = this.norm;
    const from = this.rows === 0 ? 2 : 0;
    if (raw.buf !== this.rawSeen) {
      this.rawSeen = raw.buf;
      this.rawView = viewOf(raw.buf);
    }
    if (norm.buf !== this.normSeen) {
      this.normSeen = norm.buf;
      this.normView = viewOf(norm.buf);
    }
    raw.pos = copyBytes(this.rawNext, this.rawNextView, from, this.rawNext.length, raw.buf, this.rawView, raw.pos);
    norm.pos = copyBytes(this.normNext, this.normNextView, from, this.normNext.length, norm.buf, this.normView, norm.pos);
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
    const raw = this.raw;
    const norm = this.norm;
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
    const outView = this.rawView;
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
        for (;;) {
          // Four plain bytes at a time; a word with anything else in it goes byte by byte.
          while (at + 4 <= end) {
            const word = srcView.getInt32(at, true);
            if (!plainWord(word)) break;
            outView.setInt32(pos, word, true);
            at += 4;
            pos += 4;
          }
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
              at = this.fieldEndFrom(src, at, end);
              if (at === bail) return this.undo(rawMark, normMark);
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
        let clean = true;
        for (;;) {
          while (at + 4 <= end) {
            const word = srcView.getInt32(at, true);
            if (!plainWord(word)) break;
            outView.setInt32(pos, word, true);
            at += 4;
            pos += 4;
          }
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

    const keys = this.keys;
    if (keys) {
      // The key columns' COPY text, as the diff's merge compares it.
      const keyColumns = this.keyColumns;
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

    // The normalised row, put together from the raw one as the plan says.
    const target = norm.buf;
    const targetView = this.normView;
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
