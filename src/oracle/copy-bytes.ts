// The byte-level pieces of the COPY-to-JSON encoder (copy-encoder.ts): what each byte of a
// COPY text field is, moving bytes four at a time, and the few JSON tokens it writes itself.
// Small functions, so that V8 can inline them into the encoder's per-row loop.

export const TAB = 0x09;
export const NEWLINE = 0x0a;
export const BACKSLASH = 0x5c;
export const QUOTE = 0x22;

// What a byte of a COPY field is to the encoder (byteClass[byte]).
export const plain = 0;
export const delimiter = 1;
export const special = 2;
export const newline = 3;
export const high = 4;

export const byteClass = new Uint8Array(256);
for (let code = 0; code < 0x20; code += 1) byteClass[code] = special;
for (let code = 0x80; code < 0x100; code += 1) byteClass[code] = high;
byteClass[TAB] = delimiter;
byteClass[NEWLINE] = newline;
byteClass[QUOTE] = special;
byteClass[BACKSLASH] = special;

/** The JSON words the encoder writes for COPY's `\N`, `t` and `f`, as little-endian words to set four bytes at once (`false` is `fals` and an `e`). */
export const nullWord = 0x6c6c756e;
export const trueWord = 0x65757274;
export const falsWord = 0x736c6166;

const hex = Buffer.from('0123456789abcdef', 'latin1');

export function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Copies src[at, end) to out[pos...], four bytes at a time; returns the new position. */
export function copyBytes(src: Uint8Array, srcView: DataView, at: number, end: number, out: Uint8Array, outView: DataView, pos: number): number {
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

/**
 * Copies the plain bytes from src[at] on, four at a time, to out[pos...], stopping before the
 * first word (of four) with anything else in it or that the line's end cuts; returns how many it copied.
 */
export function copyPlainWords(srcView: DataView, at: number, end: number, outView: DataView, pos: number): number {
  let copied = 0;
  while (at + copied + 4 <= end) {
    const word = srcView.getInt32(at + copied, true);
    if (!plainWord(word)) break;
    outView.setInt32(pos + copied, word, true);
    copied += 4;
  }
  return copied;
}

/** Writes `\u00XX` for a control byte at out[pos]; returns the new position. */
export function unicodeEscape(code: number, out: Uint8Array, pos: number): number {
  out[pos] = BACKSLASH;
  out[pos + 1] = 0x75; // u
  out[pos + 2] = 0x30;
  out[pos + 3] = 0x30;
  out[pos + 4] = hex[code >> 4]!;
  out[pos + 5] = hex[code & 15]!;
  return pos + 6;
}

/** Where the field that holds src[at] ends (its tab, or the line's end); -1 at a newline. */
export function fieldEndFrom(src: Uint8Array, at: number, end: number): number {
  for (; at < end; at += 1) {
    const c = src[at]!;
    if (c === TAB) return at;
    if (c === NEWLINE) return -1;
  }
  return end;
}

/** Is buf[start, end) a JSON number, as render.ts's `jsonNumber` regex says? */
export function isJsonNumber(buf: Uint8Array, start: number, end: number): boolean {
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
