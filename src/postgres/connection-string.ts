// Connection strings as libpq reads them, in both of its forms:
//
//   postgres://me:secret@db.example.com:5432/app?sslmode=require    (a URL)
//   host=db.example.com port=5432 dbname=app user=me password='a b'  (keyword/value)
//
// Both are parsed into one map of libpq keywords (host, port, dbname, user,
// password, sslmode, ...) and written back as one canonical URL, so the rest of
// the program (and its child processes) pass plain URL strings around. This
// module only parses and formats: filling gaps from PG* variables and .pgpass is
// connection.ts's job, and happens only where a target enters the program.
import { parse as parseUrlAuthority } from 'pg-connection-string';
import { UsageError } from './usage-error.js';

/** libpq keywords and their values, e.g. { host: 'db', port: '5432', sslmode: 'require' }. */
export type Keywords = Record<string, string>;

export const sslModes = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof sslModes)[number];

const parametersDoc = 'https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS';

/**
 * Every libpq keyword we accept, with the values we accept (undefined: any).
 * The first group is acted on; the rest change nothing for one server reached
 * over TCP or a socket with their listed values, so they are accepted and
 * ignored. Anything else (hostaddr, service, requirepeer, channel_binding=require,
 * ...) would change what the connection means in a way we do not implement: it
 * is refused by name rather than silently dropped.
 */
const accepted: Record<string, readonly string[] | undefined> = {
  host: undefined,
  port: undefined,
  dbname: undefined,
  user: undefined,
  password: undefined,
  passfile: undefined,
  connect_timeout: undefined,
  options: undefined,
  application_name: undefined,
  client_encoding: ['utf8', 'UTF8', 'utf-8', 'UTF-8', 'auto'],
  sslmode: sslModes,
  sslnegotiation: ['postgres', 'direct'],
  sslrootcert: undefined,
  sslcert: undefined,
  sslkey: undefined,
  sslpassword: undefined,
  fallback_application_name: undefined,
  keepalives: undefined,
  keepalives_idle: undefined,
  keepalives_interval: undefined,
  keepalives_count: undefined,
  tcp_user_timeout: undefined,
  sslcompression: undefined,
  sslsni: undefined,
  sslcertmode: ['allow', 'disable'],
  ssl_min_protocol_version: undefined,
  ssl_max_protocol_version: undefined,
  target_session_attrs: ['any'],
  load_balance_hosts: ['disable', 'random'],
  channel_binding: ['disable', 'prefer'],
  gssencmode: ['disable', 'prefer'],
  krbsrvname: undefined,
  gsslib: undefined,
  gssdelegation: undefined,
};

/** libpq keywords whose meaning sor-drills does not implement: refused by name. */
const unsupported = new Set([
  'hostaddr',
  'service',
  'requirepeer',
  'require_auth',
  'sslcrl',
  'sslcrldir',
  'sslkeylogfile',
  'replication',
  'min_protocol_version',
  'max_protocol_version',
]);

/** The keywords a URL holds in its authority and path rather than its query. */
const inAuthority = ['user', 'password', 'host', 'port', 'dbname'] as const;

/** Secret keywords: masked wherever a string is shown. */
export const secretKeywords = ['password', 'sslpassword'] as const;

export function isUrlForm(raw: string): boolean {
  return /^\s*postgres(?:ql)?:\/\//i.test(raw);
}

/** Parses either form into keywords, checked: unknown or unsupported keywords are a UsageError. */
export function parseConnectionString(raw: string): Keywords {
  const trimmed = raw.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed)?.[1];
  if (scheme !== undefined && !isUrlForm(trimmed)) {
    throw new UsageError(`not a PostgreSQL connection string: scheme ${scheme}:// (expected postgres://, postgresql:// or keyword=value pairs)`);
  }
  const keywords = isUrlForm(trimmed) ? parseUrlForm(trimmed) : parseKeywordValue(trimmed);
  checkKeywords(keywords);
  return keywords;
}

