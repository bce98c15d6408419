// Temporary directories for tests: all under one root that the global setup
// makes and removes after the run, so a test run leaves nothing in the temp dir.
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { inject } from 'vitest';

export function scratchDir(prefix: string): string {
  return mkdtempSync(path.join(inject('scratchRoot'), prefix));
}
