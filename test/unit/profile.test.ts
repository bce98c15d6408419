// The profile's format: the published JSON Schema is the zod schema's, a profile
// is checked on load with one error naming the key, and a draft's TODO is refused.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parseProfile, ProfileError, profileJsonSchema, referenceProfile } from '../../src/postgres/profile/index.js';

const root = path.resolve(import.meta.dirname, '../..');
const published = JSON.parse(readFileSync(path.join(root, 'profile.schema.json'), 'utf8'));
const fixture = readFileSync(path.join(root, 'fixtures/other-reconciler/profile.json'), 'utf8');

/** The reference profile as JSON text, changed by `edit` first. */
function referenceWith(edit: (profile: Record<string, any>) => void): string {
  const profile = structuredClone(referenceProfile) as Record<string, any>;
  edit(profile);
  return JSON.stringify(profile);
}

function refusal(text: string): string {
  try {
    parseProfile(text, 'p.json');
  } catch (error) {
    expect(error).toBeInstanceOf(ProfileError);
    return (error as Error).message;
  }
  throw new Error('the profile was accepted');
}

describe('the published JSON Schema', () => {
  it('is what the zod schema generates (npm run profile-schema rewrites it)', () => {
    expect(published).toEqual(profileJsonSchema());
  });

  it('accepts the reference profile and the other Reconciler fixture, and refuses an unknown key', () => {
    const validate = new Ajv2020({ strict: false }).compile(published);
    expect(validate(referenceProfile), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(JSON.parse(fixture)), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...referenceProfile, extra: 1 })).toBe(false);
  });
});

describe('parseProfile', () => {
  it('reads the fixture and the reference profile', () => {
    expect(parseProfile(JSON.stringify(referenceProfile), 'ref').expenses.table).toBe('expenses');
    expect(parseProfile(fixture, 'profile.json').tenants).toMatchObject({ table: 'users', setting: 'app.current_user_id' });
  });

  it('a wrong key: named with where it is', () => {
    expect(refusal(referenceWith((p) => (p.runs.workr = 'worker')))).toBe(
      'profile p.json: unknown key runs.workr (see profile.schema.json for the keys a profile has)',
    );
  });

  it('a missing key: named, with what it should be', () => {
    expect(refusal(referenceWith((p) => delete p.expenses.tenant))).toBe('profile p.json: expenses.tenant is missing (it must be a string)');
  });

  it('a value of the wrong kind, and a unit it does not know', () => {
    expect(refusal(referenceWith((p) => (p.turns.number = 7)))).toBe('profile p.json: turns.number must be a string, not a number');
    expect(refusal(referenceWith((p) => (p.expenses.amount.unit = 'dollars')))).toBe('profile p.json: expenses.amount.unit must be one of "cents", "major"');
    expect(refusal(referenceWith((p) => (p.version = 2)))).toBe('profile p.json: version must be 1');
    expect(refusal(referenceWith((p) => (p.runs.table = '')))).toBe('profile p.json: runs.table must be a table or column name, not empty');
  });

  it('a setting that is not a custom dotted name', () => {
    expect(refusal(referenceWith((p) => (p.tenants.setting = 'tenant_id')))).toBe(
      'profile p.json: tenants.setting must be a custom setting such as app.tenant_id (a dotted name)',
    );
  });

  it('a TODO left by a draft: refused, naming the key and what it says', () => {
    expect(refusal(referenceWith((p) => (p.runs.worker = 'TODO: two columns could hold the worker: worker, host')))).toBe(
      'profile p.json has an undecided key: runs.worker (two columns could hold the worker: worker, host); edit each TODO into a name, or remove an optional key',
    );
  });

  it('rules across keys: one idempotency key column besides the tenant, distinct status values, somewhere for the recipient', () => {
    expect(refusal(referenceWith((p) => (p.expenses.idempotency_key = ['tenant_id'])))).toMatch(
      /expenses\.idempotency_key must list exactly one key column besides the tenant column tenant_id/,
    );
    expect(refusal(referenceWith((p) => (p.runs.status.values.failed = 'finished')))).toBe(
      "profile p.json: runs.status.values.failed and .finished are both 'finished': each needs its own value",
    );
    expect(refusal(referenceWith((p) => delete p.outbox.recipient))).toMatch(/outbox needs recipient .* or payload/);
  });

  it('not JSON at all', () => {
    expect(refusal('{ "version": 1,')).toMatch(/^profile p\.json is not JSON: /);
  });
});
