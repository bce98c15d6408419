// Where the encoder (copy-encoder.ts) writes: a growable buffer its owner flushes to a file
// (document-writer.ts, row-sink.ts), and for each of the two documents the separator its rows take.
import { copyBytes, viewOf } from './copy-bytes.js';

/** A growable output buffer that hands full buffers to its file (see document-writer.ts). */
export interface ByteOutput {
  buf: Buffer;
  pos: number;
  /** Makes room for `bytes` more at `pos` (flushing what is there, or growing). */
  reserve(bytes: number): void;
}

/** One document's output, with the separator its rows take and a DataView of its current buffer. */
export class DocumentOutput {
  /** `,\n` and the indent of a row line: all of it before a row, the indent alone before the first. */
  readonly next: Buffer;
  private readonly nextView: DataView;
  private seen: Uint8Array | null = null;
  /** A view of out.buf, to move four bytes at a time (current after separator()). */
  view!: DataView;

  constructor(
    readonly out: ByteOutput,
    indent: string,
  ) {
    this.next = Buffer.concat([Buffer.from(',\n'), Buffer.from(indent, 'utf8')]);
    this.nextView = viewOf(this.next);
  }

  /** Writes what goes before a row (room reserved): its indent, after `,\n` for all but the first. */
  separator(first: boolean): void {
    const out = this.out;
    if (out.buf !== this.seen) {
      this.seen = out.buf;
      this.view = viewOf(out.buf);
    }
    out.pos = copyBytes(this.next, this.nextView, first ? 2 : 0, this.next.length, out.buf, this.view, out.pos);
  }
}
