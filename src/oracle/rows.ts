// Rows as lines: a table's rows are COPY text lines, held in memory while they
// are few and streamed to a file when they are many, then read back in batches.
// Nothing here ever holds both sides of a large table at once.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import type { ByteOutput } from './copy-encoder.js';
import { BufferedFile } from './document-writer.js';
import type { RowStore } from './types.js';

/** Splits a COPY text-format line into its fields (`\N` is null), undoing COPY's backslash escapes. */
export function splitCopyLine(line: string): Array<string | null> {
  const raw = line.split('\t');
  const fields: Array<string | null> = new Array(raw.length);
  for (let index = 0; index < raw.length; index += 1) {
    const field = raw[index]!;
    fields[index] = field.includes('\\') ? unescapeCopy(field) : field;
  }
  return fields;
}

const simpleEscapes: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

export function unescapeCopy(field: string): string | null {
  if (field === '\\N') return null;
  let out = '';
  for (let index = 0; index < field.length; index += 1) {
    const char = field[index]!;
    if (char !== '\\' || index === field.length - 1) {
      out += char;
      continue;
    }
    const next = field[index + 1]!;
    if (next in simpleEscapes) {
      out += simpleEscapes[next];
      index += 1;
    } else if (next >= '0' && next <= '7') {
      const digits = /^[0-7]{1,3}/.exec(field.slice(index + 1))![0];
      out += String.fromCharCode(parseInt(digits, 8));
      index += digits.length;
    } else if (next === 'x' && /^[0-9a-fA-F]/.test(field[index + 2] ?? '')) {
      const digits = /^[0-9a-fA-F]{1,2}/.exec(field.slice(index + 2))![0];
      out += String.fromCharCode(parseInt(digits, 16));
      index += 1 + digits.length;
    } else {
      out += next;
      index += 1;
    }
  }
  return out;
}

/**
 * Where rows go while they are read: memory up to `threshold` lines, then a file. Takes the
 * COPY payloads as ranges of the connection's buffers (copy-out.ts), copying them into its own.
 */
export class RowSink {
  private chunks: Buffer[] = [];
  private buffer: Buffer = Buffer.allocUnsafe(1 << 16);
  private used = 0;
  private lines = 0;
  private file: BufferedFile | undefined;
  private filePath: string | undefined;
  private ownedDir: string | undefined;
  private opening: Promise<void> | undefined;
  /** Where the newlines of the file's current buffer have been counted up to. */
  private counted = 0;

  constructor(
    private readonly threshold: number,
    private readonly workDir: string | undefined,
    private readonly label: string,
  ) {}

  get count(): number {
    return this.lines;
  }

  get streamed(): boolean {
    return this.filePath !== undefined;
  }

  /** Appends buf[start, end). */
  data(buf: Buffer, start: number, end: number): void {
    const length = end - start;
    if (this.file) {
      const file = this.file;
      if (file.pos + length > file.buf.length) {
        this.lines += countLines(file.buf.subarray(this.counted, file.pos));
        file.reserve(length);
        this.counted = 0;
      }
      file.pos += buf.copy(file.buf, file.pos, start, end);
      return;
    }
    if (this.used + length > this.buffer.length) this.seal(length);
    this.used += buf.copy(this.buffer, this.used, start, end);
  }

  /** Counts the lines of the buffer so far and sets it aside (in memory, or in the file once there are many). */
  private seal(next = 0): void {
    if (this.used > 0) {
      const piece = this.buffer.subarray(0, this.used);
      this.lines += countLines(piece);
      this.chunks.push(piece);
    }
    this.buffer = Buffer.allocUnsafe(Math.max(1 << 16, next));
    this.used = 0;
    if (this.lines > this.threshold && !this.opening && !this.file) this.opening = this.openFile();
  }

  /** A promise while the file is behind (or being opened). */
  ready(): Promise<void> | undefined {
    if (this.opening) return this.opening;
    return this.file?.ready();
  }

