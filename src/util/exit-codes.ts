// Every exit code sor-drills ends with, named once. The console, the commands and
// the entry set a code only through these names (README: "Exit codes").
//
// It sits in util, the lowest layer: the entry, the commands, the console and the
// process lifecycle all name codes through it; it imports nothing.
export const exitCodes = {
  /** Done; a drill run: release PERMITTED; the oracle: APPROVE. */
  ok: 0,
  /** Release BLOCKED; the oracle: REJECT; a write into the target refused (consent withheld). */
  blocked: 1,
  /** Bad usage: unknown flag or command, malformed URL, a URL target without --yes. */
  usage: 2,
  /** The target is unreachable, refuses us, or lacks a privilege. */
  unreachable: 3,
  /** The oracle: ESCALATE (nothing asserted, or it could not be determined). */
  escalate: 4,
  /** An internal error: a bug, reported in one line (EX_SOFTWARE). */
  internal: 70,
  /** The terminal went away (SIGHUP, 128 + 1). */
  hangup: 129,
  /** Interrupted: ctrl+c (SIGINT, 128 + 2), or the console quit before the decision. */
  interrupted: 130,
  /** The reader of the output went away (`| head`: SIGPIPE, 128 + 13). */
  brokenPipe: 141,
  /** Terminated (SIGTERM, 128 + 15). */
  terminated: 143,
} as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];
