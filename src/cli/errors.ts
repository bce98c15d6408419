// Exit codes and the one top-level catch: every failure a user can cause ends
// as one line saying what to do, never a stack trace.
//
// The errors are told apart by name, not instanceof: the entry must not load pg or
// the target modules just to report a failure (the console's first frame waits on
// what the entry imports).
import { maskSecrets } from '../postgres/url.js';

export const exitCodes = {
  ok: 0,
  blocked: 1,
  usage: 2,
  unreachable: 3,
  escalate: 4,
} as const;

const codeByName: Record<string, number> = {
  UsageError: exitCodes.usage,
  ConsentError: exitCodes.blocked,
  TargetError: exitCodes.unreachable,
};

export function describeFailure(error: unknown): { code: number; message: string } {
  if (error instanceof Error) {
    const code = codeByName[error.name];
    if (code !== undefined) return { code, message: error.message };
    return { code: 70, message: maskSecrets(error.message) };
  }
  return { code: 70, message: maskSecrets(String(error)) };
}
