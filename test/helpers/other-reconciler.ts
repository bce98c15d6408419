// fixtures/other-reconciler/: a learner's Reconciler in the course's vocabulary
// (users, uuid keys, app.current_user_id, outbox_messages, numeric amounts),
// installed into a test database with roles suffixed for this test file, so no two
// files share a role. profile.json beside it is the profile `sor-drills profile`
// must draft from it, with the fixture's role names.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fixturesDir } from '../../src/postgres/migrations.js';
import { ident, inTransaction, withPgClient } from '../../src/postgres/pg.js';
import { afterAll, beforeAll, expect } from 'vitest';
import { parseProfile, type Profile, type ProfileInUse, resolveProfile } from '../../src/postgres/profile/index.js';
import { isAlive } from '../../src/reconciler/supervisor.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { testSystem, type TestSystem } from './drills.js';

export const otherDir = path.join(fixturesDir, 'other-reconciler');

export interface OtherRoles {
  worker_read: string;
  worker_write: string;
  worker_admin: string;
}

export function otherRoles(suffix = randomBytes(4).toString('hex')): OtherRoles {
  return { worker_read: `worker_read_${suffix}`, worker_write: `worker_write_${suffix}`, worker_admin: `worker_admin_${suffix}` };
}

/** psql's `:"name"` variables, as `psql -v name=value` fills them in (quoted identifiers). */
export function withVariables(sql: string, variables: Record<string, string>): string {
  return sql.replace(/:"(\w+)"/g, (_match, name: string) => {
    const value = variables[name];
    if (value === undefined) throw new Error(`the fixture uses :"${name}", which the test does not set`);
    return ident(value);
  });
}

/** Installs schema.sql and seed.sql as the URL's (superuser) login. */
export async function installOtherReconciler(url: string, roles: OtherRoles, options: { seed?: boolean } = {}): Promise<void> {
  const schema = withVariables(await readFile(path.join(otherDir, 'schema.sql'), 'utf8'), { ...roles });
  const seed = options.seed === false ? '' : await readFile(path.join(otherDir, 'seed.sql'), 'utf8');
  await withPgClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query(schema);
      if (seed) await client.query(seed);
    }),
  );
}

/** fixtures/other-reconciler/profile.json with this test's role names. */
export async function otherProfile(roles: OtherRoles): Promise<Profile> {
  const profile = parseProfile(await readFile(path.join(otherDir, 'profile.json'), 'utf8'), 'fixtures/other-reconciler/profile.json');
  return { ...profile, roles: { worker: roles.worker_write, reader: roles.worker_read, owner: roles.worker_admin } };
}

/** Drops the suffixed roles (after the test database is gone, or with its objects reassigned). */
export async function dropOtherRoles(adminUrl: string, roles: OtherRoles): Promise<void> {
  await withPgClient(adminUrl, async (client) => {
    for (const role of [roles.worker_write, roles.worker_read, roles.worker_admin]) {
      await client.query(`drop role if exists ${ident(role)}`);
    }
  });
}

/**
 * A test file's other-Reconciler target: an empty database with the fixture (and its
 * seed) installed, the fixture's profile resolved on it, and the real processes acting
 * as its worker role. Afterwards every process is stopped, the database disposed and
 * the roles dropped.
 */
export function useOtherTarget(
  ready: (target: { db: TestDatabase; system: TestSystem; profile: ProfileInUse; roles: OtherRoles }) => void,
): void {
  const roles = otherRoles();
  let db: TestDatabase | undefined;
  let system: TestSystem | undefined;
  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    await installOtherReconciler(db.url, roles);
    const profile = await otherProfile(roles);
    const inUse = await withPgClient(db.url, (client) => resolveProfile(client, profile, 'fixtures/other-reconciler/profile.json', true));
    if (inUse.problems.length > 0) throw new Error(`the fixture's profile does not fit: ${inUse.problems.join('; ')}`);
    system = await testSystem(db, profile);
    ready({ db, system, profile: inUse, roles });
  });
  afterAll(async () => {
    const pids = system?.supervisor().startedPids() ?? [];
    await system?.dispose();
    await db?.dispose();
    if (db) await dropOtherRoles(db.adminUrl, roles);
    expect(pids.filter(isAlive)).toEqual([]);
  });
}

/** examples/worker-side: the operator's own Worker side written against the other Reconciler. */
export const exampleDir = path.resolve(otherDir, '../../examples/worker-side');

export type ExampleBug = 'no-resume' | 'no-skip-locked' | 'dispatch-before-send' | 'leak-database-url' | 'sql-tool';

/**
 * examples/worker-side/profile.json with this test's roles, and optionally one of the
 * example's own bugs switched on (EXAMPLE_BUG in the env of the process it lives in).
 */
export async function exampleProfile(roles: OtherRoles, bug?: { bug: ExampleBug; in: 'tool_server' | 'worker' | 'relay'; env?: Record<string, string> }): Promise<Profile> {
  const source = path.join(exampleDir, 'profile.json');
  const profile = parseProfile(await readFile(source, 'utf8'), source);
  const withRoles: Profile = { ...profile, roles: { worker: roles.worker_write, reader: roles.worker_read, owner: roles.worker_admin } };
  if (!bug) return withRoles;
  const processes = structuredClone(withRoles.processes ?? {});
  const spec = processes[bug.in];
  if (!spec) throw new Error(`examples/worker-side/profile.json declares no ${bug.in}`);
  spec.env = { ...spec.env, EXAMPLE_BUG: bug.bug, ...bug.env };
  return { ...withRoles, processes };
}

/** A profile resolved as if read from examples/worker-side/profile.json (its commands run there). */
export async function resolveExample(url: string, profile: Profile): Promise<ProfileInUse> {
  const inUse = await withPgClient(url, (client) => resolveProfile(client, profile, path.join(exampleDir, 'profile.json'), true));
  if (inUse.problems.length > 0) throw new Error(`the example's profile does not fit: ${inUse.problems.join('; ')}`);
  return inUse;
}
