// The decision paragraph's multi-line editor, as pure functions over
// { text, cursor }: word wrapping with character offsets (so the cursor maps to
// a row and column on screen), and what each key does. The screen only draws
// the layout; the key router applies the keys.

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

/** Word-wraps text to width, keeping offsets. A word longer than the width is cut. */
export function wrapOffsets(text: string, width: number): VisualLine[] {
  const lines: VisualLine[] = [];
  const max = Math.max(1, width);
  let paragraphStart = 0;
  for (;;) {
    const newline = text.indexOf('\n', paragraphStart);
    const paragraphEnd = newline < 0 ? text.length : newline;
    let start = paragraphStart;
    while (paragraphEnd - start > max) {
      // A space right after a full row still ends that row (the row keeps it, one column past the width).
      const window = text.slice(start, start + max + 1);
      const space = window.lastIndexOf(' ');
      const end = space > 0 ? start + space + 1 : start + max;
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

export function cursorPosition(lines: readonly VisualLine[], cursor: number): { row: number; column: number } {
  for (const [row, line] of lines.entries()) {
    const inside = line.last ? cursor >= line.start && cursor <= line.end : cursor >= line.start && cursor < line.end;
    if (inside) return { row, column: cursor - line.start };
  }
  const lastRow = Math.max(0, lines.length - 1);
  return { row: lastRow, column: (lines[lastRow]?.end ?? 0) - (lines[lastRow]?.start ?? 0) };
}

function offsetAt(lines: readonly VisualLine[], row: number, column: number): number {
  const line = lines[row];
  if (!line) return 0;
  const longest = line.last ? line.end - line.start : Math.max(0, line.end - line.start - 1);
  return line.start + Math.min(column, longest);
}

function clamp(value: EditorValue): EditorValue {
  return { text: value.text, cursor: Math.max(0, Math.min(value.text.length, value.cursor)) };
}

/** What one key (or a pasted string) does to the paragraph. Unknown control keys change nothing. */
export function applyEditorKey(value: EditorValue, input: string, key: EditorKey, width: number): EditorValue {
  const { text, cursor } = clamp(value);
  if (key.leftArrow) return { text, cursor: Math.max(0, cursor - 1) };
  if (key.rightArrow) return { text, cursor: Math.min(text.length, cursor + 1) };
  if (key.upArrow || key.downArrow || key.home || key.end) {
    const lines = wrapOffsets(text, width);
    const { row, column } = cursorPosition(lines, cursor);
    if (key.home) return { text, cursor: lines[row]?.start ?? 0 };
    if (key.end) return { text, cursor: offsetAt(lines, row, Number.MAX_SAFE_INTEGER) };
    const target = key.upArrow ? row - 1 : row + 1;
    if (target < 0) return { text, cursor: 0 };
    if (target >= lines.length) return { text, cursor: text.length };
    return { text, cursor: offsetAt(lines, target, column) };
  }
  // Terminals send DEL (0x7f) for the backspace key, which Ink reports as `delete`.
  if (key.backspace || key.delete) {
    if (cursor === 0) return { text, cursor };
    return { text: text.slice(0, cursor - 1) + text.slice(cursor), cursor: cursor - 1 };
  }
  if (key.return) return { text: `${text.slice(0, cursor)}\n${text.slice(cursor)}`, cursor: cursor + 1 };
  if (key.ctrl || key.escape || key.tab) return { text, cursor };
  // Printable text (typed or pasted); control characters are dropped, CR becomes a newline.
  const insert = input.replace(/\r\n?/g, '\n').replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, '');
  if (!insert) return { text, cursor };
  return { text: text.slice(0, cursor) + insert + text.slice(cursor), cursor: cursor + insert.length };
}

/** The rows to draw: at most `height`, scrolled so the cursor's row is visible. */
export function editorWindow(
  value: EditorValue,
  width: number,
  height: number,
): { rows: string[]; cursorRow: number; cursorColumn: number; first: number; total: number } {
  const lines = wrapOffsets(value.text, width);
  const { row, column } = cursorPosition(lines, value.cursor);
  const visible = Math.max(1, height);
  const first = Math.max(0, Math.min(row - visible + 1 + Math.floor(visible / 3), lines.length - visible));
  const start = Math.max(0, Math.min(first, row));
  const rows = lines.slice(start, start + visible).map((line) => value.text.slice(line.start, line.end));
  return { rows, cursorRow: row - start, cursorColumn: column, first: start, total: lines.length };
}
