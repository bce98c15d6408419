// A unified diff (`diff -u`) written as it is computed: lines arrive one at a time
// as same / removed / added, hunks with three lines of context are cut as soon as
// they close, and nothing but the open hunk is held (a very large hunk spills to a
// temporary file). Identical inputs give an empty diff, as `diff -u` does.
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

export type LineText = string | (() => string);

const text = (line: LineText): string => (typeof line === 'function' ? line() : line);

export interface UnifiedSink {
  write(chunk: string): void | Promise<void> | undefined;
}

const spillAfterLines = 20_000;

interface Hunk {
  oldStart: number;
  newStart: number;
  oldCount: number;
  newCount: number;
  lines: string[];
  /** Equal lines since the last change. */
  trailing: number;
  spill?: { file: string; fd: number; bytes: number };
}

export class UnifiedDiffWriter {
  private oldLine = 0;
  private newLine = 0;
  private before: LineText[] = [];
  private hunk: Hunk | undefined;
  private headerWritten = false;
  private pending: string[] = [];
  private pendingLength = 0;
  linesAdded = 0;
  linesRemoved = 0;

  constructor(
    private readonly sink: UnifiedSink,
    private readonly labels: [string, string],
    private readonly context = 3,
  ) {}

  same(line: LineText): void {
    this.oldLine += 1;
    this.newLine += 1;
    const hunk = this.hunk;
    if (!hunk) {
      this.before.push(line);
      if (this.before.length > this.context) this.before.shift();
      return;
    }
    hunk.trailing += 1;
    if (hunk.trailing > 2 * this.context) {
      // The gap is wider than two contexts: close this hunk, keep the last lines as the next one's context.
      const tail = hunk.lines.splice(hunk.lines.length - this.context, this.context);
      hunk.oldCount -= this.context;
      hunk.newCount -= this.context;
      this.closeHunk();
      this.before = tail.map((entry) => entry.slice(1));
      this.before.push(line);
      if (this.before.length > this.context) this.before.shift();
      return;
    }
    this.push(hunk, ` ${text(line)}`);
    hunk.oldCount += 1;
    hunk.newCount += 1;
  }

  /** Turns the lines kept as the next hunk's context into text now (their source is about to be reused). */
  settle(): void {
    this.before = this.before.map(text);
  }

  /** Is a hunk open (a change less than two contexts ago)? */
  get inHunk(): boolean {
    return this.hunk !== undefined;
  }

  /**
   * `count` equal lines at once, none of which can be context: the caller feeds the lines just
   * before the next change through same() (and skips only where no hunk is open).
   */
  skipSame(count: number): void {
    if (this.hunk) throw new Error('skipSame inside a hunk');
    this.oldLine += count;
    this.newLine += count;
    this.before = [];
  }

  removed(line: LineText): void {
    const hunk = this.open(this.oldLine + 1, this.newLine + 1);
    this.oldLine += 1;
    this.push(hunk, `-${text(line)}`);
    hunk.oldCount += 1;
    hunk.trailing = 0;
    this.linesRemoved += 1;
  }

  added(line: LineText): void {
    const hunk = this.open(this.oldLine + 1, this.newLine + 1);
    this.newLine += 1;
    this.push(hunk, `+${text(line)}`);
    hunk.newCount += 1;
    hunk.trailing = 0;
    this.linesAdded += 1;
  }

  /** Output waiting to be written is large: the caller should await flush(). */
  get shouldFlush(): boolean {
    return this.pendingLength > 1 << 20;
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingLength = 0;
    await this.sink.write(chunk);
  }

  async end(): Promise<void> {
    if (this.hunk) {
      const hunk = this.hunk;
      const extra = Math.max(0, hunk.trailing - this.context);
      if (extra > 0) {
        hunk.lines.splice(hunk.lines.length - extra, extra);
        hunk.oldCount -= extra;
        hunk.newCount -= extra;
      }
      this.closeHunk();
    }
    await this.flush();
  }

