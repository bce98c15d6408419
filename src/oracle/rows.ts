// A row store read back whole, and released: the rows of a table as COPY text lines, in memory
// or in a file (row-sink.ts writes them; row-cursor.ts reads them line by line for the merge).
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import type { RowStore } from './types.js';

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
