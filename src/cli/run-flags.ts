// The run's flags and their checks, apart from the run itself, so the console's
// entry can parse them without loading the drills, pg or the target modules.
import { UsageError } from '../postgres/url.js';

export const runFlags = {
  db: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  break: { type: 'string', multiple: true },
  only: { type: 'string', multiple: true },
  migration: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  junit: { type: 'string' },
  gate: { type: 'string' },
  pace: { type: 'string' },
  keep: { type: 'boolean' },
  'worker-role': { type: 'string' },
  'reader-role': { type: 'string' },
  'owner-role': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function paceOf(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const pace = Number(value);
  if (!Number.isInteger(pace) || pace < 0) throw new UsageError(`--pace ${String(value)}: expected milliseconds (0 or more)`);
  return pace;
}
