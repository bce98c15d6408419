// Input is checked before any work starts: the files flags name, the values flags
// take, and the connection strings. Each check throws a UsageError naming the flag
// (or the variable) and what to do, so bad input exits 2 at once: before a cluster
// boots, a connection opens or a process spawns, not ten seconds into a run.
//
// The checks are synchronous and light (node:fs, the URL parser): the commands run
// them before they load pg, the drills or the target modules.
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { parseUrl, UsageError } from '../postgres/url.js';
import { bundleKeys, isBundleKey, type BundleKey } from '../drills/types.js';

/** The longest delay a Node timer takes (a longer one fires at once, with a warning). */
export const maxTimerMs = 2_147_483_647;

/** The file's stats, undefined when it does not exist; a path we may not even look at is bad input. */
function statOf(file: string, flag: string, shown: string): Stats | undefined {
  try {
    return statSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new UsageError(`${flag} ${shown}: cannot look at ${file} (${code ?? 'unknown error'}); check the path and its permissions`);
  }
}

function accessible(file: string, mode: number): string | undefined {
  try {
    accessSync(file, mode);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? 'unknown error';
  }
}

/** A file the program will read (`--migration`): it exists, is a file, and can be read. Returns it absolute. */
export function readableFile(flag: string, file: string): string {
  const absolute = path.resolve(file);
  const stats = statOf(absolute, flag, file);
  if (!stats) throw new UsageError(`${flag} ${file}: no such file; name an existing file`);
  if (stats.isDirectory()) throw new UsageError(`${flag} ${file}: is a directory; name a file`);
  const denied = accessible(absolute, constants.R_OK);
  if (denied) throw new UsageError(`${flag} ${file}: cannot be read (${denied}); check its permissions`);
  return absolute;
}

/**
 * A directory the program will write into (the oracle's `--dir`): it exists and can be written
 * to, or it can be created: its nearest existing ancestor is a directory we can write into.
 * Nothing is created here: bad input leaves no trace.
 */
export function writableDirectory(flag: string, dir: string, shown = dir): string {
  const absolute = path.resolve(dir);
  let existing = absolute;
  let stats = statOf(existing, flag, shown);
  while (!stats) {
    const parent = path.dirname(existing);
    if (parent === existing) throw new UsageError(`${flag} ${shown}: no directory on its path exists`);
    existing = parent;
    stats = statOf(existing, flag, shown);
  }
  if (!stats.isDirectory()) {
    throw new UsageError(`${flag} ${shown}: ${existing} is a file, not a directory; choose another path`);
  }
  const denied = accessible(existing, constants.W_OK | constants.X_OK);
  if (denied) throw new UsageError(`${flag} ${shown}: cannot write in ${existing} (${denied}); choose a directory you can write to`);
  return absolute;
}

/** A file the program will write (`--out`, `--junit`): not a directory, in a directory that is or can be made writable. */
export function writableFile(flag: string, file: string): string {
  if (file === '') throw new UsageError(`${flag} is empty; name a file`);
  const absolute = path.resolve(file);
  if (statOf(absolute, flag, file)?.isDirectory()) {
    throw new UsageError(`${flag} ${file}: is a directory; name a file (for example ${path.join(file, 'bundle.md')})`);
  }
  writableDirectory(flag, path.dirname(absolute), file);
  return absolute;
}

/** A whole number of milliseconds (or rows) in [min, max], written in decimal digits. */
export function integerFlag(flag: string, value: unknown, options: { fallback: number; min?: number; max?: number; unit?: string }): number {
  if (value === undefined) return options.fallback;
  const { min = 0, max = maxTimerMs, unit = 'milliseconds' } = options;
  const text = String(value).trim();
  const number = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`${flag} ${JSON.stringify(String(value))}: expected a whole number of ${unit} from ${min} to ${max}`);
  }
  return number;
}

/** A positive decimal number (seconds) up to max. */
export function positiveNumberFlag(flag: string, value: unknown, options: { max: number; unit: string }): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const number = /^(\d+(\.\d*)?|\.\d+)$/.test(text) ? Number(text) : Number.NaN;
  if (!(number > 0) || number > options.max) {
    throw new UsageError(`${flag} ${JSON.stringify(String(value))}: expected a number of ${options.unit} above 0, at most ${options.max}`);
  }
  return number;
}

/** Drill keys given to --break, --only or --gate. */
export function bundleKeysOf(flag: string, values: unknown): BundleKey[] {
  const list = (values as string[] | undefined) ?? [];
  for (const value of list) {
    if (!isBundleKey(value)) throw new UsageError(`${flag} ${value}: not a drill; the keys are ${bundleKeys.join(', ')}`);
  }
  return list as BundleKey[];
}

/** A role name (--worker-role and the like): PostgreSQL keeps at most 63 bytes of a name. */
export function roleNameFlag(flag: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  const name = String(value);
  if (name === '' || Buffer.byteLength(name) > 63) throw new UsageError(`${flag} ${JSON.stringify(name)}: expected a role name of 1 to 63 bytes`);
  return name;
}

/**
 * A connection string, checked by the same parser that will connect with it, and returned
 * as the canonical URL with PG* variables and .pgpass filling its gaps (as libpq does), so
 * every command connects alike; the error names where it came from.
 */
export function connectionString(source: string, value: string): string {
  if (value === '') throw new UsageError(`${source} is empty; give a connection string (postgres://user:password@host:5432/database)`);
  try {
    return parseUrl(value).url;
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${source}: ${error.message.split('\n')[0]}`);
    throw error;
  }
}

/**
 * The target string, by the rule the target itself follows (src/postgres/target.ts): --db, else a
 * non-empty DATABASE_URL, else none (the embedded cluster). An empty --db is a mistake, not a
 * request for the embedded cluster.
 */
export function targetString(db: unknown, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (db !== undefined) return connectionString('--db', String(db));
  if (env.DATABASE_URL) return connectionString('DATABASE_URL', env.DATABASE_URL);
  return undefined;
}

/** The target string of a command that has no embedded default (the oracle, the tools): --db, else DATABASE_URL. */
export function requiredTargetString(db: unknown, missing: string, env: NodeJS.ProcessEnv = process.env): string {
  if (db === undefined && !env.DATABASE_URL) throw new UsageError(missing);
  return targetString(db, env)!;
}

/** --keep keeps the embedded cluster running; with a target of someone else's there is nothing of ours to keep. */
export function keepFlag(keep: unknown, db: string | undefined): boolean {
  if (!keep) return false;
  if (db !== undefined) throw new UsageError('--keep keeps the embedded cluster, and this target is given by URL: leave out --keep, or --db');
  return true;
}
