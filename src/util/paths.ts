// Paths as the console shows them: relative to the working directory when they are
// inside it (`.agent-history/oracle/...`), absolute otherwise. Files keep absolute paths.
import path from 'node:path';

export function shownPath(file: string, cwd: string = process.cwd()): string {
  if (!path.isAbsolute(file)) return file;
  const relative = path.relative(cwd, file);
  if (relative === '') return '.';
  if (relative.startsWith('..') || path.isAbsolute(relative)) return file;
  return relative;
}
