// The decision paragraph's multi-line editor, as pure functions over
// { text, cursor }: word wrapping with character offsets (so the cursor maps to
// a row and column on screen), and what each key does. The screen only draws
// the layout; the key router applies the keys.
//
// Two units, kept apart: the cursor is an offset into the string (UTF-16 code
// units, what String.slice takes), always on a grapheme boundary, so it moves and
// deletes by what a person sees as one character (👩‍💻, 🇫🇷, e + a combining
// accent); rows and columns are terminal cells, where CJK characters and emoji
// take two. Widths follow the rules of Ink's own measure (string-width), so a row
// the editor fits into `width` cells is a row Ink draws without wrapping again.
import { eastAsianWidth } from 'get-east-asian-width';

export interface EditorValue {
  text: string;
  cursor: number;
}

export interface EditorKey {
  upArrow?: boolean;
  downArrow?: boolean;
  leftArrow?: boolean;
  rightArrow?: boolean;
  home?: boolean;
  end?: boolean;
  return?: boolean;
  backspace?: boolean;
  delete?: boolean;
  ctrl?: boolean;
  meta?: boolean;
  tab?: boolean;
  escape?: boolean;
}

/** A visual line: text.slice(start, end), a trailing space included; `last` when it ends its paragraph. */
export interface VisualLine {
  start: number;
  end: number;
  last: boolean;
}

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** The user-perceived characters of text, each with its offset. */
export function graphemes(text: string): Array<{ index: number; segment: string }> {
  return Array.from(segmenter.segment(text), ({ index, segment }) => ({ index, segment }));
}

// A cluster made only of these draws nothing (string-width's rule 1).
const visibleCharacter = /[^\p{Default_Ignorable_Code_Point}\p{Control}\p{Format}\p{Nonspacing_Mark}\p{Enclosing_Mark}\p{Surrogate}]/u;
const spacingMark = /\p{Spacing_Mark}/u;
// Properties of strings need the v flag, which the compile target does not know: built at run time.
const rgiEmoji = new RegExp('^\\p{RGI_Emoji}$', 'v');
const pictographic = /\p{Extended_Pictographic}/gu;

