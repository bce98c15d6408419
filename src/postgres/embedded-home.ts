// A named home for the embedded cluster: a directory the caller names (the
// capstone's `.sor-drills/<target>/cluster`) whose cluster is started again by the
// next console instead of being made afresh.
//
// Where the cluster lives. Not as root, in the home itself. As root PostgreSQL runs
// as the unprivileged `postgres` user, which must traverse every directory above
// its data; a home under /root or under a 0700 directory is out of its reach. We
// never loosen the caller's own directories: when the postgres user cannot reach
// the home, the cluster lives under the temp dir in `sor-drills-home-<hash of the
// home's path>` (stable, so the next console finds it) and the home holds only a
// pointer file saying where. Removing the home removes both.
//
// Whose it is. A home's owner file names the console holding it: a live owner is
// refused (one line), a dead one's postmaster (a console that was SIGKILLed) is
// stopped before the cluster starts again. The stale-cluster sweep of the temp dir
// never removes a home (its owner file says it is one, and the fallback's prefix
// is not the sweep's).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  isAlive,
  isPostmasterOf,
  logFileName,
  ownerAlive,
  ownerFile,
  passFileName,
  postmasterPid,
  reachableByPostgres,
  readOwner,
  stopPostmaster,
} from './cluster-files.js';
import { pgpassPassword } from './pgpass.js';
import { TargetError } from './pg.js';
import { writeFileAtomic } from '../util/fs.js';

export const homeClusterPrefix = 'sor-drills-home-';
/** In a home whose cluster lives under the temp dir: where it is. */
export const pointerFile = 'cluster-pointer.json';

export interface HomePlace {
  /** The home as the caller named it, resolved. */
  home: string;
  /** The cluster's directory: the home itself, or its fallback under the temp dir. */
  dir: string;
}

interface Pointer {
  cluster: string;
  home: string;
  reason: string;
}

/** The fallback directory of a home: under the temp dir, named after the home's path. */
export function fallbackDir(home: string): string {
  const hash = createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 16);
  return path.join(tmpdir(), `${homeClusterPrefix}${hash}`);
}

async function entriesOf(dir: string): Promise<string[] | undefined> {
  try {
    return await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new TargetError(`cannot use ${dir} as the cluster's home: ${code ?? String(error)}`, code, { cause: error });
  }
}

/** Whether dir is this home's fallback: a real directory of ours, empty or holding the home's owner file. */
async function isFallbackOf(dir: string, home: string): Promise<boolean> {
  if (!path.basename(dir).startsWith(homeClusterPrefix)) return false;
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory() || info.isSymbolicLink()) return false;
  if (typeof process.getuid === 'function' && info.uid !== process.getuid()) return false;
  const owner = await readOwner(dir);
  if (owner) return owner.home === home;
  return (await entriesOf(dir))?.length === 0;
}

async function pointedAt(home: string): Promise<string | undefined> {
  try {
    const pointer = JSON.parse(await readFile(path.join(home, pointerFile), 'utf8')) as Partial<Pointer>;
    return typeof pointer.cluster === 'string' ? pointer.cluster : undefined;
  } catch {
    return undefined;
  }
}

async function makeFallback(dir: string, home: string, reason: string): Promise<void> {
  if (existsSync(dir)) {
    if (!(await isFallbackOf(dir, home))) {
      throw new TargetError(`${dir} exists and is not the cluster of ${home}: remove it, or name another home`);
    }
  } else {
    // Not recursive: the temp dir exists, and a name someone else made first must fail here.
    await mkdir(dir, { mode: 0o755 });
  }
  // The postgres user must traverse it to reach the data directory (umask may have cut the bits).
  await chmod(dir, 0o755);
  if (!(await reachableByPostgres(dir))) {
    throw new TargetError(`PostgreSQL's user (postgres) cannot reach ${dir} either: set TMPDIR to a directory it can traverse`);
  }
  const pointer: Pointer = { cluster: dir, home, reason };
  await writeFileAtomic(path.join(home, pointerFile), `${JSON.stringify(pointer, null, 2)}\n`);
}

/**
 * Where a home's cluster lives, making the home (and, as root when the postgres user
 * cannot reach it, its fallback) when it is new. A home that is not empty and holds
 * no cluster of ours is refused: removing it later must never remove anything else.
 */
export async function placeHome(given: string, isRoot: boolean, progress: (message: string) => void): Promise<HomePlace> {
  const home = path.resolve(given);
  const entries = await entriesOf(home);
  if (entries?.includes(pointerFile)) {
    const pointed = await pointedAt(home);
    for (const dir of [pointed, fallbackDir(home)]) {
      if (dir !== undefined && existsSync(dir) && (await isFallbackOf(dir, home))) return { home, dir };
    }
    // The temp dir was cleared (a reboot, a cleaner) or the cluster removed by hand.
    const dir = fallbackDir(home);
    progress(`the cluster kept for ${home} under the temp dir is gone; initialising a new one in ${dir}`);
    await makeFallback(dir, home, 'the postgres user cannot reach the home');
    return { home, dir };
  }
  if (entries?.includes(ownerFile)) {
    const owner = await readOwner(home);
    if (owner?.home === undefined) {
      throw new TargetError(`${home} holds a cluster that is not a named home: name a new or empty directory`);
    }
    if (isRoot && !(await reachableByPostgres(home))) {
      throw new TargetError(
        `PostgreSQL's user (postgres) can no longer reach the cluster in ${home}: make the directories above it traversable (chmod o+x) or remove it`,
      );
    }
    return { home, dir: home };
  }
  if (entries && entries.length > 0) {
    throw new TargetError(`${home} is not empty and holds no sor-drills cluster: name a new or empty directory`);
  }
  const created = entries === undefined;
  // Private, as the rest of .sor-drills/: the parents we make are ours, and only the home's own mode is widened below.
  if (created) await mkdir(home, { recursive: true, mode: 0o700 });
  if (!isRoot) return { home, dir: home };
  // Only a directory we made is widened (to traverse-only), never the caller's own parents.
  if (created ? await reachableByPostgres(path.dirname(home)) : await reachableByPostgres(home)) {
    if (created) await chmod(home, 0o711);
    return { home, dir: home };
  }
  const dir = fallbackDir(home);
  progress(`PostgreSQL's user cannot reach ${home}; keeping its cluster in ${dir}`);
  await makeFallback(dir, home, 'the postgres user cannot reach the home');
  return { home, dir };
}

