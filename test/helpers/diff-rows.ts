// Reading an oracle evidence folder's diff.txt the way a person does: the rows it adds
// (its `+` lines) and the rows it removes (its `-` lines), each a JSON object.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

async function rowsOf(folder: string, sign: '+' | '-'): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(path.join(folder, 'diff.txt'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.startsWith(sign) && !line.startsWith(sign.repeat(3)))
    .map((line) => line.slice(1).trim().replace(/,$/, ''))
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The rows an evidence folder's diff.txt adds (the after side of a changed row, or a new row). */
export function addedRows(folder: string): Promise<Array<Record<string, unknown>>> {
  return rowsOf(folder, '+');
}

/** The rows an evidence folder's diff.txt removes (the before side of a changed row, or a deleted row). */
export function removedRows(folder: string): Promise<Array<Record<string, unknown>>> {
  return rowsOf(folder, '-');
}
