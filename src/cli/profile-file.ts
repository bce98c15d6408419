// --profile FILE, read before anything starts: the file must be there and parse
// (src/postgres/profile/load.ts names the key of any error, and any TODO a
// draft left). Whether it fits the target is known only once the target is reached.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type GivenProfile, parseProfile } from '../postgres/profile/load.js';
import { UsageError } from '../postgres/url.js';

export type { GivenProfile };

export function readGivenProfile(file: string): GivenProfile {
  let text: string;
  try {
    text = readFileSync(path.resolve(file), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'ENOENT'
        ? `--profile ${file}: no such file; draft one with \`sor-drills profile --db URL --out ${file}\``
        : `--profile ${file}: cannot read it (${code ?? (error as Error).message})`,
    );
  }
  return { source: file, profile: parseProfile(text, file) };
}