/**
 * A URL: the authority and path through pg-connection-string (the parser the pg
 * driver itself uses), the query decoded as libpq does it (percent-decoding only;
 * a `+` stays a `+`). The query is kept away from pg-connection-string on purpose:
 * given sslmode it would read certificate files, throw for verify-ca without a CA,
 * or print a "SECURITY WARNING"; sslmode is ours to interpret (connection.ts).
 */
function parseUrlForm(raw: string): Keywords {
  const queryAt = raw.indexOf('?');
  const base = queryAt === -1 ? raw : raw.slice(0, queryAt);
  const afterScheme = base.replace(/^postgres(?:ql)?:\/\//i, '');
  const slash = afterScheme.indexOf('/');
  const authority = slash === -1 ? afterScheme : afterScheme.slice(0, slash);
  const hostPart = authority.slice(authority.lastIndexOf('@') + 1);
  if (hostPart.includes(',')) {
    throw new UsageError('several hosts in one URL are not supported: name one host');
  }
  let parts: ReturnType<typeof parseUrlAuthority>;
  try {
    parts = parseUrlAuthority(base, { useLibpqCompat: true });
  } catch {
    throw new UsageError(
      'not a valid PostgreSQL URL (expected postgres://user:password@host:5432/database, special characters percent-encoded)',
    );
  }
  const keywords: Keywords = {};
  const path = slash === -1 ? '' : afterScheme.slice(slash + 1);
  const fields: Record<(typeof inAuthority)[number], string | null | undefined> = {
    user: parts.user,
    password: parts.password,
    host: parts.host,
    port: parts.port,
    dbname: decodeComponent(path, 'the database name'),
  };
  for (const [key, value] of Object.entries(fields)) if (value) keywords[key] = value;
  return { ...keywords, ...parseQuery(queryAt === -1 ? '' : raw.slice(queryAt + 1)) };
}

function parseQuery(query: string): Keywords {
  const keywords: Keywords = {};
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    if (equals === -1) throw new UsageError(`missing "=" in URL query parameter "${pair.split('=')[0]}"`);
    const key = decodeComponent(pair.slice(0, equals), 'a query parameter name');
    const value = decodeComponent(pair.slice(equals + 1), `query parameter ${key}`);
    // libpq reads JDBC's ssl=true as sslmode=require.
    if (key === 'ssl' && value === 'true') keywords.sslmode ??= 'require';
    else keywords[key] = value;
  }
  return keywords;
}

function decodeComponent(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new UsageError(`bad percent-encoding in ${what} of the URL`);
  }
}

/**
 * libpq's keyword/value form: `keyword = value` pairs separated by whitespace; a
 * value is single-quoted ('a b') or runs to the next whitespace, and a backslash
 * takes the next character literally in both (\' and \\).
 */
export function parseKeywordValue(raw: string): Keywords {
  const keywords: Keywords = {};
  let at = 0;
  const skipSpace = () => {
    while (at < raw.length && /\s/.test(raw[at]!)) at += 1;
  };
  for (;;) {
    skipSpace();
    if (at >= raw.length) return keywords;
    const start = at;
    while (at < raw.length && raw[at] !== '=' && !/\s/.test(raw[at]!)) at += 1;
    const key = raw.slice(start, at);
    skipSpace();
    if (raw[at] !== '=') {
      const what = Object.keys(keywords).length === 0 ? 'not a PostgreSQL URL or keyword/value string' : 'a bad keyword/value string';
      throw new UsageError(
        `${what}: missing "=" after "${key}" (expected postgres://user:password@host:5432/database or keyword=value pairs such as host=db dbname=app)`,
      );
    }
    at += 1;
    skipSpace();
    const [value, next] = readValue(raw, at, key);
    keywords[key] = value;
    at = next;
  }
}

function readValue(raw: string, from: number, key: string): [string, number] {
  let at = from;
  let value = '';
  const quoted = raw[at] === "'";
  if (quoted) at += 1;
  for (;;) {
    if (at >= raw.length) {
      if (quoted) throw new UsageError(`unterminated quoted value of ${key} in the connection string`);
      return [value, at];
    }
    const char = raw[at]!;
    if (quoted ? char === "'" : /\s/.test(char)) return [value, quoted ? at + 1 : at];
    if (char === '\\' && at + 1 < raw.length) {
      value += raw[at + 1];
      at += 2;
    } else {
      value += char;
      at += 1;
    }
  }
}

