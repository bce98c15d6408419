// The server's own stderr log, as the boundary drill reads it: split into entries,
// then the statements of one database between two marker statements counted and
// searched for DROP or TRUNCATE. Pure: the file is read, and statement logging
// switched on and off, in statement-log.ts.

/** A statement that changes or destroys schema or data wholesale: what the window must not show, from anyone. */
export const rogueStatement = /\b(drop|truncate)\b/i;

/**
 * DDL: a statement (or a statement after a `;` in the same text) that begins by
 * changing the schema or its grants. The Worker side (the tool server's login) must
 * never send one; the drill's own admin session may (a worker login's password set
 * on the embedded cluster), so this counts only the Worker side's statements.
 */
export const ddlStatement =
  /(?:^|;)\s*(?:create|alter|drop|truncate|comment\s+on|grant|revoke|security\s+label|reindex|refresh\s+materialized\s+view|import\s+foreign\s+schema)\b/i;

/** Whether a statement is one the window must not show: DROP or TRUNCATE from anyone, DDL from the Worker side. */
export function isRogue(sql: string, fromWorkerSide: boolean): boolean {
  return rogueStatement.test(sql) || (fromWorkerSide && ddlStatement.test(sql));
}

/**
 * The settings the drill's window runs with. The line prefix is the one
 * parseServerLog reads: the database and user on every session's line, so only
 * the target's statements are counted.
 */
export const logSettings: ReadonlyArray<readonly [string, string]> = [
  ['log_statement', 'all'],
  ['log_line_prefix', '%m [%p] %q{db=%d}{user=%u} '],
];

export interface LogEntry {
  pid: string;
  database: string | undefined;
  user: string | undefined;
  /** LOG, DETAIL, STATEMENT, ERROR, ... */
  level: string;
  text: string;
}

/**
 * Splits the server's stderr log into entries. A message's own newlines are
 * followed by a tab (so bind parameters holding newlines cannot forge a line);
 * a line that is neither a tab continuation nor a prefixed line is the tail of
 * a line cut in two where the log was written in chunks, and is glued back.
 */
export function parseServerLog(text: string): LogEntry[] {
  const entries: LogEntry[] = [];
  const prefixed = /^.*? \[(\d+)\] (?:\{db=(.*?)\}\{user=(.*?)\} )?([A-Z][A-Z0-9]*):  (.*)$/;
  for (const line of text.split('\n')) {
    const last = entries.at(-1);
    if (line.startsWith('\t')) {
      if (last) last.text += `\n${line.slice(1)}`;
      continue;
    }
    const match = prefixed.exec(line);
    if (match) {
      entries.push({ pid: match[1]!, database: match[2], user: match[3], level: match[4]!, text: match[5]! });
    } else if (last && line !== '') {
      last.text += line;
    }
  }
  return entries;
}

/** The SQL of a statement entry (`statement: ...`, `execute <name>: ...`), else undefined. */
export function statementText(entry: LogEntry): string | undefined {
  if (entry.level !== 'LOG') return undefined;
  const match = /^(?:statement|execute [^:]*): ([\s\S]*)$/.exec(entry.text);
  return match ? match[1] : undefined;
}

export interface WindowReport {
  /** Statements of the target database between the markers. */
  statements: number;
  /** Of those, sent by the Worker side (the tool server's login). */
  workerStatements: number;
  /** DROP or TRUNCATE statements seen, and the Worker side's DDL (and error STATEMENT lines quoting one), shortened. */
  rogue: string[];
  /** Worker-side statements between the drop_table markers. */
  dropTableStatements: number | undefined;
}

/** Where the first statement quoting `marker` is, at or after `from` (-1 when none). */
export function markerIndex(entries: LogEntry[], marker: string, from = 0): number {
  return entries.findIndex((entry, index) => index >= from && (statementText(entry) ?? '').includes(marker));
}

/** Analyses the entries between the start and end markers for one database. */
export function analyseWindow(
  entries: LogEntry[],
  markers: { start: string; end: string; dropBefore?: string; dropAfter?: string },
  database: string,
  workerUser: string | undefined,
): WindowReport {
  const start = markerIndex(entries, markers.start);
  const end = markerIndex(entries, markers.end, Math.max(start, 0));
  if (start < 0 || end < 0) throw new Error('the markers of the window are not both in the log');
  const inWindow = entries.slice(start + 1, end).filter((entry) => entry.database === database);
  let statements = 0;
  let workerStatements = 0;
  const found: string[] = [];
  for (const entry of inWindow) {
    const sql = statementText(entry);
    const fromWorkerSide = workerUser !== undefined && entry.user === workerUser;
    if (sql !== undefined) {
      statements += 1;
      if (fromWorkerSide) workerStatements += 1;
      if (isRogue(sql, fromWorkerSide)) found.push(sql);
    } else if (entry.level === 'STATEMENT' && isRogue(entry.text, fromWorkerSide)) {
      found.push(entry.text);
    }
  }
  let dropTableStatements: number | undefined;
  if (markers.dropBefore && markers.dropAfter) {
    const before = markerIndex(entries, markers.dropBefore, start);
    const after = markerIndex(entries, markers.dropAfter, Math.max(before, start));
    if (before >= 0 && after >= 0) {
      dropTableStatements = entries
        .slice(before + 1, after)
        .filter((entry) => entry.database === database && entry.user === workerUser && statementText(entry) !== undefined).length;
    }
  }
  const shorten = (sql: string) => {
    const line = sql.replace(/\s+/g, ' ').trim();
    return line.length > 120 ? `${line.slice(0, 117)}...` : line;
  };
  return { statements, workerStatements, rogue: found.map(shorten), dropTableStatements };
}

