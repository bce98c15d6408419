// A snapshot's raw and normalised documents written in the same pass that reads its
// rows: each COPY chunk is encoded into both files as it arrives (copy-encoder.ts),
// the lines around the rows come from render.ts's documents (document-writer.ts), so
// the files are byte for byte what writeSnapshotFiles(normalise(snapshot)) writes.
import { CopyRowEncoder } from './copy-encoder.js';
import { StreamedDocument } from './document-writer.js';
import { normalise } from './normalise.js';
import { normalisedDocument, normalisedRenderer, rawDocument, rawRenderer } from './render.js';
import type { Snapshot, TableSnapshot } from './types.js';
import { isVolatileNestedKey } from './volatiles.js';

export interface SnapshotFileTargets {
  /** before.json / after.json. */
  raw: string;
  /** before.normalised.json / after.normalised.json. */
  normalised: string;
  /**
   * The counts the tables are likely to have (the after-snapshot passes the before-snapshot's):
   * they only decide whether the files are finished in place or rewritten once.
   */
  counts?: Record<string, number | null>;
}

/** A failure to write an evidence file (not a failure to read the database). */
export class EvidenceWriteError extends Error {
  override name = 'EvidenceWriteError';
}

export class SnapshotFiles {
  private encoder: CopyRowEncoder | undefined;
  private index = -1;

  private constructor(
    readonly targets: SnapshotFileTargets,
    private readonly raw: StreamedDocument,
    private readonly norm: StreamedDocument,
  ) {}

  static async create(targets: SnapshotFileTargets): Promise<SnapshotFiles> {
    const raw = await StreamedDocument.create(targets.raw);
    try {
      return new SnapshotFiles(targets, raw, await StreamedDocument.create(targets.normalised));
    } catch (error) {
      await raw.abort();
      throw error;
    }
  }

  /** The count to write in front of a table's rows before they are read. */
  likelyCount(table: string, estimate: number): number {
    const known = this.targets.counts?.[table];
    return typeof known === 'number' ? known : Math.max(0, Math.round(estimate));
  }

  /**
   * `partial`: the snapshot so far, its last table the one about to stream (its count a guess).
   * Returns the encoder the table's COPY chunks go to.
   */
  beginTable(partial: Snapshot): CopyRowEncoder {
    const index = partial.tables.length - 1;
    const table = partial.tables[index]!;
    const normalised = normalise(partial);
    const normTable = normalised.tables[index]!;
    const rawIndent = this.raw.beginRows(rawDocument(partial), index);
    const normIndent = this.norm.beginRows(normalisedDocument(normalised), index);
    this.index = index;
    this.encoder = new CopyRowEncoder(
      {
        columns: table.columns,
        normalised: normTable.columns.map((column) => table.columns.findIndex((candidate) => candidate.name === column.name)),
        drop: (key) => isVolatileNestedKey(normalised.volatiles, key),
        rawIndent,
        normIndent,
        rawRender: rawRenderer(table),
        normRender: normalisedRenderer(normTable, normalised.volatiles),
      },
      this.raw.file,
      this.norm.file,
    );
    return this.encoder;
  }

  /** The table's rows are all read. */
  endTable(): void {
    this.encoder!.end();
    this.raw.endRows(this.index);
    this.norm.endRows(this.index);
    this.encoder = undefined;
  }

  /** A promise while the files are behind (the reader should wait for it). */
  ready(): Promise<void> | undefined {
    const raw = this.raw.file.ready();
    const norm = this.norm.file.ready();
    if (raw && norm) return Promise.all([raw, norm]).then(() => undefined);
    return raw ?? norm;
  }

  /** The snapshot is complete: both files get their final lines and are renamed into place. */
  async finish(snapshot: Snapshot): Promise<void> {
    await this.raw.finish(rawDocument(snapshot));
    await this.norm.finish(normalisedDocument(normalise(snapshot)));
  }

  async abort(): Promise<void> {
    await this.raw.abort();
    await this.norm.abort();
  }
}

export function asWriteError(error: unknown): EvidenceWriteError {
  if (error instanceof EvidenceWriteError) return error;
  return new EvidenceWriteError(`cannot write the snapshot's evidence files: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** Runs a step of the files' writing (sync or async), marking its failure as the files' (not the database's). */
export function writing<T>(step: () => T): T {
  let result: T;
  try {
    result = step();
  } catch (error) {
    throw asWriteError(error);
  }
  if (result instanceof Promise) return result.catch((error: unknown) => Promise.reject(asWriteError(error))) as T;
  return result;
}
