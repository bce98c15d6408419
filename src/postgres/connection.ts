// How a connection string becomes what a connection needs, with libpq's meanings.
//
// Two ways in, on purpose:
// - resolveTargetString(): a target entering the program (--db, DATABASE_URL,
//   SOR_WORKER_URL). PG* variables, ~/.postgresql's certificate files and the
//   password file fill what the string leaves out, as libpq does. The result is
//   written back as one canonical URL that carries everything, so a child process
//   (whose environment holds no PG* variable) connects the same way.
// - readConnectionString(): any string the program already holds (the embedded
//   cluster's URL, a canonical URL, a URL derived from one). Nothing from the
//   environment: a shell with PGHOST or PGSSLMODE set never changes where, or how,
//   the embedded cluster is reached.
//
// sslmode as libpq means it (https://www.postgresql.org/docs/current/libpq-ssl.html):
// disable (no TLS), allow (plain, else TLS), prefer (TLS, else plain; the default),
// require (TLS without verification; verify-ca when a root certificate is given),
// verify-ca (the chain against sslrootcert or the system store, not the host name),
// verify-full (the chain and the host name).
import { existsSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { checkKeywords, parseConnectionString, type Keywords, type SslMode } from './connection-string.js';
import { pgpassPassword } from './pgpass.js';
import { UsageError } from './usage-error.js';

/** The PG* variable that fills each keyword a target string leaves out (libpq's names). */
const environmentFallbacks: ReadonlyArray<readonly [keyword: string, variable: string]> = [
  ['host', 'PGHOST'],
  ['port', 'PGPORT'],
  ['dbname', 'PGDATABASE'],
  ['user', 'PGUSER'],
  ['password', 'PGPASSWORD'],
  ['passfile', 'PGPASSFILE'],
  ['options', 'PGOPTIONS'],
  ['application_name', 'PGAPPNAME'],
  ['connect_timeout', 'PGCONNECT_TIMEOUT'],
  ['sslmode', 'PGSSLMODE'],
  ['sslrootcert', 'PGSSLROOTCERT'],
  ['sslcert', 'PGSSLCERT'],
  ['sslkey', 'PGSSLKEY'],
  ['sslnegotiation', 'PGSSLNEGOTIATION'],
];

/** The keywords libpq treats as unset when they are empty. */
const unsetWhenEmpty = ['host', 'port', 'dbname', 'user', 'password', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey'];

/** A target string as libpq reads it: the string, then PG*, ~/.postgresql and .pgpass, then the defaults. */
export function resolveTargetString(raw: string, env: NodeJS.ProcessEnv = process.env): Keywords {
  const keywords = dropEmpty(parseConnectionString(raw));
  const fromEnvironment: Keywords = {};
  for (const [keyword, variable] of environmentFallbacks) {
    const value = env[variable];
    if (keywords[keyword] === undefined && value) fromEnvironment[keyword] = value;
  }
  checkKeywords(fromEnvironment, 'the PG* environment variables');
  const resolved = withDefaults({ ...keywords, ...fromEnvironment });
  const home = env.HOME || homedir();
  if (resolved.sslmode !== 'disable') addDefaultCertificates(resolved, home);
  if (!resolved.password) {
    const file = resolved.passfile ?? path.join(home, '.pgpass');
    const password = pgpassPassword(file, {
      host: resolved.host!,
      port: resolved.port!,
      database: resolved.dbname!,
      user: resolved.user!,
    });
    if (password) resolved.password = password;
  }
  checkTls(resolved);
  for (const key of ['sslrootcert', 'sslcert', 'sslkey'] as const) {
    const file = resolved[key];
    if (resolved.sslmode !== 'disable' && file && file !== 'system' && !existsSync(file)) {
      throw new UsageError(`${key} file not found: ${file}`);
    }
  }
  return resolved;
}

/** A string the program already holds: its own keywords and libpq's defaults, nothing from the environment. */
export function readConnectionString(raw: string): Keywords {
  const resolved = withDefaults(dropEmpty(parseConnectionString(raw)));
  checkTls(resolved);
  return resolved;
}

function dropEmpty(keywords: Keywords): Keywords {
  const kept: Keywords = {};
  for (const [key, value] of Object.entries(keywords)) {
    if (value !== '' || !unsetWhenEmpty.includes(key)) kept[key] = value;
  }
  return kept;
}

/** libpq's defaults: port 5432, the operating system's user name, a database named after the user. */
function withDefaults(keywords: Keywords): Keywords {
  const resolved = { ...keywords };
  resolved.port ??= '5432';
  resolved.user ??= systemUser();
  resolved.dbname ??= resolved.user;
  resolved.host ??= defaultHost(resolved.port);
  resolved.sslmode ??= 'prefer';
  return resolved;
}

function systemUser(): string {
  try {
    return userInfo().username;
  } catch {
    // A container user without a passwd entry.
    return process.env.USER ?? 'postgres';
  }
}

/**
 * No host: the local socket where psql would look for it (Debian and Red Hat
 * builds use /var/run/postgresql, upstream's default is /tmp), or TCP to
 * localhost when no server listens on a socket there.
 */
function defaultHost(port: string): string {
  for (const dir of ['/var/run/postgresql', '/tmp']) {
    if (existsSync(path.join(dir, `.s.PGSQL.${port}`))) return dir;
  }
  return 'localhost';
}

/** libpq's default files in ~/.postgresql, used when they exist and the string names none. */
function addDefaultCertificates(keywords: Keywords, home: string): void {
  const file = (name: string) => {
    const candidate = path.join(home, '.postgresql', name);
    return existsSync(candidate) ? candidate : undefined;
  };
  const root = file('root.crt');
  if (keywords.sslrootcert === undefined && root) keywords.sslrootcert = root;
  const cert = file('postgresql.crt');
  if (keywords.sslcert === undefined && cert) keywords.sslcert = cert;
  const key = file('postgresql.key');
  if (keywords.sslcert !== undefined && keywords.sslkey === undefined && key) keywords.sslkey = key;
}

const strength: Record<SslMode, number> = { disable: 0, allow: 1, prefer: 2, require: 3, 'verify-ca': 4, 'verify-full': 5 };

/** The combinations libpq refuses before connecting. */
function checkTls(keywords: Keywords): void {
  const mode = keywords.sslmode as SslMode;
  if (keywords.sslrootcert === 'system' && strength[mode] < strength['verify-full']) {
    throw new UsageError(`sslmode=${mode} may not be used with sslrootcert=system: use sslmode=verify-full`);
  }
  if (keywords.sslnegotiation === 'direct' && strength[mode] < strength.require) {
    throw new UsageError(`sslmode=${mode} may not be used with sslnegotiation=direct: use require, verify-ca or verify-full`);
  }
}

/** TLS settings for one connection attempt: false is a plain connection. */
export type TlsAttempt = false | ConnectionOptions;

/**
 * The TLS settings to try, in order: two for allow and prefer (libpq falls back
 * when the first is refused), one otherwise. Certificate files are read now.
 */
export function tlsAttempts(keywords: Keywords): TlsAttempt[] {
  const mode = (keywords.sslmode ?? 'prefer') as SslMode;
  if (mode === 'disable') return [false];
  const client = clientCertificate(keywords);
  const unverified: ConnectionOptions = { ...client, rejectUnauthorized: false };
  if (mode === 'allow') return [false, unverified];
  if (mode === 'prefer') return [unverified, false];
  const verified: ConnectionOptions = { ...client, ...trustAnchors(keywords), rejectUnauthorized: true };
  if (mode === 'verify-full') return [verified];
  // verify-ca, and require given a root certificate (libpq's rule): the chain, not the host name.
  if (mode === 'verify-ca' || keywords.sslrootcert) return [{ ...verified, checkServerIdentity: () => undefined }];
  return [unverified];
}

/** sslrootcert's certificates; none named, or `system`: Node's store of public CAs. */
function trustAnchors(keywords: Keywords): ConnectionOptions {
  const file = keywords.sslrootcert;
  return file && file !== 'system' ? { ca: readCertificateFile('sslrootcert', file) } : {};
}

function clientCertificate(keywords: Keywords): ConnectionOptions {
  if (!keywords.sslcert) return {};
  return {
    cert: readCertificateFile('sslcert', keywords.sslcert),
    ...(keywords.sslkey ? { key: readCertificateFile('sslkey', keywords.sslkey) } : {}),
    ...(keywords.sslpassword ? { passphrase: keywords.sslpassword } : {}),
  };
}

function readCertificateFile(keyword: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the ${keyword} file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
}

/** connect_timeout in ms (libpq: whole seconds, at least 2, 0 for none), or the fallback. */
export function connectTimeoutOf(keywords: Keywords, fallbackMs: number): number {
  if (keywords.connect_timeout === undefined) return fallbackMs;
  const seconds = Number(keywords.connect_timeout);
  return seconds === 0 ? 0 : Math.max(2, seconds) * 1000;
}
