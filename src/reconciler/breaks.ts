// The deliberate breaks of the tool server, apart from the SQL that honours them,
// so a command can name and check them without loading pg.
/** The deliberate breaks of the drills: each removes one mechanism so its drill must fail. */
export interface ToolBreaks {
  /** write inserts a fresh random idempotency key with no ON CONFLICT: a repeated write lands twice. */
  noIdempotencyKey?: boolean;
  /** claim uses plain FOR UPDATE: a second Worker waits on the first one's lock. */
  noSkipLocked?: boolean;
  /** a fifth tool `sql` executes its argument: the surface the boundary drill must catch. */
  rawSqlTool?: boolean;
  /** no agent_events rows at all: the forensics drill cannot build its report. */
  noEvents?: boolean;
  /**
   * claim reads the next pending row without locking it, then marks it claimed: two Workers
   * can take the same row (the fleet drill's broken claim, which its history check must catch).
   */
  claimWithoutLock?: boolean;
}

export const breakNames = ['noIdempotencyKey', 'noSkipLocked', 'rawSqlTool', 'noEvents', 'claimWithoutLock'] as const satisfies ReadonlyArray<
  keyof ToolBreaks
>;

/** The breaks as the tool server's SOR_TOOLS_BREAKS value (comma-separated names). */
export function formatBreaks(breaks: ToolBreaks = {}): string {
  return breakNames.filter((name) => breaks[name]).join(',');
}

export function parseBreaks(raw: string | undefined): ToolBreaks {
  const breaks: ToolBreaks = {};
  for (const name of (raw ?? '').split(',').map((part) => part.trim()).filter(Boolean)) {
    if (!(breakNames as readonly string[]).includes(name)) throw new Error(`unknown break ${name} (known: ${breakNames.join(', ')})`);
    breaks[name as keyof ToolBreaks] = true;
  }
  return breaks;
}
