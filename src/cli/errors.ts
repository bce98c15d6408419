// Exit codes and the one top-level catch: every failure a user can cause ends
// as one line saying what to do, never a stack trace.
import { ConsentError } from '../target/setup.js';
import { TargetError, errorMessage } from '../target/pg.js';
import { UsageError, maskSecrets } from '../target/url.js';

export const exitCodes = {
  ok: 0,
  blocked: 1,
  usage: 2,
  unreachable: 3,
  escalate: 4,
} as const;

export function describeFailure(error: unknown): { code: number; message: string } {
  if (error instanceof UsageError) return { code: exitCodes.usage, message: error.message };
  if (error instanceof ConsentError) return { code: exitCodes.blocked, message: error.message };
  if (error instanceof TargetError) return { code: exitCodes.unreachable, message: error.message };
  return { code: 70, message: maskSecrets(errorMessage(error)) };
}
