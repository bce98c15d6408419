// Writing a snapshot's two documents (before.json and before.normalised.json) while its
// rows stream in, each to a temporary file renamed into place at the end (atomic).
//
// A document names each table's row count before its rows (`"count"` sorts before
// `"rows"`), and the raw one its taken_at before any table, neither known until the
// rows are read. So the lines in front of a table's rows are written with the count
// the table is likely to have (the planner's estimate, or the before-snapshot's count)
// and checked when the snapshot is done: a line whose true text has the same length is
// overwritten in place (the common case: the count did not change its number of
// digits, taken_at never does); otherwise the file is rewritten once, the rows copied
// from the first one. Either way the file is exactly what render.ts would write.
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import type { ByteOutput } from './byte-output.js';
import type { DocumentPart } from './render.js';

const chunkSize = 1 << 20;
const maxInFlight = 4;

/** A file written through big buffers with positional writes in the background, at most a few at a time. */
export class BufferedFile implements ByteOutput {
  buf: Buffer = Buffer.allocUnsafe(chunkSize);
  pos = 0;
  /** Bytes handed to the file so far (the file offset of buf[0]). */
  private offset = 0;
  private readonly inFlight: Array<Promise<void>> = [];
  private readonly spare: Buffer[] = [];
  private failure: Error | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async create(file: string): Promise<BufferedFile> {
    // Read too: a document whose counts changed their width is copied from it (StreamedDocument.rewrite).
    return new BufferedFile(file, await open(file, 'wx+'));
  }

  /** The offset the next byte lands at. */
  get position(): number {
    return this.offset + this.pos;
  }

  reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    this.flush();
    if (bytes > this.buf.length) this.buf = Buffer.allocUnsafe(bytes);
  }

  writeText(text: string): void {
    const bytes = Buffer.byteLength(text);
    this.reserve(bytes);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** Hands the buffer to the file and takes a fresh one. */
  flush(): void {
    if (this.pos === 0) return;
    const buf = this.buf;
    const length = this.pos;
    const at = this.offset;
    this.offset += length;
    this.pos = 0;
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(chunkSize);
    const write = this.handle.write(buf, 0, length, at).then(
      () => {
        if (buf.length === chunkSize) this.spare.push(buf);
      },
      (error: Error) => {
        this.failure ??= error;
      },
    );
    this.inFlight.push(write);
    write.then(() => this.inFlight.splice(this.inFlight.indexOf(write), 1));
  }

  /** A promise when too much is still being written (the caller should wait), else undefined. */
  ready(): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inFlight.length < maxInFlight) return undefined;
    return this.inFlight[0]!.then(() => this.ready());
  }

  /** Everything written out. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inFlight.length > 0) await Promise.all([...this.inFlight]);
    if (this.failure) throw this.failure;
  }

  async writeAt(text: string, at: number): Promise<void> {
    const bytes = Buffer.from(text, 'utf8');
    await this.handle.write(bytes, 0, bytes.length, at);
  }

  async read(into: Buffer, length: number, at: number): Promise<number> {
    return (await this.handle.read(into, 0, length, at)).bytesRead;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

type Written = { kind: 'lines'; offset: number; text: string } | { kind: 'rows'; index: number; offset: number; length: number };

const linesText = (part: Extract<DocumentPart, { kind: 'lines' }>) => `${part.lines.join('\n')}\n`;

/**
 * One document written as its parts come: fixed lines, then a table's rows (written by the
 * caller into `file`), and so on; finish() checks the lines against the final document.
 */
export class StreamedDocument {
  private readonly written: Written[] = [];
  private rowsStart = -1;

  private constructor(
    readonly target: string,
    readonly file: BufferedFile,
  ) {}

  static async create(target: string): Promise<StreamedDocument> {
    const temporary = `${target}.${randomBytes(4).toString('hex')}.tmp`;
    return new StreamedDocument(target, await BufferedFile.create(temporary));
  }

