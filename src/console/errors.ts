// One line for an error on the screen, secrets masked. (src/postgres/pg.ts has the
// same helper, but importing it would load pg before the first frame.)
import { maskSecrets } from '../postgres/url.js';

export function errorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : error === undefined ? 'unknown error' : String(error);
  return maskSecrets(text).split('\n')[0] ?? '';
}
