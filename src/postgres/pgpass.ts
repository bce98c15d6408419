// The password file, read as libpq reads it (~/.pgpass, or PGPASSFILE, or the
// passfile keyword): lines `host:port:database:user:password`, `*` matching
// anything, `\:` and `\\` escaping, `#` comments. Read here rather than by the pg
// driver, whose own support prints a deprecation notice (and goes away in pg 9).
// A file that group or others can read is ignored, as libpq ignores it; libpq also
// prints a warning then, and we stay quiet because the terminal is Ink's.
import { readFileSync, statSync } from 'node:fs';

export interface PgpassQuery {
  /** The host as given; a socket directory matches the `localhost` entries, as in libpq. */
  host: string;
  port: string;
  database: string;
  user: string;
}

/** The password of the first matching line, or undefined (no file, unsafe permissions, no match). */
export function pgpassPassword(file: string, query: PgpassQuery): string | undefined {
  const text = readSafely(file);
  if (text === undefined) return undefined;
  const host = query.host === '' || query.host.startsWith('/') ? 'localhost' : query.host;
  const wanted = [host, query.port, query.database, query.user];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields = splitFields(line);
    if (fields.length < 5) continue;
    const matches = wanted.every((value, index) => fields[index] === '*' || fields[index] === value);
    if (matches) return fields[4];
  }
  return undefined;
}

function readSafely(file: string): string | undefined {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return undefined;
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) return undefined;
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Splits the four key fields on unescaped colons, resolving `\:` and `\\`; the password is the rest of the line. */
function splitFields(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  for (let at = 0; at < line.length; at += 1) {
    const char = line[at]!;
    if (char === '\\' && at + 1 < line.length) {
      current += line[at + 1];
      at += 1;
    } else if (char === ':' && fields.length < 4) {
      fields.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  fields.push(current);
  return fields;
}
