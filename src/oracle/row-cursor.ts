// Reading a row store back in order, line by line, for the diff's merge (diff-sides.ts).
import { open, type FileHandle } from 'node:fs/promises';
import type { RowStore } from './types.js';

/**
 * Reads a store's lines in order for the merge. A file is read in big pieces and its lines are
 * compared as bytes where they lie (most rows of two snapshots are the same bytes): a line is only
 * decoded into a string when it differs or is shown.
 */
export interface RowCursor {
  /** Makes the current line available: true, false at the end, or a promise of either. */
  load(): boolean | Promise<boolean>;
  /** The current line. */
  text(): string;
  /** Is the current line the very same text as the other cursor's? */
  sameAs(other: RowCursor): boolean;
  /** The current line, decoded only when called (still valid after advance()). */
  capture(): () => string;
  advance(): void;
  /** Moves past `lines` lines (the current one first): for long runs that need no look. */
  skip(lines: number): Promise<void> | undefined;
  close(): Promise<void>;
}

class MemoryCursor implements RowCursor {
  private position = 0;
  constructor(private readonly lines: string[]) {}
  load(): boolean {
    return this.position < this.lines.length;
  }
  text(): string {
    return this.lines[this.position]!;
  }
  sameAs(other: RowCursor): boolean {
    return this.text() === other.text();
  }
  capture(): () => string {
    const line = this.text();
    return () => line;
  }
  advance(): void {
    this.position += 1;
  }
  skip(lines: number): undefined {
    this.position += lines;
    return undefined;
  }
  async close(): Promise<void> {}
}

const readSize = 1 << 20;

class FileCursor implements RowCursor {
  buffer: Buffer = Buffer.alloc(0);
  start = 0;
  end = -1;
  private handle: FileHandle | undefined;
  private eof = false;

  constructor(private readonly file: string) {}

  load(): boolean | Promise<boolean> {
    if (this.end >= 0) return true;
    const newline = this.buffer.indexOf(10, this.start);
    if (newline >= 0) {
      this.end = newline;
      return true;
    }
    return this.fill();
  }

  private async fill(): Promise<boolean> {
    for (;;) {
      if (this.eof) {
        if (this.start < this.buffer.length) {
          this.end = this.buffer.length;
          return true;
        }
        return false;
      }
      this.handle ??= await open(this.file, 'r');
      const piece = Buffer.allocUnsafe(readSize);
      const { bytesRead } = await this.handle.read(piece, 0, readSize, null);
      if (bytesRead === 0) this.eof = true;
      const rest = this.buffer.subarray(this.start);
      this.buffer = rest.length > 0 ? Buffer.concat([rest, piece.subarray(0, bytesRead)]) : piece.subarray(0, bytesRead);
      this.start = 0;
      const newline = this.buffer.indexOf(10, 0);
      if (newline >= 0) {
        this.end = newline;
        return true;
      }
    }
  }

  text(): string {
    return this.buffer.toString('utf8', this.start, this.end);
  }

  sameAs(other: RowCursor): boolean {
    if (other instanceof FileCursor) {
      return this.end - this.start === other.end - other.start && this.buffer.compare(other.buffer, other.start, other.end, this.start, this.end) === 0;
    }
    return this.text() === other.text();
  }

  capture(): () => string {
    // A later fill() makes a new buffer and never writes into this one.
    const { buffer, start, end } = this;
    return () => buffer.toString('utf8', start, end);
  }

  advance(): void {
    this.start = this.end + 1;
    this.end = -1;
  }

  async skip(lines: number): Promise<void> {
    let left = lines;
    while (left > 0) {
      if (this.end >= 0) {
        this.advance();
        left -= 1;
        continue;
      }
      let at = this.start;
      for (; left > 0; left -= 1) {
        const newline = this.buffer.indexOf(10, at);
        if (newline < 0) break;
        at = newline + 1;
      }
      this.start = at;
      if (left > 0 && !(await this.fill())) throw new Error(`${this.file} has fewer lines than were skipped`);
    }
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

/** A cursor over the COPY lines of a store (a `normalised` store's are its keys only: see diff.ts). */
export function rowCursor(store: RowStore | null): RowCursor {
  if (!store) return new MemoryCursor([]);
  if (store.kind === 'normalised') throw new Error('the rows of a snapshot that wrote its files are read from its normalised file');
  return store.kind === 'memory' ? new MemoryCursor(store.lines) : new FileCursor(store.path);
}
