// Sizes shared by the screens (which draw) and the controller (which moves the
// editor's cursor by visual lines and scrolls): both must agree on them.
import type { ConsoleState } from '../store.js';
import { footerEntries } from './keys.js';

export const minColumns = 80;
export const minRows = 24;

/** Columns the decision paragraph wraps to. */
export function editorWidth(columns: number): number {
  return Math.max(20, columns - 4);
}

export function tooSmall(terminal: { columns: number; rows: number }): boolean {
  return terminal.columns < minColumns || terminal.rows < minRows;
}

export const maxFooterRows = 2;

export type FooterEntry = { keys: string; label: string };

/** The footer's rows for a width: entries are never split across rows. */
export function packFooter(entries: FooterEntry[], width: number): FooterEntry[][] {
  const rows: FooterEntry[][] = [[]];
  let used = 0;
  for (const entry of entries) {
    const size = entry.keys.length + 1 + entry.label.length + 3;
    const row = rows[rows.length - 1]!;
    if (row.length > 0 && used + size > width) {
      if (rows.length === maxFooterRows) break;
      rows.push([entry]);
      used = size;
    } else {
      row.push(entry);
      used += size;
    }
  }
  return rows;
}

export function footerRows(state: ConsoleState): FooterEntry[][] {
  return packFooter(footerEntries(state), state.terminal.columns);
}

/**
 * Rows the current screen may use: the live region (screen + rule + status row + footer)
 * stays shorter than the terminal, or Ink clears the whole screen on every frame.
 */
export function screenHeight(state: ConsoleState): number {
  return Math.max(1, state.terminal.rows - 1 - 2 - footerRows(state).length);
}
