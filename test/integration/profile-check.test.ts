// A profile held against a real target's catalog: the reference profile fits the
// reference schema, fixtures/other-reconciler/profile.json fits that schema, and
// each kind of misfit is one line naming the profile key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dropOtherRoles, installOtherReconciler, otherProfile, otherRoles } from '../helpers/other-reconciler.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { checkProfile, type Profile, ProfileError, profileProblems, referenceProfile } from '../../src/postgres/profile/index.js';

const roles = otherRoles();
let reference: TestDatabase;
let other: TestDatabase;
let profile: Profile;

beforeAll(async () => {
  reference = await createTestDatabase();
  other = await createTestDatabase({ empty: true });
  await installOtherReconciler(other.url, roles);
  profile = await otherProfile(roles);
});

afterAll(async () => {
  await reference?.dispose();
  await other?.dispose();
  if (other) await dropOtherRoles(other.adminUrl, roles);
});

const problemsOf = (url: string, candidate: Profile) => withPgClient(url, (client) => profileProblems(client, candidate)).then((r) => r.problems);

describe('a profile against the catalog', () => {
  it('the built-in reference profile fits the reference schema', async () => {
    expect(await problemsOf(reference.url, referenceProfile)).toEqual([]);
  });

  it("the other Reconciler's profile fits its schema, and its keys are read from the catalog", async () => {
    expect(await problemsOf(other.url, profile)).toEqual([]);
    const checked = await withPgClient(other.url, (client) => checkProfile(client, profile, 'profile.json'));
    expect(checked.keys.tenants).toEqual({ type: 'uuid', hasDefault: true });
    expect(checked.keys.events).toEqual({ type: 'bigint', hasDefault: true });
  });

  it('the reference profile on the other schema names what does not fit', async () => {
    const problems = await problemsOf(other.url, { ...referenceProfile, roles: profile.roles });
    expect(problems).toContain('tenants.table names tenants, which is not a table in schema public');
    expect(problems).toContain('expenses.tenant names column tenant_id, which expenses does not have');
  });

  it('a missing table, a missing column, a status value the CHECK refuses, a role that is not there', async () => {
    const wrong: Profile = structuredClone(profile);
    wrong.outbox.table = 'outbox';
    wrong.runs.worker = 'worker';
    wrong.runs.status.values.finished = 'finished';
    wrong.roles.reader = 'no_such_reader_role';
    const problems = await problemsOf(other.url, wrong);
    expect(problems).toEqual(
      expect.arrayContaining([
        'outbox.table names outbox, which is not a table in schema public',
        'runs.worker names column worker, which runs does not have',
        "runs.status.values.finished is 'finished', which the CHECK runs_status_check on runs.status does not allow (it allows 'running', 'completed', 'failed')",
        'roles.reader names role no_such_reader_role, which the server does not have',
      ]),
    );
    await expect(withPgClient(other.url, (client) => checkProfile(client, wrong, 'p.json'))).rejects.toThrow(ProfileError);
  });

  it('a NOT NULL column without a default that nothing fills is named with the key to add', async () => {
    const wrong: Profile = structuredClone(profile);
    delete wrong.tenants.required;
    expect(await problemsOf(other.url, wrong)).toEqual([
      'users.email is NOT NULL with no default and the profile does not fill it: add it to tenants.required with a value template',
    ]);
  });
});
