// Database access. Every client is opened, used and released inside one
// function (withPgClient), in `finally`, so a failed query never leaks a
// connection. Errors from Postgres are turned into one actionable line.
import pg from 'pg';
import { errorMessage } from './errors.js';
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
  applicationName?: string;
  /** Extra statement_timeout in ms; none by default. */
  statementTimeoutMs?: number;
}

/** Opens a client, or throws a TargetError naming what to do. Caller must end() it. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: options.applicationName ?? 'sor-drills',
    statement_timeout: options.statementTimeoutMs,
  });
  // A client without an error listener crashes the process when its backend dies.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw describeConnectError(error, url);
  }
  return client;
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
  const where = maskUrl(url);
  const code = sqlState(error) ?? (error as PgErrorLike).code;
  const message = errorMessage(error);
  switch (code) {
    case '28P01':
    case '28000':
      return new TargetError(
        `authentication failed for ${where}: check the user and password in the URL`,
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
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new TargetError(`host not found for ${where}: check the host name`, code, { cause: error });
    default:
      if (/timeout/i.test(message)) {
        return new TargetError(
          `no answer from ${where} within ${connectTimeoutMs / 1000} s: check the host, port and firewall`,
          'ETIMEDOUT',
          { cause: error },
        );
      }
      return new TargetError(`cannot connect to ${where}: ${message}`, code, { cause: error });
  }
}

/** Quotes an identifier for SQL text (for DDL, which takes no bind parameters). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes a string literal for SQL text (only where a statement takes no parameters, e.g. ALTER ROLE ... PASSWORD). */
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
