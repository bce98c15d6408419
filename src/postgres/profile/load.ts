// Reading a profile: JSON text -> a checked Profile, or one error that names the
// key and says what is wrong. A value `sor-drills profile` could not decide is
// written as a string starting "TODO"; a run refuses it, naming the key.
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { argumentPlaceholders, envPlaceholders, type Profile, profileSchema } from './schema.js';

/** A profile the operator gave (--profile), read and parsed. */
export interface GivenProfile {
  /** The file as the operator wrote it, for messages. */
  source: string;
  profile: Profile;
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}

/** `runs.status.values.finished` for a path. */
function keyOf(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(top level)' : path.map(String).join('.');
}

/** The TODO strings left in a draft, as `key: text`. */
export function findTodos(value: unknown, path: string[] = []): Array<{ key: string; text: string }> {
  if (typeof value === 'string') return /^TODO\b/i.test(value.trim()) ? [{ key: keyOf(path), text: value.trim() }] : [];
  if (Array.isArray(value)) return value.flatMap((item, index) => findTodos(item, [...path, String(index)]));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => findTodos(item, [...path, key]));
  }
  return [];
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = keyOf(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const keys = issue.keys.map((name) => keyOf([...issue.path, name]));
      return `${keys.length === 1 ? 'unknown key' : 'unknown keys'} ${keys.join(', ')} (see profile.schema.json for the keys a profile has)`;
    }
    case 'invalid_type': {
      const received = /received (\w+)/.exec(issue.message)?.[1];
      const expected = issue.expected === 'object' ? 'an object' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`;
      return received === 'undefined' ? `${key} is missing (it must be ${expected})` : `${key} must be ${expected}, not ${received ? `a ${received}` : 'this'}`;
    }
    case 'invalid_value':
      return `${key} must be ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map((value) => JSON.stringify(value)).join(', ')}`}`;
    default:
      // Custom messages (refinements, lengths) are written to follow the key.
      return `${key} ${issue.message.replace(/^Invalid input: /, '').replace(/^Too (small|big): expected (\w+) to have /, 'must have ')}`;
  }
}

/**
 * A profile from JSON text. `source` names it in errors (a file path or "the built-in
 * reference profile"). Throws a ProfileError of one line.
 */
export function parseProfile(text: string, source: string): Profile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ProfileError(`profile ${source} is not JSON: ${(error as Error).message}`);
  }
  const todos = findTodos(json);
  if (todos.length > 0) {
    const shown = todos.slice(0, 3).map((todo) => `${todo.key} (${todo.text.replace(/^TODO:?\s*/i, '')})`);
    const more = todos.length > 3 ? ` and ${todos.length - 3} more` : '';
    throw new ProfileError(
      `profile ${source} has ${todos.length === 1 ? 'an undecided key' : `${todos.length} undecided keys`}: ${shown.join('; ')}${more}; ` +
        'edit each TODO into a name, or remove an optional key',
    );
  }
  const parsed = profileSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map(describeIssue);
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
    throw new ProfileError(`profile ${source}: ${issues[0]}${more}`);
  }
  checkShape(parsed.data, source);
  return parsed.data;
}

/** Placeholders `{name}` in a text that are not among `known`. */
function unknownPlaceholders(text: string, known: readonly string[]): string[] {
  return [...text.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((match) => match[1]!).filter((name) => !known.includes(name));
}

/** Every template of the processes part names only placeholders the drills fill. */
function checkPlaceholders(profile: Profile, fail: (message: string) => never): void {
  const processes = profile.processes ?? {};
  for (const [part, spec] of Object.entries(processes) as Array<[string, { env?: Record<string, string>; url?: string } | undefined]>) {
    if (!spec) continue;
    const texts: Array<[string, string]> = Object.entries(spec.env ?? {}).map(([name, value]) => [`processes.${part}.env.${name}`, value]);
    if (spec.url) texts.push([`processes.${part}.url`, spec.url]);
    for (const [key, text] of texts) {
      const unknown = unknownPlaceholders(text, envPlaceholders);
      if (unknown.length > 0) fail(`${key} uses {${unknown[0]}}, which the drills do not fill (they fill ${envPlaceholders.map((p) => `{${p}}`).join(', ')})`);
    }
  }
  for (const [tool, spec] of Object.entries(processes.tool_server?.tools ?? {})) {
    for (const [argument, value] of Object.entries(spec?.arguments ?? {})) {
      if (typeof value !== 'string') continue;
      const unknown = unknownPlaceholders(value, argumentPlaceholders);
      if (unknown.length > 0) {
        fail(`processes.tool_server.tools.${tool}.arguments.${argument} uses {${unknown[0]}}, which the drills do not fill (they fill ${argumentPlaceholders.map((p) => `{${p}}`).join(', ')})`);
      }
    }
  }
}

/** What the JSON Schema cannot say: rules across keys. */
function checkShape(profile: Profile, source: string): void {
  const fail = (message: string): never => {
    throw new ProfileError(`profile ${source}: ${message}`);
  };
  checkPlaceholders(profile, fail);
  const keyColumns = profile.expenses.idempotency_key.filter((column) => column !== profile.expenses.tenant);
  if (keyColumns.length !== 1) {
    fail(
      `expenses.idempotency_key must list exactly one key column besides the tenant column ${profile.expenses.tenant}, got ${JSON.stringify(profile.expenses.idempotency_key)}`,
    );
  }
  if (!profile.outbox.payload && !profile.outbox.recipient) {
    fail('outbox needs recipient (with subject and body) or payload, to say where a message goes');
  }
  for (const part of ['pending_transactions', 'runs', 'turns', 'tool_calls', 'outbox'] as const) {
    const values = Object.entries(profile[part].status.values);
    const seen = new Map<string, string>();
    for (const [word, value] of values) {
      const other = seen.get(value);
      if (other) fail(`${part}.status.values.${word} and .${other} are both '${value}': each needs its own value`);
      seen.set(value, word);
    }
  }
}

export async function readProfile(file: string): Promise<Profile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ProfileError(
      code === 'ENOENT' ? `no profile at ${file}; draft one with \`sor-drills profile --db URL --out ${file}\`` : `cannot read profile ${file}: ${(error as Error).message}`,
    );
  }
  return parseProfile(text, file);
}

/** The column of the idempotency key that holds the Worker's key (not the tenant). */
export function idempotencyKeyColumn(profile: Profile): string {
  return profile.expenses.idempotency_key.find((column) => column !== profile.expenses.tenant)!;
}
