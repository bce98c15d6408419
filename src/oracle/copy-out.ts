// `COPY ... TO STDOUT` read straight off the connection: the CopyData payloads handed
// to a consumer as ranges of the socket's own buffers, in order, with back-pressure.
//
// pg-copy-streams (what the oracle used before) makes a Readable of the payloads,
// copying each socket chunk's payloads into a new buffer on the way; at a million rows
// that bookkeeping cost as much as the rows' rendering. This is the same hand-over
// (it is a pg "submittable", as pg-copy-streams is: it takes the socket's data from
// pg's parser for the COPY's duration and gives it back for the messages after it),
// without the stream and without the copies.
import type pg from 'pg';

export interface CopyConsumer {
  /** One CopyData payload (or part of a row: a row may span payloads): buf[start, end). */
  data(buf: Buffer, start: number, end: number): void;
  /** A promise while the consumer is behind: reading pauses until it settles (a rejection ends the read). */
  ready(): Promise<void> | undefined;
}

const CopyData = 0x64; // d
const CopyDone = 0x63; // c
const CopyOutResponse = 0x48; // H
const ErrorResponse = 0x45; // E
const NoticeResponse = 0x4e; // N
const ParameterStatus = 0x53; // S
const NotificationResponse = 0x41; // A

interface Connection {
  stream: NodeJS.ReadableStream & {
    listeners(event: 'data'): Array<(chunk: Buffer) => void>;
    removeListener(event: string, listener: (...args: never[]) => void): void;
    on(event: string, listener: (...args: never[]) => void): void;
    read(): Buffer | null;
    pause(): void;
    resume(): void;
  };
  query(text: string): void;
}

/** A COPY TO STDOUT statement for client.query(); `done` settles when the statement has completed. */
export class CopyOut {
  readonly done: Promise<void>;
  /** Rows the server says it sent (its CommandComplete). */
  rowCount = 0;
  private resolve!: () => void;
  private reject!: (error: Error) => void;
  private connection: Connection | undefined;
  private pgHandler: ((chunk: Buffer) => void) | undefined;
  /** Bytes of an unfinished message header (or non-data message) carried to the next chunk. */
  private pending: Buffer | null = null;
  /** Bytes of a CopyData payload still to come in the next chunks. */
  private payloadLeft = 0;
  private waiting = false;
  private copying = false;
  private failed = false;
  private readonly onReadable = () => this.pull();

  constructor(
    private readonly text: string,
    private readonly consumer: CopyConsumer,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A failure nobody awaits yet (the caller awaits `done` after query()) is not unhandled.
    this.done.catch(() => {});
  }

  submit(connection: pg.Connection): void {
    const con = connection as unknown as Connection;
    this.connection = con;
    const listeners = con.stream.listeners('data');
    if (listeners.length !== 1) throw new Error(`cannot read the COPY: the connection has ${listeners.length} data listeners`);
    this.pgHandler = listeners[0]!;
    con.stream.removeListener('data', this.pgHandler);
    con.stream.pause();
    this.copying = true;
    con.stream.on('readable', this.onReadable);
    con.query(this.text);
  }

  private pull(): void {
    const stream = this.connection?.stream;
    if (!stream || !this.copying || this.waiting) return;
    let chunk: Buffer | null;
    while (this.copying && !this.waiting && (chunk = stream.read() as Buffer | null) !== null) {
      try {
        this.parse(chunk);
      } catch (error) {
        this.fail(error as Error);
        return;
      }
      if (!this.copying) return;
      const behind = this.consumer.ready();
      if (behind) {
        this.waiting = true;
        behind.then(
          () => {
            this.waiting = false;
            this.pull();
          },
          (error: Error) => this.fail(error),
        );
      }
    }
  }

  /** Walks the messages of a chunk; a message cut at the chunk's end waits in `pending`. */
  private parse(input: Buffer): void {
    let chunk = input;
    let at = 0;
    if (this.payloadLeft > 0) {
      const take = Math.min(this.payloadLeft, chunk.length);
      this.consumer.data(chunk, 0, take);
      this.payloadLeft -= take;
      at = take;
    } else if (this.pending) {
      chunk = Buffer.concat([this.pending, input]);
      this.pending = null;
    }
    const length = chunk.length;
    while (at < length) {
      const code = chunk[at]!;
      if (code === ErrorResponse) {
        // pg reads the error (and what follows) itself, and tells us through handleError().
        this.detach(chunk.subarray(at));
        return;
      }
      if (at + 5 > length) break;
      const size = chunk.readUInt32BE(at + 1);
      const end = at + 1 + size;
      if (code === CopyData) {
        // A long row's payload is handed over in pieces rather than waited for whole.
        const payloadEnd = Math.min(end, length);
        if (payloadEnd > at + 5) this.consumer.data(chunk, at + 5, payloadEnd);
        if (end > length) {
          this.payloadLeft = end - length;
          return;
        }
        at = end;
        continue;
      }
      if (end > length) break;
      if (code === CopyDone) {
        this.detach(chunk.subarray(end));
        return;
      }
      if (code !== CopyOutResponse && code !== NoticeResponse && code !== ParameterStatus && code !== NotificationResponse) {
        // Anything else ends the COPY (CommandComplete without CopyDone): pg reads it.
        this.detach(chunk.subarray(at));
        return;
      }
      at = end;
    }
    if (at < length) this.pending = Buffer.from(chunk.subarray(at));
  }

  /** Gives the connection back to pg, with the bytes after the COPY for it to read. */
  private detach(rest: Buffer): void {
    const con = this.connection!;
    this.copying = false;
    con.stream.removeListener('readable', this.onReadable);
    con.stream.on('data', this.pgHandler!);
    if (rest.length > 0) this.pgHandler!(rest);
    process.nextTick(() => con.stream.resume());
  }

  /** The consumer failed: the read ends with its error (the caller's client.end() closes the socket). */
  private fail(error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.copying = false;
    this.connection?.stream.removeListener('readable', this.onReadable);
    this.reject(error);
  }

  // What pg calls on a submittable.
  handleError(error: Error): void {
    this.failed = true;
    this.reject(error);
  }

  handleCommandComplete(message: { text?: string }): void {
    const match = /COPY (\d+)/.exec(message?.text ?? '');
    if (match) this.rowCount = Number(match[1]);
  }

  handleReadyForQuery(): void {
    if (!this.failed) this.resolve();
  }
}
