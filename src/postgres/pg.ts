// Database access. Every client is opened, used and released inside one
// function (withPgClient), in `finally`, so a failed query never leaks a
// connection. Errors from Postgres are turned into one actionable line.
//
// What reaches the pg driver is decided here, explicitly: every setting pg would
// otherwise take from PG* variables (host, port, user, database, password, ssl,
// sslnegotiation, application_name, options, replication) is set from the
// connection string, never left for pg to read from the environment or ~/.pgpass.
import pg from 'pg';
import { connectTimeoutOf, readConnectionString, tlsAttempts, type TlsAttempt } from './connection.js';
import type { Keywords } from './connection-string.js';
import { errorMessage } from './errors.js';
import { describeTlsError, isTlsRefusal } from './tls-errors.js';
import { maskUrl } from './url.js';

export type PgClient = pg.Client;

/** Raised when the target cannot be reached or refuses us: the CLI maps it to exit code 3. */
export class TargetError extends Error {
  override name = 'TargetError';
  constructor(
    message: string,
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const connectTimeoutMs = 10_000;

export interface ConnectOptions {
  /** Our name for the session; the string's application_name (or PGAPPNAME at entry) wins, as libpq's fallback_application_name. */
  applicationName?: string;
  /** Extra statement_timeout in ms; none by default. */
  statementTimeoutMs?: number;
}

/**
 * A pg.Client that keeps what pg would read from PGOPTIONS and PGREPLICATION out:
 * pg falls back to those variables when the setting is empty, and an empty
 * setting cannot be passed to it, so they are pinned after construction.
 */
export class ExplicitClient extends pg.Client {
  constructor(config: pg.ClientConfig) {
    super(config);
    const pinned = this as unknown as {
      replication?: unknown;
      connectionParameters: { options?: string; replication?: unknown };
    };
    pinned.connectionParameters.options = config.options || undefined;
    pinned.connectionParameters.replication = undefined;
    pinned.replication = undefined;
  }
}

/** The server asked for a password and the string (with PG* and .pgpass at entry) gave none. */
const noPassword = 'ENOPASSWORD';

function clientConfig(keywords: Keywords, ssl: TlsAttempt, options: ConnectOptions): pg.ClientConfig {
  return {
    host: keywords.host,
    port: Number(keywords.port),
    user: keywords.user,
    database: keywords.dbname,
    // A function, so pg never looks at PGPASSWORD or ~/.pgpass itself (its own
    // .pgpass support prints a deprecation notice).
    password: async () => {
      if (keywords.password) return keywords.password;
      throw Object.assign(new Error('the server asks for a password and none was given'), { code: noPassword });
    },
    ssl,
    sslnegotiation: ssl === false ? 'postgres' : ((keywords.sslnegotiation as 'postgres' | 'direct' | undefined) ?? 'postgres'),
    application_name: keywords.application_name || options.applicationName || 'sor-drills',
    client_encoding: 'utf8',
    options: keywords.options,
    connectionTimeoutMillis: connectTimeoutOf(keywords, connectTimeoutMs),
    statement_timeout: options.statementTimeoutMs,
  };
}

/** Opens a client, or throws a TargetError naming what to do. Caller must end() it. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  return (await openClient(url, options)).client;
}

/**
 * Tries the string's TLS settings in order (allow and prefer fall back as libpq
 * does) and returns the connected client with the configuration that worked.
 */
async function openClient(url: string, options: ConnectOptions): Promise<{ client: pg.Client; config: pg.ClientConfig }> {
  const keywords = readConnectionString(url);
  const attempts = tlsAttempts(keywords);
  let failure: unknown;
  for (const [index, ssl] of attempts.entries()) {
    const config = clientConfig(keywords, ssl, options);
    const client = new ExplicitClient(config);
    // A client without an error listener crashes the process when its backend dies.
    client.on('error', () => {});
    try {
      await client.connect();
      return { client, config };
    } catch (error) {
      await client.end().catch(() => {});
      failure = error;
      const another = index + 1 < attempts.length;
      if (!another || !(isTlsRefusal(error) || sqlState(error) === '28000')) break;
    }
  }
  throw describeConnectError(failure, url);
}

/**
 * A pool configuration for the string: for allow and prefer, one connection is
 * opened first to learn whether TLS is used, so every pooled connection goes the
 * same way without trying twice.
 */
export async function poolConfig(url: string, options: ConnectOptions = {}): Promise<pg.PoolConfig> {
  const keywords = readConnectionString(url);
  const attempts = tlsAttempts(keywords);
  let config = clientConfig(keywords, attempts[0]!, options);
  if (attempts.length > 1) {
    const opened = await openClient(url, options);
    await opened.client.end().catch(() => {});
    config = opened.config;
  }
  return { ...config, Client: ExplicitClient as unknown as pg.PoolConfig['Client'] };
}

export async function withPgClient<T>(
  url: string,
  callback: (client: pg.Client) => Promise<T>,
  options: ConnectOptions = {},
): Promise<T> {
  const client = await connect(url, options);
  try {
    return await callback(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Runs callback inside BEGIN/COMMIT on one client; ROLLBACK on any error. */
export async function inTransaction<T>(client: pg.Client, callback: () => Promise<T>): Promise<T> {
  await client.query('begin');
  try {
    const result = await callback();
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

interface PgErrorLike {
  code?: string;
  message?: string;
  errno?: number;
}

export function sqlState(error: unknown): string | undefined {
  const code = (error as PgErrorLike | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

// The one errorMessage (masked, one line) lives in errors.ts, which loads no pg;
// it is re-exported here for the modules that reach it through pg.ts.
export { errorMessage } from './errors.js';

/** The connection-time failures a user can act on, each in one line. */
export function describeConnectError(error: unknown, url: string): TargetError {
  if (error instanceof TargetError) return error;
  const where = maskUrl(url);
  const code = sqlState(error) ?? (error as PgErrorLike).code;
  const message = errorMessage(error);
  const tls = describeTlsError(error, url, where);
  if (tls) return new TargetError(tls.message, tls.code, { cause: error });
  switch (code) {
    case '28P01':
      return new TargetError(
        `authentication failed for ${where}: check the user and password (in the string, PGPASSWORD or ~/.pgpass)`,
        code,
        { cause: error },
      );
    case '28000':
      return new TargetError(`${where} refuses this connection: ${message}`, code, { cause: error });
    case noPassword:
      return new TargetError(
        `${where} asks for a password and none was given: put it in the string, PGPASSWORD or ~/.pgpass (PGPASSFILE)`,
        code,
        { cause: error },
      );
    case '3D000':
      return new TargetError(`database does not exist: ${where} (create it first, or name another)`, code, {
        cause: error,
      });
    case 'ECONNREFUSED':
      return new TargetError(`connection refused by ${where}: is PostgreSQL running and listening there?`, code, {
        cause: error,
      });
    case 'ENOENT':
      return new TargetError(`no PostgreSQL socket at ${where}: is PostgreSQL running there? (name a host to use TCP)`, code, {
        cause: error,
      });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new TargetError(`host not found for ${where}: check the host name`, code, { cause: error });
    default:
      if (/timeout/i.test(message)) {
        return new TargetError(
          `no answer from ${where} within ${timeoutSeconds(url)} s: check the host, port and firewall`,
          'ETIMEDOUT',
          { cause: error },
        );
      }
      return new TargetError(`cannot connect to ${where}: ${message}`, code, { cause: error });
  }
}

function timeoutSeconds(url: string): number {
  try {
    return connectTimeoutOf(readConnectionString(url), connectTimeoutMs) / 1000;
  } catch {
    return connectTimeoutMs / 1000;
  }
}

/** Quotes an identifier for SQL text (for DDL, which takes no bind parameters): the driver's escapeIdentifier. */
export function ident(name: string): string {
  return pg.escapeIdentifier(name);
}

/**
 * Quotes a string literal for SQL text (only where a statement takes no parameters, e.g.
 * ALTER ROLE ... PASSWORD): the driver's escapeLiteral, which writes ` E'...'` (with a
 * leading space) when the value holds a backslash, so it is right whatever
 * standard_conforming_strings says.
 */
export function literal(value: string): string {
  return pg.escapeLiteral(value);
}
