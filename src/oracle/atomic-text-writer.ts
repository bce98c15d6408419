import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';

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