  private open(oldNext: number, newNext: number): Hunk {
    if (this.hunk) return this.hunk;
    const lines = this.before.map((line) => ` ${text(line)}`);
    this.hunk = {
      oldStart: oldNext - lines.length,
      newStart: newNext - lines.length,
      oldCount: lines.length,
      newCount: lines.length,
      lines,
      trailing: 0,
    };
    this.before = [];
    return this.hunk;
  }

  private push(hunk: Hunk, line: string): void {
    hunk.lines.push(line);
    // Keep up to 2 * context lines in memory at the end (they may be cut when the hunk closes).
    if (hunk.lines.length > spillAfterLines && hunk.trailing === 0) {
      if (!hunk.spill) {
        const file = path.join(tmpdir(), `sor-oracle-hunk-${randomBytes(6).toString('hex')}`);
        hunk.spill = { file, fd: openSync(file, 'w'), bytes: 0 };
      }
      const chunk = `${hunk.lines.join('\n')}\n`;
      hunk.spill.bytes += writeSync(hunk.spill.fd, chunk);
      hunk.lines = [];
    }
  }

  private emit(chunk: string): void {
    this.pending.push(chunk);
    this.pendingLength += chunk.length;
  }

  private closeHunk(): void {
    const hunk = this.hunk!;
    this.hunk = undefined;
    if (!this.headerWritten) {
      this.emit(`--- ${this.labels[0]}\n+++ ${this.labels[1]}\n`);
      this.headerWritten = true;
    }
    this.emit(`@@ -${range(hunk.oldStart, hunk.oldCount)} +${range(hunk.newStart, hunk.newCount)} @@\n`);
    if (hunk.spill) {
      const { fd, file } = hunk.spill;
      closeSync(fd);
      const reader = openSync(file, 'r');
      try {
        const buffer = Buffer.alloc(1 << 20);
        for (;;) {
          const read = readSync(reader, buffer, 0, buffer.length, null);
          if (read === 0) break;
          this.emit(buffer.subarray(0, read).toString('utf8'));
        }
      } finally {
        closeSync(reader);
        rmSync(file, { force: true });
      }
    }
    if (hunk.lines.length > 0) this.emit(`${hunk.lines.join('\n')}\n`);
  }
}

/** GNU diff's range: `start,count`, `start` alone for one line, the line before for none. */
function range(start: number, count: number): string {
  if (count === 0) return `${start - 1},0`;
  if (count === 1) return `${start}`;
  return `${start},${count}`;
}

/** The shortest edit between two short line lists (common prefix and suffix trimmed, then LCS). */
export function lineOps(a: readonly string[], b: readonly string[], writer: UnifiedDiffWriter): void {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start += 1;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA -= 1;
    endB -= 1;
  }
  for (let index = 0; index < start; index += 1) writer.same(a[index]!);
  const n = endA - start;
  const m = endB - start;
  if (n * m > 4_000_000 || n === 0 || m === 0) {
    for (let index = start; index < endA; index += 1) writer.removed(a[index]!);
    for (let index = start; index < endB; index += 1) writer.added(b[index]!);
  } else {
    // lengths[i][j]: LCS of a[start+i..endA) and b[start+j..endB).
    const width = m + 1;
    const lengths = new Uint32Array((n + 1) * width);
    for (let i = n - 1; i >= 0; i -= 1) {
      for (let j = m - 1; j >= 0; j -= 1) {
        lengths[i * width + j] =
          a[start + i] === b[start + j]
            ? lengths[(i + 1) * width + j + 1]! + 1
            : Math.max(lengths[(i + 1) * width + j]!, lengths[i * width + j + 1]!);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (a[start + i] === b[start + j]) {
        writer.same(a[start + i]!);
        i += 1;
        j += 1;
      } else if (lengths[(i + 1) * width + j]! >= lengths[i * width + j + 1]!) {
        writer.removed(a[start + i]!);
        i += 1;
      } else {
        writer.added(b[start + j]!);
        j += 1;
      }
    }
    for (; i < n; i += 1) writer.removed(a[start + i]!);
    for (; j < m; j += 1) writer.added(b[start + j]!);
  }
  for (let index = endA; index < a.length; index += 1) writer.same(a[index]!);
}
