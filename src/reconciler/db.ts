// The Worker side's database connections: the tool server's pool and the
// relay's client. Both act as the worker role (worker_write by default):
// when the URL logs in as another user (an operator's own URL given to
// `sor-drills tools --db`, a per-test login that is a member of worker_write),
// every connection runs `set role worker_write` before its first use, so the
// boundary is the same whoever logged in.
//
// Behind a transaction pooler (PgBouncer pool_mode=transaction) a session-level
// `set role` stays on whichever server connection ran it: the next transaction may
// run on another one, without the role (as the login, possibly a superuser). In that
// mode (transactionPooling) no connection is prepared; each transaction calls
// actInTransaction(client), a SET LOCAL ROLE when the login is another user.
import pg from 'pg';
import { connect as connectClient, describeConnectError, ident, poolConfig, sqlState, errorMessage } from '../postgres/pg.js';
import { defaultRoles } from '../postgres/roles.js';

export interface WorkerPoolOptions {
  /** The role every connection acts as. */
  role?: string;
  /** Connections opened at start and kept for the life of the pool. */
  max?: number;
  applicationName?: string;
  /** Called for errors of idle connections (their backend died); the pool drops them. */
  onIdleError?: (error: Error) => void;
  /** Behind a transaction pooler: no session `set role`; actInTransaction() sets the role per transaction. */
  transactionPooling?: boolean;
}

export interface WorkerPool {
  role: string;
  /**
   * A client already acting as the role (under transaction pooling: as the login, until
   * actInTransaction in its transaction). Release it with release(error?) exactly once.
   */
  connect(): Promise<pg.PoolClient>;
  /**
   * Inside an open transaction: makes it act as the role (SET LOCAL ROLE) when the pool
   * runs in transaction pooling mode and the login is another user; nothing otherwise.
   */
  actInTransaction(client: pg.ClientBase): Promise<void>;
  end(): Promise<void>;
}

/** Makes a fresh connection act as the role, or throws saying how to fix the grant. */
export async function actAs(client: pg.ClientBase, role: string): Promise<void> {
  const { rows } = await client.query<{ current_user: string }>('select current_user');
  if (rows[0]?.current_user !== role) {
    try {
      // A role name is configuration, never an argument of a tool call: quoted as an identifier.
      await client.query(`set role ${ident(role)}`);
    } catch (error) {
      throw new Error(
        `cannot act as ${role}: ${errorMessage(error)} (SQLSTATE ${sqlState(error) ?? '?'}); ` +
          `connect as ${role}, or grant ${role} to the URL's user`,
        { cause: error },
      );
    }
  }
}

/** SET LOCAL ROLE inside the caller's transaction, or throws saying how to fix the grant. */
export async function actAsInTransaction(client: pg.ClientBase, role: string): Promise<void> {
  try {
    await client.query(`set local role ${ident(role)}`);
  } catch (error) {
    throw new Error(
      `cannot act as ${role}: ${errorMessage(error)} (SQLSTATE ${sqlState(error) ?? '?'}); ` +
        `connect as ${role}, or grant ${role} to the URL's user`,
      { cause: error },
    );
  }
}

/**
 * Opens the pool and all of its connections now. Connections are kept (no idle
 * timeout): the worker role's password can be rotated by the next drill without
 * breaking a server already running, and bad credentials fail at start, not at
 * the first tool call.
 */
export async function openWorkerPool(url: string, options: WorkerPoolOptions = {}): Promise<WorkerPool> {
  const role = options.role ?? defaultRoles.worker;
  const max = options.max ?? 6;
  // The pool's settings come from the connection string alone (pg.ts), TLS settled once.
  const pool = new pg.Pool({
    ...(await poolConfig(url, { applicationName: options.applicationName ?? 'sor-tool-server' })),
    max,
    idleTimeoutMillis: 0,
  });
  // Without this listener a dead idle connection crashes the process.
  pool.on('error', (error) => options.onIdleError?.(error));
  const prepared = new WeakSet<pg.PoolClient>();
  const pooling = options.transactionPooling ?? false;
  // Transaction pooling: the role to SET LOCAL in each transaction (undefined when the login is the role).
  let localRole: string | undefined;

  const connect = async (): Promise<pg.PoolClient> => {
    const client = await pool.connect();
    if (!pooling && !prepared.has(client)) {
      try {
        await actAs(client, role);
      } catch (error) {
        client.release(true);
        throw error;
      }
      prepared.add(client);
    }
    return client;
  };

  try {
    const clients = await Promise.all(Array.from({ length: max }, () => connect()));
    try {
      if (pooling) localRole = await roleToSetLocally(clients[0]!, role);
    } finally {
      for (const client of clients) client.release();
    }
  } catch (error) {
    await pool.end().catch(() => {});
    if (error instanceof Error && error.message.startsWith('cannot act as')) throw error;
    throw describeConnectError(error, url);
  }
  const actInTransaction = async (client: pg.ClientBase) => {
    if (localRole !== undefined) await actAsInTransaction(client, localRole);
  };
  return { role, connect, actInTransaction, end: () => pool.end() };
}

/**
 * Transaction pooling: the role each transaction must SET LOCAL, tried once now inside a
 * transaction that is rolled back (bad grants fail at start); undefined when the login is the role.
 */
async function roleToSetLocally(client: pg.ClientBase, role: string): Promise<string | undefined> {
  const { rows } = await client.query<{ login: string }>('select session_user::text as login');
  if (rows[0]?.login === role) return undefined;
  await client.query('begin');
  try {
    await actAsInTransaction(client, role);
  } finally {
    await client.query('rollback');
  }
  return role;
}

/** Opens one client acting as the role (the relay's). */
export async function openWorkerClient(url: string, role: string, applicationName: string): Promise<pg.Client> {
  const client = await connectClient(url, { applicationName });
  try {
    await actAs(client, role);
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  return client;
}

/** One line for a database error: message and SQLSTATE, secrets scrubbed. */
export function describeDbError(error: unknown): { message: string; code: string | undefined } {
  return { message: errorMessage(error), code: sqlState(error) };
}
