// Connection URLs: parsing, validation and masking.
//
// A URL's password must never reach a screen, a log or a file. Everything the
// console shows goes through maskUrl(); maskSecrets() scrubs free text (error
// messages, process logs) that might quote a URL.

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface ParsedUrl {
  url: string;
  user: string;
  host: string;
  port: number;
  database: string;
  password: string;
}

const schemes = new Set(['postgres:', 'postgresql:']);

/** Validates a libpq-style URL (postgres:// or postgresql://, query parameters such as sslmode kept). */
export function parseUrl(raw: string): ParsedUrl {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new UsageError(
      `not a PostgreSQL URL: ${maskSecrets(raw)} (expected postgres://user:password@host:5432/database)`,
    );
  }
  if (!schemes.has(parsed.protocol)) {
    throw new UsageError(
      `not a PostgreSQL URL: scheme ${parsed.protocol} (expected postgres:// or postgresql://)`,
    );
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!database) {
    throw new UsageError(`the URL names no database: ${maskUrl(raw)} (add /dbname after the host)`);
  }
  const port = parsed.port ? Number(parsed.port) : 5432;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new UsageError(`the URL has a bad port: ${maskUrl(raw)}`);
  }
  return {
    url: raw,
    user: decodeURIComponent(parsed.username),
    host: parsed.hostname,
    port,
    database,
    password: decodeURIComponent(parsed.password),
  };
}

/** postgres://user:secret@host/db -> postgres://user:***@host/db; anything unparsable is scrubbed as text. */
export function maskUrl(raw: string): string {
  try {
    const parsed = new URL(raw);
    if (parsed.password) parsed.password = '***';
    for (const key of ['password', 'sslpassword']) {
      if (parsed.searchParams.has(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString().replace('%2A%2A%2A', '***');
  } catch {
    return maskSecrets(raw);
  }
}

/** Replaces anything that looks like a URL password or a password= setting in free text. */
export function maskSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)([^@\s]*)@/gi, '$1***@');
  out = out.replace(/((?:^|[\s?&])(?:ssl)?password=)([^\s&]+)/gi, '$1***');
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}

/** The same URL pointing at another database (for branches and per-test databases). */
export function withDatabase(raw: string, database: string): string {
  const parsed = new URL(raw);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/** The same URL logging in as another role with another password. */
export function withCredentials(raw: string, user: string, password: string): string {
  const parsed = new URL(raw);
  parsed.username = encodeURIComponent(user);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}