  private async openFile(): Promise<void> {
    let dir = this.workDir;
    if (!dir) {
      dir = await mkdtemp(path.join(tmpdir(), 'sor-oracle-'));
      this.ownedDir = dir;
    }
    this.filePath = path.join(dir, `${this.label.replace(/[^A-Za-z0-9_.-]/g, '_')}.${randomBytes(4).toString('hex')}.rows`);
    const file = await BufferedFile.create(this.filePath);
    // Rows that came while the file was being opened are in `buffer`: they follow the sealed ones.
    for (const piece of this.chunks) {
      file.reserve(piece.length);
      file.pos += piece.copy(file.buf, file.pos);
    }
    this.chunks = [];
    const waiting = this.buffer.subarray(0, this.used);
    file.reserve(waiting.length);
    file.pos += waiting.copy(file.buf, file.pos);
    this.lines += countLines(waiting);
    this.used = 0;
    this.counted = file.pos;
    this.file = file;
    this.opening = undefined;
  }

  async finish(): Promise<RowStore> {
    // The last lines decide too: more than `threshold` in all, and the rows go to the file.
    this.seal();
    if (this.opening) await this.opening;
    if (this.file) {
      const file = this.file;
      this.lines += countLines(file.buf.subarray(this.counted, file.pos));
      await file.drain();
      await file.close();
      return { kind: 'file', path: this.filePath!, count: this.lines, ...(this.ownedDir ? { ownedDir: this.ownedDir } : {}) };
    }
    const text = Buffer.concat(this.chunks).toString('utf8');
    this.chunks = [];
    const lines = text.length === 0 ? [] : text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return { kind: 'memory', lines, count: lines.length };
  }

  /** Removes what was written so far (after a failed read). */
  async discard(): Promise<void> {
    this.chunks = [];
    if (this.opening) await this.opening.catch(() => {});
    if (this.file) {
      await this.file.drain().catch(() => {});
      await this.file.close().catch(() => {});
    }
    if (this.filePath) await rm(this.filePath, { force: true });
    if (this.ownedDir) await rm(this.ownedDir, { recursive: true, force: true });
  }
}

/**
 * Lines written by an encoder (the key columns' text of each row, copy-encoder.ts): a ByteOutput
 * held in memory up to `threshold` lines (as a RowSink holds rows), spilled to a file beyond.
 */
export class LineSpool implements ByteOutput {
  buf: Buffer = Buffer.allocUnsafe(1 << 16);
  pos = 0;
  private chunks: Buffer[] = [];
  private file: BufferedFile | undefined;
  private filePath: string | undefined;
  private ownedDir: string | undefined;
  private opening: Promise<void> | undefined;

  constructor(
    private readonly workDir: string | undefined,
    private readonly label: string,
    private readonly threshold: number,
    /** How many lines have been written so far (the encoder counts them). */
    private readonly lines: () => number,
  ) {}

  reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    this.seal();
    if (bytes > this.buf.length) this.buf = Buffer.allocUnsafe(bytes);
  }

  private seal(): void {
    if (this.pos === 0) return;
    if (this.file) {
      this.file.reserve(this.pos);
      this.file.pos += this.buf.copy(this.file.buf, this.file.pos, 0, this.pos);
      this.pos = 0;
      return;
    }
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.pos = 0;
    if (this.lines() > this.threshold && !this.opening) this.opening = this.openFile();
  }

  private async openFile(): Promise<void> {
    let dir = this.workDir;
    if (!dir) {
      dir = await mkdtemp(path.join(tmpdir(), 'sor-oracle-'));
      this.ownedDir = dir;
    }
    this.filePath = path.join(dir, `${this.label.replace(/[^A-Za-z0-9_.-]/g, '_')}.${randomBytes(4).toString('hex')}.keys`);
    const file = await BufferedFile.create(this.filePath);
    for (const piece of this.chunks) {
      file.reserve(piece.length);
      file.pos += piece.copy(file.buf, file.pos);
    }
    this.chunks = [];
    this.file = file;
    this.opening = undefined;
  }

  /** A promise while the file is behind (or being opened). */
  ready(): Promise<void> | undefined {
    return this.opening ?? this.file?.ready();
  }

  /** The lines as a store: `count` of them. */
  async finish(count: number): Promise<Extract<RowStore, { kind: 'memory' | 'file' }>> {
    this.seal();
    // The last lines decide too: more than `threshold` in all, and they go to the file.
    if (count > this.threshold && !this.opening && !this.file) this.opening = this.openFile();
    if (this.opening) await this.opening;
    this.seal();
    if (this.file) {
      await this.file.drain();
      await this.file.close();
      return { kind: 'file', path: this.filePath!, count, ...(this.ownedDir ? { ownedDir: this.ownedDir } : {}) };
    }
    const text = Buffer.concat(this.chunks).toString('utf8');
    this.chunks = [];
    const lines = text.length === 0 ? [] : text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return { kind: 'memory', lines, count };
  }

  async discard(): Promise<void> {
    this.chunks = [];
    if (this.opening) await this.opening.catch(() => {});
    if (this.file) {
      await this.file.drain().catch(() => {});
      await this.file.close().catch(() => {});
    }
    if (this.filePath) await rm(this.filePath, { force: true });
    if (this.ownedDir) await rm(this.ownedDir, { recursive: true, force: true });
  }
}

function countLines(buf: Buffer): number {
  let lines = 0;
  let at = buf.indexOf(10);
  while (at !== -1) {
    lines += 1;
    at = buf.indexOf(10, at + 1);
  }
  return lines;
}

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

async function* fileBatches(file: string): AsyncGenerator<string[]> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  const decoder = new StringDecoder('utf8');
  let rest = '';
  try {
    for await (const chunk of stream) {
      const text = rest + decoder.write(chunk as Buffer);
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      if (lines.length > 0) yield lines;
    }
    rest += decoder.end();
    if (rest.length > 0) yield [rest];
  } finally {
    stream.destroy();
  }
}

/** Iterates every line of a store (for writers that need no look-ahead). */
export async function* storeLines(store: RowStore | null): AsyncGenerator<string[]> {
  if (!store) return;
  if (store.kind === 'normalised') {
    throw new Error(`this snapshot wrote its files as it read its rows (${store.file}): they are the rendering`);
  }
  if (store.kind === 'memory') {
    if (store.lines.length > 0) yield store.lines;
    return;
  }
  yield* fileBatches(store.path);
}

export async function releaseStore(store: RowStore | null): Promise<void> {
  if (store?.kind === 'normalised') return releaseStore(store.keys);
  if (!store || store.kind !== 'file') return;
  await rm(store.path, { force: true });
  if (store.ownedDir) await rm(store.ownedDir, { recursive: true, force: true });
}

/**
 * Writes a text file in big buffered pieces with back-pressure, to a temporary name
 * renamed into place at commit(): a reader never sees half an evidence file.
 */
export class AtomicTextWriter {
  private readonly temporary: string;
  private readonly stream: WriteStream;
  private failed: Error | undefined;

  constructor(readonly file: string) {
    this.temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    this.stream = createWriteStream(this.temporary, { highWaterMark: 1 << 20 });
    this.stream.on('error', (error) => {
      this.failed = error;
    });
  }

  /** Appends text; the promise (when there is one) resolves once the stream can take more. */
  write(text: string): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    if (text.length === 0 || this.stream.write(text)) return undefined;
    return once(this.stream, 'drain').then(() => undefined);
  }

  async commit(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      if (this.failed) reject(this.failed);
      this.stream.end(() => (this.failed ? reject(this.failed) : resolve()));
    });
    await rename(this.temporary, this.file);
  }

  async abort(): Promise<void> {
    this.stream.destroy();
    await rm(this.temporary, { force: true });
  }
}