/** Emoji drawn two cells wide although not fully qualified: a keycap without VS16, a ZWJ sequence of pictographs. */
function isWideEmojiSequence(cluster: string): boolean {
  if (/^[\d#*]\u20e3$/.test(cluster)) return true;
  return cluster.includes('\u200d') && (cluster.match(pictographic)?.length ?? 0) >= 2;
}

/** The cells one grapheme cluster takes in a terminal: 0, 1 or 2 (a spacing mark may add one). */
export function graphemeWidth(cluster: string): number {
  if (/^[\u0020-\u007e]$/.test(cluster)) return 1;
  const first = cluster.search(visibleCharacter);
  if (first < 0) return 0;
  if (rgiEmoji.test(cluster) || isWideEmojiSequence(cluster)) return 2;
  const visible = Array.from(cluster.slice(first));
  let width = eastAsianWidth(visible[0]!.codePointAt(0)!);
  for (const character of visible.slice(1)) {
    if (spacingMark.test(character) || (character >= '\uff00' && character <= '\uffef')) width += eastAsianWidth(character.codePointAt(0)!);
  }
  return width;
}

/** The cells text takes on one terminal row. */
export function displayWidth(text: string): number {
  if (/^[\u0020-\u007e]*$/.test(text)) return text.length;
  return graphemes(text).reduce((sum, { segment }) => sum + graphemeWidth(segment), 0);
}

/** The grapheme boundary at or before offset (offset itself when it is one). */
function boundaryAtOrBefore(text: string, offset: number): number {
  if (offset <= 0) return 0;
  if (offset >= text.length) return text.length;
  return segmenter.segment(text).containing(offset)?.index ?? offset;
}

/** The grapheme boundary at or after offset. */
function boundaryAtOrAfter(text: string, offset: number): number {
  const before = boundaryAtOrBefore(text, offset);
  if (before === offset) return offset;
  const cluster = segmenter.segment(text).containing(offset);
  return cluster ? cluster.index + cluster.segment.length : text.length;
}

function previousBoundary(text: string, cursor: number): number {
  return cursor <= 0 ? 0 : boundaryAtOrBefore(text, cursor - 1);
}

function nextBoundary(text: string, cursor: number): number {
  if (cursor >= text.length) return text.length;
  const cluster = segmenter.segment(text).containing(cursor);
  return cluster ? cluster.index + cluster.segment.length : text.length;
}

/** Where the row starting at `start` ends when it may hold `max` cells of the paragraph ending at `paragraphEnd`. */
function rowEnd(text: string, start: number, paragraphEnd: number, max: number): number {
  let cells = 0;
  let lastSpace = -1;
  for (const { index, segment } of segmenter.segment(text.slice(start, paragraphEnd))) {
    const at = start + index;
    // A space right after a full row still ends that row (the row keeps it, one cell past the width).
    if (segment === ' ' && index > 0) lastSpace = at;
    const width = graphemeWidth(segment);
    if (cells + width > max) {
      if (lastSpace > start) return lastSpace + 1;
      // A word longer than the row is cut; a row always takes at least one character.
      return at > start ? at : at + segment.length;
    }
    cells += width;
  }
  return paragraphEnd;
}

/** Word-wraps text to width cells, keeping offsets. A word longer than the width is cut. */
export function wrapOffsets(text: string, width: number): VisualLine[] {
  const lines: VisualLine[] = [];
  const max = Math.max(1, width);
  let paragraphStart = 0;
  for (;;) {
    const newline = text.indexOf('\n', paragraphStart);
    const paragraphEnd = newline < 0 ? text.length : newline;
    let start = paragraphStart;
    for (let end = rowEnd(text, start, paragraphEnd, max); end < paragraphEnd; end = rowEnd(text, start, paragraphEnd, max)) {
      lines.push({ start, end, last: false });
      start = end;
    }
    lines.push({ start, end: paragraphEnd, last: true });
    if (newline < 0) break;
    paragraphStart = newline + 1;
  }
  return lines;
}

/** Plain word wrap for display (the why of a step, a paragraph preview). */
export function wrapText(text: string, width: number): string[] {
  return wrapOffsets(text, width).map((line) => text.slice(line.start, line.end).trimEnd());
}

/** The cursor's row, and its column in cells. */
export function cursorPosition(text: string, lines: readonly VisualLine[], cursor: number): { row: number; column: number } {
  for (const [row, line] of lines.entries()) {
    const inside = line.last ? cursor >= line.start && cursor <= line.end : cursor >= line.start && cursor < line.end;
    if (inside) return { row, column: displayWidth(text.slice(line.start, cursor)) };
  }
  const lastRow = Math.max(0, lines.length - 1);
  const line = lines[lastRow];
  return { row: lastRow, column: line ? displayWidth(text.slice(line.start, line.end)) : 0 };
}

/** The offset on `row` nearest to `column` cells without passing it (never inside a wide character). */
function offsetAt(text: string, lines: readonly VisualLine[], row: number, column: number): number {
  const line = lines[row];
  if (!line) return 0;
  const clusters = graphemes(text.slice(line.start, line.end));
  // A wrapped row's end is the next row's start: the cursor stops before the row's last character.
  const reachable = line.last ? clusters.length : Math.max(0, clusters.length - 1);
  let offset = line.start;
  let cells = 0;
  for (const { segment } of clusters.slice(0, reachable)) {
    const width = graphemeWidth(segment);
    if (cells + width > column) break;
    cells += width;
    offset += segment.length;
  }
  return offset;
}

function clamp(value: EditorValue): EditorValue {
  const cursor = Math.max(0, Math.min(value.text.length, value.cursor));
  return { text: value.text, cursor: boundaryAtOrBefore(value.text, cursor) };
}

/** What one key (or a pasted string) does to the paragraph. Unknown control keys change nothing. */
export function applyEditorKey(value: EditorValue, input: string, key: EditorKey, width: number): EditorValue {
  const { text, cursor } = clamp(value);
  if (key.leftArrow) return { text, cursor: previousBoundary(text, cursor) };
  if (key.rightArrow) return { text, cursor: nextBoundary(text, cursor) };
  if (key.upArrow || key.downArrow || key.home || key.end) {
    const lines = wrapOffsets(text, width);
    const { row, column } = cursorPosition(text, lines, cursor);
    if (key.home) return { text, cursor: lines[row]?.start ?? 0 };
    if (key.end) return { text, cursor: offsetAt(text, lines, row, Number.MAX_SAFE_INTEGER) };
    const target = key.upArrow ? row - 1 : row + 1;
    if (target < 0) return { text, cursor: 0 };
    if (target >= lines.length) return { text, cursor: text.length };
    return { text, cursor: offsetAt(text, lines, target, column) };
  }
  // Terminals send DEL (0x7f) for the backspace key, which Ink reports as `delete`.
  if (key.backspace || key.delete) {
    const previous = previousBoundary(text, cursor);
    return { text: text.slice(0, previous) + text.slice(cursor), cursor: previous };
  }
  if (key.return) return { text: `${text.slice(0, cursor)}\n${text.slice(cursor)}`, cursor: cursor + 1 };
  if (key.ctrl || key.escape || key.tab) return { text, cursor };
  // Printable text (typed or pasted); control characters are dropped, CR becomes a newline.
  const insert = input.replace(/\r\n?/g, '\n').replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '');
  if (!insert) return { text, cursor };
  const next = text.slice(0, cursor) + insert + text.slice(cursor);
  // What was typed can join the character after it (a second regional indicator): stay after the whole of it.
  return { text: next, cursor: boundaryAtOrAfter(next, cursor + insert.length) };
}

/** The rows to draw: at most `height`, scrolled so the cursor's row is visible. */
export function editorWindow(
  value: EditorValue,
  width: number,
  height: number,
): { rows: string[]; cursorRow: number; cursorColumn: number; cursorOffset: number; first: number; total: number } {
  const { text, cursor } = clamp(value);
  const lines = wrapOffsets(text, width);
  const { row, column } = cursorPosition(text, lines, cursor);
  const visible = Math.max(1, height);
  const first = Math.max(0, Math.min(row - visible + 1 + Math.floor(visible / 3), lines.length - visible));
  const start = Math.max(0, Math.min(first, row));
  const rows = lines.slice(start, start + visible).map((line) => text.slice(line.start, line.end));
  const cursorOffset = cursor - (lines[row]?.start ?? 0);
  return { rows, cursorRow: row - start, cursorColumn: column, cursorOffset, first: start, total: lines.length };
}
