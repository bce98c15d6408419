// The run's flags and their checks, apart from the run itself, so the console's
// entry can parse and check them without loading the drills, pg or the target modules.
import { UsageError } from '../postgres/url.js';
import { defaultRoles, type Roles } from '../postgres/roles.js';
import type { BundleKey } from '../drills/types.js';
import type { GivenProfile } from './profile-file.js';
import {
  bundleKeysOf,
  connectionString,
  integerFlag,
  readableFile,
  roleNameFlag,
  keepFlag,
  targetString,
  writableFile,
} from './input-checks.js';

export const runFlags = {
  db: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  break: { type: 'string', multiple: true },
  only: { type: 'string', multiple: true },
  migration: { type: 'string' },
  profile: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  junit: { type: 'string' },
  gate: { type: 'string' },
  pack: { type: 'boolean' },
  pace: { type: 'string' },
  keep: { type: 'boolean' },
  'worker-role': { type: 'string' },
  'reader-role': { type: 'string' },
  'owner-role': { type: 'string' },
} as const;

/** The run's input, every part of it checked. */
export interface RunInput {
  /** The target string (undefined: the embedded cluster). */
  db?: string;
  yes: boolean;
  keep: boolean;
  json: boolean;
  /** --pack: the bundle and its evidence packed into <bundle>.tar.gz too. */
  pack: boolean;
  breaks: BundleKey[];
  only: BundleKey[];
  gate?: BundleKey;
  /** Absolute paths. */
  migration?: string;
  out?: string;
  junit?: string;
  /** Undefined when --pace is absent: the console and the headless run have their own defaults. */
  paceMs?: number;
  roles: Roles;
  /** --profile: the file, read and checked in shape (its fit to the target is checked once the target is reached). */
  profile?: GivenProfile;
}

/** Checks every flag value, every file a flag names and the target string; rejects with a UsageError on the first bad one. */
export async function checkRunInput(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<RunInput> {
  const db = targetString(values.db, env);
  // Read when the drills start the tool server: a malformed one would fail minutes into the run.
  if (env.SOR_WORKER_URL) connectionString('SOR_WORKER_URL', env.SOR_WORKER_URL);
  const gate = values.gate === undefined ? undefined : bundleKeysOf('--gate', [values.gate])[0];
  const out = values.out === undefined ? undefined : writableFile('--out', String(values.out));
  const junit = values.junit === undefined ? undefined : writableFile('--junit', String(values.junit));
  if (out && junit && out === junit) throw new UsageError(`--out and --junit both name ${String(values.out)}; give them different files`);
  return {
    db,
    yes: Boolean(values.yes),
    keep: keepFlag(values.keep, db),
    json: Boolean(values.json),
    pack: Boolean(values.pack),
    breaks: bundleKeysOf('--break', values.break),
    only: bundleKeysOf('--only', values.only),
    gate,
    migration: values.migration === undefined ? undefined : readableFile('--migration', String(values.migration)),
    out,
    junit,
    paceMs: values.pace === undefined ? undefined : integerFlag('--pace', values.pace, { fallback: 0 }),
    ...(await rolesAndProfile(values)),
  };
}

/**
 * The roles come from the profile when one is given (its `roles`), else from the
 * role flags; both at once would name a role twice, so that is refused.
 */
async function rolesAndProfile(values: Record<string, unknown>): Promise<{ roles: Roles; profile?: GivenProfile }> {
  const flags = {
    worker: roleNameFlag('--worker-role', values['worker-role'], defaultRoles.worker),
    reader: roleNameFlag('--reader-role', values['reader-role'], defaultRoles.reader),
    owner: roleNameFlag('--owner-role', values['owner-role'], defaultRoles.owner),
  };
  if (values.profile === undefined) return { roles: flags };
  const given = (['worker-role', 'reader-role', 'owner-role'] as const).find((flag) => values[flag] !== undefined);
  if (given) throw new UsageError(`--${given} and --profile both name a role: set the roles in the profile's "roles"`);
  // The profile's reader (and zod under it) loads only for --profile: a run without one starts its cluster sooner.
  const { readGivenProfile } = await import('./profile-file.js');
  const profile = readGivenProfile(String(values.profile));
  return { roles: { ...profile.profile.roles }, profile };
}
