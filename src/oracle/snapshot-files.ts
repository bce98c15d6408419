// A snapshot's raw and normalised documents written in the same pass that reads its
// rows: each COPY chunk is encoded into both files as it arrives (copy-encoder.ts),
// the lines around the rows come from render.ts's documents (document-writer.ts), so
// the files are byte for byte what writeSnapshotFiles(normalise(snapshot)) writes.
import { CopyRowEncoder } from './copy-encoder.js';
import { StreamedDocument } from './document-writer.js';
import { normalise } from './normalise.js';
import { normalisedDocument, normalisedRenderer, rawDocument, rawRenderer } from './render.js';
import { LineSpool } from './row-sink.js';
import type { RowStore, Snapshot } from './types.js';
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

type NormalisedStore = Extract<RowStore, { kind: 'normalised' }>;

export class SnapshotFiles {
  private encoder: CopyRowEncoder | undefined;
  private keys: LineSpool | undefined;
  private index = -1;
  private store: NormalisedStore | undefined;
  /** The tables' stores, by table index: where their rows are once the file is in place. */
  private readonly stores = new Map<number, NormalisedStore>();

  private constructor(
    readonly targets: SnapshotFileTargets,
    private readonly raw: StreamedDocument,
    private readonly norm: StreamedDocument,
    private readonly workDir: string | undefined,
    private readonly threshold: number,
  ) {}

  /** `threshold`: rows of keys held in memory; beyond it they are spooled under `workDir`. */
  static async create(targets: SnapshotFileTargets, threshold: number, workDir?: string): Promise<SnapshotFiles> {
    const raw = await StreamedDocument.create(targets.raw);
    try {
      return new SnapshotFiles(targets, raw, await StreamedDocument.create(targets.normalised), workDir, threshold);
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
    this.keys = new LineSpool(this.workDir, `${table.table}.keys`, this.threshold, () => this.encoder?.rows ?? 0);
    this.encoder = new CopyRowEncoder(
      {
        columns: table.columns,
        normalised: normTable.columns.map((column) => table.columns.findIndex((candidate) => candidate.name === column.name)),
        drop: (key) => isVolatileNestedKey(normalised.volatiles, key),
        rawIndent,
        normIndent,
        rawRender: rawRenderer(table),
        normRender: normalisedRenderer(normTable, normalised.volatiles),
        keyColumns: table.key.columns.map((name) => table.columns.findIndex((column) => column.name === name)),
      },
      this.raw.file,
      this.norm.file,
      this.keys,
    );
    this.store = {
      kind: 'normalised',
      file: this.targets.normalised,
      start: -1,
      end: -1,
      count: 0,
      indent: normIndent,
      columns: normTable.columns.map((column) => column.name),
      volatiles: normalised.volatiles,
      keys: { kind: 'memory', lines: [], count: 0 },
    };
    return this.encoder;
  }

  /**
   * The table's rows are all read: returns its store, the rows in the normalised file (where, once
   * finish() has put the file in place) with their keys beside them.
   */
  async endTable(): Promise<NormalisedStore> {
    const encoder = this.encoder!;
    encoder.end();
    this.raw.endRows(this.index);
    this.norm.endRows(this.index);
    const store = this.store!;
    store.count = encoder.rows;
    const keys = this.keys!;
    this.encoder = undefined;
    this.keys = undefined;
    this.store = undefined;
    store.keys = await keys.finish(encoder.rows);
    this.stores.set(this.index, store);
    return store;
  }

  /** A promise while the files are behind (the reader should wait for it). */
  ready(): Promise<void> | undefined {
    const waits = [this.raw.file.ready(), this.norm.file.ready(), this.keys?.ready()].filter((wait) => wait !== undefined);
    if (waits.length === 0) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  /** The snapshot is complete: both files get their final lines and are renamed into place. */
  async finish(snapshot: Snapshot): Promise<void> {
    await this.raw.finish(rawDocument(snapshot));
    const ranges = await this.norm.finish(normalisedDocument(normalise(snapshot)));
    for (const [index, store] of this.stores) {
      const range = ranges.get(index);
      if (!range) throw new Error(`table ${index}'s rows are not in ${this.targets.normalised}`);
      store.start = range.start;
      store.end = range.end;
    }
  }

  async abort(): Promise<void> {
    await this.keys?.discard();
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
