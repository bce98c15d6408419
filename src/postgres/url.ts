// Connection strings as the rest of the program meets them: the target's
// canonical URL (parseUrl), URLs derived from it (withDatabase, withCredentials),
// and masking. Both of libpq's forms are accepted everywhere: URLs and
// keyword/value strings (connection-string.ts parses them).
//
// A password must never reach a screen, a log or a file. Everything the console
// shows goes through maskUrl(); maskSecrets() scrubs free text (error messages,
// process logs) that might quote a connection string.
import { formatUrl, isUrlForm, maskKeywordValue, parseConnectionString, type SslMode } from './connection-string.js';
import { resolveTargetString } from './connection.js';

export { UsageError } from './usage-error.js';

export interface ParsedUrl {
  /** The canonical URL: everything the connection needs, PG* and .pgpass included; holds the password. */
  url: string;
  user: string;
  host: string;
  port: number;
  database: string;
  password: string;
  sslmode: string;
}

/**
 * A target string entering the program (--db, DATABASE_URL, SOR_WORKER_URL), in
 * either form, filled from PG* variables and the password file as libpq would,
 * checked, and written as one canonical URL. Throws a UsageError naming the mistake.
 */
export function parseUrl(raw: string, env: NodeJS.ProcessEnv = process.env): ParsedUrl {
  const keywords = resolveTargetString(raw, env);
  return {
    url: formatUrl(keywords),
    user: keywords.user!,
    host: keywords.host!,
    port: Number(keywords.port),
    database: keywords.dbname!,
    password: keywords.password ?? '',
    sslmode: keywords.sslmode!,
  };
}

/** postgres://user:secret@host/db -> postgres://user:***@host/db; password=secret -> password=***; anything unparsable is scrubbed as text. */
export function maskUrl(raw: string): string {
  if (!isUrlForm(raw)) return maskKeywordValue(raw);
  try {
    const parsed = new URL(raw.trim());
    if (parsed.password) parsed.password = '***';
    for (const key of ['password', 'sslpassword']) {
      if (parsed.searchParams.has(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString().replace(/%2A%2A%2A/g, '***');
  } catch {
    return maskSecrets(raw);
  }
}

/** Replaces anything that looks like a URL password, or a password setting (password=, PGPASSWORD=), in free text. */
export function maskSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)([^@\s]*)@/gi, '$1***@');
  // A quoted value whole; else to the next whitespace or double quote (a keyword/value
  // password may hold '&'; a JSON log line's closing quote is kept).
  out = out.replace(/((?:^|[\s?&"'])(?:PG)?(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s"]+)/gi, '$1***');
  // SQL's own form: `alter role r password 'x'` (a doubled quote inside the literal is part of it).
  out = out.replace(/(\bpassword\s+)'(?:[^']|'')*'/gi, "$1'***'");
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.replace(secretPattern(secret), '***');
  }
  return out;
}

/**
 * A secret as it may appear in text: each character as written or percent-encoded (as
 * inside a URL, with hex digits in either case), so a partly encoded copy is found too.
 */
function secretPattern(secret: string): RegExp {
  const hexDigit = (digit: string) => `[${digit}${digit.toUpperCase()}]`;
  const parts = Array.from(secret, (char) => {
    const encoded = Array.from(Buffer.from(char, 'utf8'), (byte) => {
      const hex = byte.toString(16).padStart(2, '0');
      return `%${hexDigit(hex[0]!)}${hexDigit(hex[1]!)}`;
    }).join('');
    return `(?:${char.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}|${encoded})`;
  });
  return new RegExp(parts.join(''), 'g');
}

/** The same connection pointing at another database (for branches and per-test databases), as a URL. */
export function withDatabase(raw: string, database: string): string {
  return formatUrl({ ...parseConnectionString(raw), dbname: database });
}

/** The same connection logging in as another role with another password, as a URL. */
export function withCredentials(raw: string, user: string, password: string): string {
  return formatUrl({ ...parseConnectionString(raw), user, password });
}

/** The same connection with another sslmode, as a URL. */
export function withSslMode(raw: string, sslmode: SslMode): string {
  return formatUrl({ ...parseConnectionString(raw), sslmode });
}
