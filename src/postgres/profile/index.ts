// The profile a run drills through: the built-in reference one, or a file the
// operator gave (--profile), checked on the target. See schema.ts for the format.
import path from 'node:path';
import type pg from 'pg';
import { type KeyInfo, profileProblems } from './check.js';
import { type ProfileNames, profileNames } from './names.js';
import { referenceProfile } from './reference.js';
import { type Profile, type ProfileTable, profileTables } from './schema.js';

export { checkProfile, newKey, profileProblems, type KeyInfo } from './check.js';
export { findTodos, type GivenProfile, idempotencyKeyColumn, parseProfile, ProfileError, readProfile } from './load.js';
export { amountValue, centsOf, insertList, profileNames, renderTemplate, requiredInsert, setList, type ProfileNames } from './names.js';
export { referenceProfile } from './reference.js';
export { argumentPlaceholders, envPlaceholders, type Processes, type Profile, profileJsonSchema, profileTables, type ProfileTable, type ToolSpec } from './schema.js';

export const builtInSource = 'built-in reference profile';

export interface ProfileInUse {
  /** Where it came from: a file path, or the built-in reference profile. */
  source: string;
  /** Whether the operator gave it (--profile); false for the built-in reference one. */
  given: boolean;
  profile: Profile;
  names: ProfileNames;
  /** Each part's key column: its type and whether it has a default. */
  keys: Record<ProfileTable, KeyInfo>;
  /** What does not fit the target, one line each (empty when it all fits). */
  problems: string[];
  /** The folder the profile's process commands are resolved against (the file's; the cwd for the built-in one). */
  baseDir: string;
}

/** A profile held against the target. Never throws for a misfit: the caller decides (problems). */
export async function resolveProfile(
  client: Pick<pg.ClientBase, 'query'>,
  profile: Profile,
  source: string,
  given: boolean,
): Promise<ProfileInUse> {
  const { problems, tables } = await profileProblems(client, profile);
  const keys = Object.fromEntries(
    profileTables.map((part) => {
      const column = tables.get(profile[part].table)?.columns.find((candidate) => candidate.name === profile[part].key);
      return [part, { type: column?.type ?? 'text', hasDefault: column?.hasDefault ?? false }];
    }),
  ) as Record<ProfileTable, KeyInfo>;
  const baseDir = given ? path.dirname(path.resolve(source)) : process.cwd();
  return { source, given, profile, names: profileNames(profile), keys, problems, baseDir };
}

/** The reference profile with the run's roles (--worker-role and friends may rename them). */
export function referenceWithRoles(roles: Profile['roles']): Profile {
  return { ...referenceProfile, roles: { ...roles } };
}

/** The profile as the tool server's and relay's SOR_PROFILE value. */
export function profileEnv(profile: Profile): string {
  return JSON.stringify(profile);
}
