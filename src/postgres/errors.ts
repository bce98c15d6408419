// Failures as the operator reads them: one line, secrets masked, and the exit
// code each kind of failure ends the process with. Every failure a user can
// cause ends as one line saying what to do, never a stack trace.
//
// The errors are told apart by name, not instanceof: the entry and the console's
// first frame must not load pg or the target modules just to report a failure,
// so this module imports nothing that does.
import { exitCodes, type ExitCode } from '../util/exit-codes.js';
import { maskSecrets } from './url.js';

/** An error (or anything thrown) as one line for a screen, a log or evidence: secrets masked. */
export function errorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : error === undefined ? 'unknown error' : String(error);
  return maskSecrets(text).split('\n')[0] ?? '';
}

const codeByName: Record<string, ExitCode> = {
  UsageError: exitCodes.usage,
  // A profile that does not parse or does not fit the target: the operator's file to fix.
  ProfileError: exitCodes.usage,
  ConsentError: exitCodes.blocked,
  TargetError: exitCodes.unreachable,
};

/**
 * The exit code and the message of a failure. The operator's own mistakes keep
 * their whole message (a usage error carries the usage); anything else is an
 * internal error, masked.
 */
export function describeFailure(error: unknown): { code: ExitCode; message: string } {
  if (error instanceof Error) {
    const code = codeByName[error.name];
    if (code !== undefined) return { code, message: error.message };
    return { code: exitCodes.internal, message: maskSecrets(error.message) };
  }
  return { code: exitCodes.internal, message: maskSecrets(String(error)) };
}
