// The evidence folder: .agent-history/oracle/<card-id>/<timestamp>/, as the seed
// names it (`date +%Y%m%dT%H%M%S`, local time). Two runs of one card in the same
// second get `-2`, `-3`...: the folder is claimed by mkdir, which only one can win.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../postgres/url.js';
import { evidenceFiles, type EvidenceFile } from './types.js';

export const defaultEvidenceRoot = path.join('.agent-history', 'oracle');

export function checkCardId(card: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(card)) {
    throw new UsageError(`bad card id ${JSON.stringify(card)}: letters, digits, '.', '_' and '-' only (it names a folder)`);
  }
  return card;
}

/** `20260102T030405` in local time, like `date +%Y%m%dT%H%M%S`. */
export function folderTimestamp(at: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${at.getFullYear()}${two(at.getMonth() + 1)}${two(at.getDate())}T${two(at.getHours())}${two(at.getMinutes())}${two(at.getSeconds())}`;
}

/** Creates and returns a new evidence folder for the card. */
export async function createEvidenceFolder(root: string, card: string, at: Date = new Date()): Promise<string> {
  const cardDir = path.resolve(root, checkCardId(card));
  await mkdir(cardDir, { recursive: true });
  const stamp = folderTimestamp(at);
  for (let attempt = 1; attempt < 1000; attempt += 1) {
    const folder = path.join(cardDir, attempt === 1 ? stamp : `${stamp}-${attempt}`);
    try {
      await mkdir(folder);
      return folder;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  throw new Error(`could not create an evidence folder under ${cardDir}: 999 runs in one second`);
}

export function evidencePaths(folder: string): Record<EvidenceFile, string> {
  return Object.fromEntries(evidenceFiles.map((file) => [file, path.join(folder, file)])) as Record<EvidenceFile, string>;
}
