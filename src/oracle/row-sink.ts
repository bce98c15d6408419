// Where lines go while a table is read: memory while they are few, a file once they are many.
// A RowSink holds a table's COPY rows; a LineSpool the key lines the encoder writes
// (copy-encoder.ts). Nothing here ever holds both sides of a large table at once.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ByteOutput } from './byte-output.js';
import { BufferedFile } from './document-writer.js';
import type { RowStore } from './types.js';

type LineStore = Extract<RowStore, { kind: 'memory' | 'file' }>;

/**
 * What a RowSink and a LineSpool share: the pieces held in memory (`chunks`), and the file they
 * move to once there are more than `threshold` lines, under `workDir` (or a temporary folder of its own).
 */
abstract class SpillingLines {
  protected chunks: Buffer[] = [];
  protected file: BufferedFile | undefined;
  protected opening: Promise<void> | undefined;
  protected filePath: string | undefined;
  private ownedDir: string | undefined;

  constructor(
    protected readonly threshold: number,
    private readonly workDir: string | undefined,
    private readonly label: string,
    /** The file name's extension. */
    private readonly suffix: string,
  ) {}

  /** A promise while the file is behind (or being opened). */
  ready(): Promise<void> | undefined {
    return this.opening ?? this.file?.ready();
  }

  /** Creates the file and moves the chunks into it; the caller sets `file` (nothing awaited in between). */
  protected async createFile(): Promise<BufferedFile> {
    let dir = this.workDir;
    if (!dir) {
      dir = await mkdtemp(path.join(tmpdir(), 'sor-oracle-'));
      this.ownedDir = dir;
    }
    this.filePath = path.join(dir, `${this.label.replace(/[^A-Za-z0-9_.-]/g, '_')}.${randomBytes(4).toString('hex')}.${this.suffix}`);
    return BufferedFile.create(this.filePath);
  }

  /** Appends the chunks to the file, in order. */
  protected moveChunks(file: BufferedFile): void {
    for (const piece of this.chunks) {
      file.reserve(piece.length);
      file.pos += piece.copy(file.buf, file.pos);
    }
    this.chunks = [];
  }

  /** The store, once the last lines are in: the file (drained and closed) of `count` lines, or the chunks' lines (`count` of them, or as many as they are). */
  protected async store(count: number | undefined): Promise<LineStore> {
    if (this.file) {
      await this.file.drain();
      await this.file.close();
      return { kind: 'file', path: this.filePath!, count: count!, ...(this.ownedDir ? { ownedDir: this.ownedDir } : {}) };
    }
    const text = Buffer.concat(this.chunks).toString('utf8');
    this.chunks = [];
    const lines = text.length === 0 ? [] : text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return { kind: 'memory', lines, count: count ?? lines.length };
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
 * Where rows go while they are read: memory up to `threshold` lines, then a file. Takes the
 * COPY payloads as ranges of the connection's buffers (copy-out.ts), copying them into its own.
 */
export class RowSink extends SpillingLines {
  private buffer: Buffer = Buffer.allocUnsafe(1 << 16);
  private used = 0;
  private lines = 0;
  /** Where the newlines of the file's current buffer have been counted up to. */
  private counted = 0;

  constructor(threshold: number, workDir: string | undefined, label: string) {
    super(threshold, workDir, label, 'rows');
  }

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

  private async openFile(): Promise<void> {
    const file = await this.createFile();
    // Rows that came while the file was being opened are in `buffer`: they follow the sealed ones.
    this.moveChunks(file);
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
    if (this.file) this.lines += countLines(this.file.buf.subarray(this.counted, this.file.pos));
    return this.store(this.file ? this.lines : undefined);
  }
}

/**
 * Lines written by an encoder (the key columns' text of each row, copy-encoder.ts): a ByteOutput
 * held in memory up to `threshold` lines (as a RowSink holds rows), spilled to a file beyond.
 */
export class LineSpool extends SpillingLines implements ByteOutput {
  buf: Buffer = Buffer.allocUnsafe(1 << 16);
  pos = 0;

  constructor(
    workDir: string | undefined,
    label: string,
    threshold: number,
    /** How many lines have been written so far (the encoder counts them). */
    private readonly lines: () => number,
  ) {
    super(threshold, workDir, label, 'keys');
  }

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
    const file = await this.createFile();
    this.moveChunks(file);
    this.file = file;
    this.opening = undefined;
  }

  /** The lines as a store: `count` of them. */
  async finish(count: number): Promise<LineStore> {
    this.seal();
    // The last lines decide too: more than `threshold` in all, and they go to the file.
    if (count > this.threshold && !this.opening && !this.file) this.opening = this.openFile();
    if (this.opening) await this.opening;
    this.seal();
    return this.store(count);
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