  /**
   * Writes the lines in front of table `index`'s rows as `parts` (the document rendered with what
   * is known now) has them, and returns the rows' indentation.
   */
  beginRows(parts: DocumentPart[], index: number): string {
    const at = parts.findIndex((part) => part.kind === 'rows' && part.index === index);
    const lines = parts[at - 1];
    const rows = parts[at];
    if (at !== this.written.length + 1 || lines?.kind !== 'lines' || rows?.kind !== 'rows') {
      throw new Error(`the document's parts do not line up at table ${index}`);
    }
    const text = linesText(lines);
    this.written.push({ kind: 'lines', offset: this.file.position, text });
    this.file.writeText(text);
    this.rowsStart = this.file.position;
    return rows.indent;
  }

  endRows(index: number): void {
    this.written.push({ kind: 'rows', index, offset: this.rowsStart, length: this.file.position - this.rowsStart });
    this.rowsStart = -1;
  }

  /**
   * Writes the last lines, puts the final text of every line in place, and renames the file into
   * place. Returns where each table's rows ended up in it (by table index): bytes start to end.
   */
  async finish(parts: DocumentPart[]): Promise<Map<number, { start: number; end: number }>> {
    const last = parts[parts.length - 1];
    if (parts.length !== this.written.length + 1 || last?.kind !== 'lines') {
      throw new Error('the document does not end as it was written');
    }
    const text = linesText(last);
    this.written.push({ kind: 'lines', offset: this.file.position, text });
    this.file.writeText(text);
    await this.file.drain();
    const patches: Array<{ text: string; offset: number }> = [];
    let sameLength = true;
    for (const [index, part] of parts.entries()) {
      const written = this.written[index]!;
      if (part.kind === 'rows') {
        if (written.kind !== 'rows' || written.index !== part.index) throw new Error('the document\'s rows moved');
        continue;
      }
      if (written.kind !== 'lines') throw new Error('the document\'s lines moved');
      const final = linesText(part);
      if (final === written.text) continue;
      if (Buffer.byteLength(final) !== Buffer.byteLength(written.text)) sameLength = false;
      patches.push({ text: final, offset: written.offset });
    }
    if (sameLength) {
      for (const patch of patches) await this.file.writeAt(patch.text, patch.offset);
      await this.file.close();
      await rename(this.file.path, this.target);
      const ranges = new Map<number, { start: number; end: number }>();
      for (const written of this.written) {
        if (written.kind === 'rows') ranges.set(written.index, { start: written.offset, end: written.offset + written.length });
      }
      return ranges;
    }
    return this.rewrite(parts);
  }

  /** A count changed its number of digits: the document again, its rows copied from the first file. */
  private async rewrite(parts: DocumentPart[]): Promise<Map<number, { start: number; end: number }>> {
    const again = await BufferedFile.create(`${this.target}.${randomBytes(4).toString('hex')}.tmp`);
    const ranges = new Map<number, { start: number; end: number }>();
    try {
      for (const [index, part] of parts.entries()) {
        if (part.kind === 'lines') {
          again.writeText(linesText(part));
          continue;
        }
        const written = this.written[index] as Extract<Written, { kind: 'rows' }>;
        ranges.set(written.index, { start: again.position, end: again.position + written.length });
        for (let done = 0; done < written.length; ) {
          const length = Math.min(chunkSize, written.length - done);
          again.reserve(length);
          const read = await this.file.read(again.buf.subarray(again.pos), length, written.offset + done);
          if (read <= 0) throw new Error(`${this.file.path} ended early`);
          again.pos += read;
          done += read;
          await again.ready();
        }
      }
      await again.drain();
      await again.close();
    } catch (error) {
      await again.close().catch(() => {});
      await rm(again.path, { force: true });
      throw error;
    }
    await this.file.close();
    await rm(this.file.path, { force: true });
    await rename(again.path, this.target);
    return ranges;
  }

  async abort(): Promise<void> {
    await this.file.drain().catch(() => {});
    await this.file.close().catch(() => {});
    await rm(this.file.path, { force: true });
  }
}