/** Refuses what we cannot honour, one line naming the keyword. */
export function checkKeywords(keywords: Keywords, source = 'the connection string'): void {
  for (const [key, value] of Object.entries(keywords)) {
    if (unsupported.has(key)) {
      throw new UsageError(`${key} in ${source} is not supported by sor-drills: leave it out`);
    }
    if (!(key in accepted)) {
      throw new UsageError(`unknown connection parameter "${key}" in ${source} (libpq's parameters: ${parametersDoc})`);
    }
    const allowed = accepted[key];
    if (allowed && !allowed.includes(value)) {
      throw new UsageError(`${key}=${value} in ${source} is not accepted (use one of: ${allowed.join(', ')})`);
    }
  }
  if (keywords.host?.includes(',') || keywords.port?.includes(',')) {
    throw new UsageError(`several hosts in ${source} are not supported: name one host`);
  }
  if (keywords.port !== undefined && !/^\d+$/.test(keywords.port)) {
    throw new UsageError(`the port in ${source} is not a number: ${keywords.port}`);
  }
  const port = Number(keywords.port ?? 5432);
  if (port < 1 || port > 65535) throw new UsageError(`the port in ${source} is out of range: ${keywords.port}`);
  if (keywords.connect_timeout !== undefined && !/^\d+$/.test(keywords.connect_timeout)) {
    throw new UsageError(`connect_timeout in ${source} must be whole seconds: ${keywords.connect_timeout}`);
  }
}

/** Percent-encodes a query value, leaving the characters of file paths readable. */
function encodeQueryValue(value: string): string {
  return encodeURIComponent(value).replace(/%2F/gi, '/').replace(/%3A/gi, ':').replace(/%2C/gi, ',');
}

/**
 * The canonical URL of a keyword map: user, password, host, port and database
 * in the URL's own places (a socket directory as ?host=), every other keyword as
 * a query parameter in a stable order. sslmode=prefer, libpq's default, is left
 * out so a plain target reads as plainly as it was typed.
 */
export function formatUrl(keywords: Keywords): string {
  const user = keywords.user ? encodeURIComponent(keywords.user) : '';
  const password = keywords.password ? `:${encodeURIComponent(keywords.password)}` : '';
  const userinfo = user || password ? `${user}${password}@` : '';
  const host = keywords.host ?? '';
  const socket = host.startsWith('/');
  const hostPart = socket ? '' : host.includes(':') ? `[${host}]` : encodeURIComponent(host);
  const portPart = !socket && keywords.port ? `:${keywords.port}` : '';
  const dbname = keywords.dbname ? encodeURIComponent(keywords.dbname) : '';
  const query: string[] = [];
  if (socket) query.push(`host=${encodeQueryValue(host)}`);
  if (socket && keywords.port) query.push(`port=${keywords.port}`);
  const rest = Object.keys(keywords)
    .filter((key) => !(inAuthority as readonly string[]).includes(key))
    .sort((a, b) => queryRank(a) - queryRank(b) || a.localeCompare(b));
  for (const key of rest) {
    if (key === 'sslmode' && keywords.sslmode === 'prefer') continue;
    query.push(`${key}=${encodeQueryValue(keywords[key]!)}`);
  }
  return `postgres://${userinfo}${hostPart}${portPart}/${dbname}${query.length > 0 ? `?${query.join('&')}` : ''}`;
}

const queryOrder = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'sslnegotiation', 'application_name', 'options'];

function queryRank(key: string): number {
  const rank = queryOrder.indexOf(key);
  return rank === -1 ? queryOrder.length : rank;
}

/** A keyword/value string with its secret values replaced by ***, quoting and spacing kept. */
export function maskKeywordValue(raw: string): string {
  const secrets = secretKeywords.join('|');
  return raw.replace(
    new RegExp(`(^|\\s)(${secrets})(\\s*=\\s*)('(?:[^'\\\\]|\\\\.)*'?|(?:[^\\s\\\\]|\\\\.)*)`, 'gi'),
    '$1$2$3***',
  );
}