/** Refuses a home whose owner is alive; stops a postmaster its dead owner (a killed console) left running. */
async function takeOver(place: HomePlace, progress: (message: string) => void) {
  const { dir, home } = place;
  const owner = await readOwner(dir);
  if (owner && ownerAlive(owner)) {
    throw new TargetError(`${home} is in use by another console (pid ${owner.pid}): quit that one first, or name another directory`);
  }
  const dataDir = path.join(dir, 'data');
  const pid = await postmasterPid(dataDir);
  if (pid !== undefined && (await isPostmasterOf(pid, dataDir))) {
    progress(`stopping the PostgreSQL (pid ${pid}) a killed console left running in ${dir}`);
    await stopPostmaster(pid);
    if (isAlive(pid)) throw new TargetError(`could not stop the PostgreSQL (pid ${pid}) left running in ${dir}`);
  }
  return { owner, dataDir };
}

/**
 * Takes a home's cluster over for this console (takeOver) and says whether it is
 * ready to start again (returning its password) or must be initialised. A data
 * directory whose initialisation never finished (no password file yet) is removed.
 */
export async function claimCluster(place: HomePlace, progress: (message: string) => void): Promise<{ password?: string }> {
  const { dir } = place;
  const { owner, dataDir } = await takeOver(place, progress);
  const passFile = path.join(dir, passFileName);
  if (owner && existsSync(path.join(dataDir, 'PG_VERSION')) && existsSync(passFile)) {
    const password = pgpassPassword(passFile, { host: '127.0.0.1', port: '5432', database: 'postgres', user: 'postgres' });
    if (password === undefined) {
      throw new TargetError(`cannot read the cluster's password from ${passFile} (it must be mode 0600 and hold one line)`);
    }
    return { password };
  }
  if (existsSync(dataDir)) {
    progress(`removing a cluster in ${dir} whose initialisation did not finish`);
    await rm(dataDir, { recursive: true, force: true });
  }
  return {};
}

/**
 * Removes a home's cluster without starting it (a capstone started over): refused
 * while a live console holds it; a postmaster a killed console left is stopped
 * first. Returns false when there was no home of ours there.
 */
export async function discardHome(given: string, progress: (message: string) => void = () => {}): Promise<boolean> {
  const home = path.resolve(given);
  const entries = await entriesOf(home);
  let dir: string | undefined;
  if (entries?.includes(pointerFile)) {
    const pointed = await pointedAt(home);
    for (const candidate of [pointed, fallbackDir(home)]) {
      if (dir === undefined && candidate !== undefined && existsSync(candidate) && (await isFallbackOf(candidate, home))) dir = candidate;
    }
    // Its cluster is gone already: only the pointer is left to remove.
    dir ??= home;
  } else if (entries?.includes(ownerFile) && (await readOwner(home))?.home !== undefined) {
    dir = home;
  }
  if (dir === undefined) return false;
  await takeOver({ home, dir }, progress);
  await removeHome({ home, dir });
  return true;
}

/** Removes a home: its cluster (in the home or under the temp dir) and the home itself once nothing else is in it. */
export async function removeHome(place: HomePlace): Promise<void> {
  const { dir, home } = place;
  if (dir !== home) await rm(dir, { recursive: true, force: true });
  const ours = new Set(['data', ownerFile, passFileName, logFileName, pointerFile]);
  for (const entry of (await entriesOf(home).catch(() => undefined)) ?? []) {
    // Our files, and the temporary files of an atomic write cut short.
    if (ours.has(entry) || /^(owner\.json|cluster-pointer\.json)\.[0-9a-f]+\.tmp$/.test(entry)) {
      await rm(path.join(home, entry), { recursive: true, force: true });
    }
  }
  await rmdir(home).catch(() => {});
}

/**
 * Removes the clusters kept under the temp dir for homes that no longer want them: the
 * home was deleted (the learner removed the project) or points elsewhere, and no live
 * console owns the cluster. A home that still points at its cluster keeps it. Returns the
 * directories removed.
 */
export async function cleanOrphanedHomes(root = tmpdir()): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(root).catch(() => [] as string[]);
  for (const entry of entries) {
    if (!entry.startsWith(homeClusterPrefix)) continue;
    const dir = path.join(root, entry);
    const owner = await readOwner(dir);
    // One being made has no owner yet; one a live console holds is in use.
    if (!owner?.home || ownerAlive(owner)) continue;
    if (!(await isFallbackOf(dir, owner.home))) continue;
    if ((await pointedAt(owner.home)) === dir) continue;
    const pid = await postmasterPid(path.join(dir, 'data'));
    if (pid !== undefined && (await isPostmasterOf(pid, path.join(dir, 'data')))) await stopPostmaster(pid);
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}
