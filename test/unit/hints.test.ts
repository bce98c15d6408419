// Every step of the nine drills carries a learner's hint (what the console's `h`
// shows): what to look for in what the step shows, and the mistake people make
// there. Each part is one line of plain text, short enough that the hint with the
// drill's habit fits one 80x24 screen, and no two steps of a drill say the same.
// Three lessons name a mistake the hints must not leave out.
import { describe, expect, it } from 'vitest';
import { drills } from '../../src/drills/index.js';
import { stepSummary } from '../../src/drills/runner.js';
import type { BundleKey, Drill } from '../../src/drills/types.js';
import { profileNames, referenceProfile } from '../../src/postgres/profile/index.js';

const maxChars = 260;

function drill(key: BundleKey): Drill {
  const found = drills.find((candidate) => candidate.key === key);
  if (!found) throw new Error(`no drill ${key}`);
  return found;
}

/** Every look and mistake of a drill, in step order. */
function texts(of: Drill): string[] {
  return of.steps.flatMap((step) => [step.hint.look, step.hint.mistake]);
}

describe('step hints', () => {
  it('covers the nine drills', () => {
    expect(drills).toHaveLength(9);
  });

  describe.each(drills.map((each) => [each.key, each] as const))('%s', (_key, each) => {
    it('gives every step a short, one-line look and mistake', () => {
      expect(each.steps.length).toBeGreaterThan(0);
      for (const step of each.steps) {
        for (const [part, text] of [
          ['look', step.hint?.look],
          ['mistake', step.hint?.mistake],
        ] as const) {
          const where = `${each.key} step ${step.id}: hint.${part}`;
          expect(typeof text, where).toBe('string');
          expect(text!.trim(), where).not.toBe('');
          expect(text!.length, `${where} is ${text!.length} characters`).toBeLessThanOrEqual(maxChars);
          expect(text, where).not.toMatch(/[\r\n]/);
          // Plain text: the console prints it as it is.
          expect(text, where).not.toMatch(/`|\*\*/);
        }
      }
    });

    it('says something different at every step', () => {
      const all = texts(each);
      const repeated = all.filter((text, index) => all.indexOf(text) !== index);
      expect(repeated).toEqual([]);
    });

    it('reaches the console through the step summary', () => {
      const names = profileNames(referenceProfile);
      for (const step of each.steps) expect(stepSummary(step, names).hint).toEqual(step.hint);
    });
  });

  it('the RLS drill warns that a superuser or the table owner proves nothing', () => {
    expect(texts(drill('rls_identity_flip_test')).some((text) => /superuser|owner/i.test(text))).toBe(true);
  });

  it('the append-only drill says TRUNCATE is a way around row triggers', () => {
    expect(texts(drill('append_only_event_test')).some((text) => text.includes('TRUNCATE'))).toBe(true);
  });

  it('the race drill says a claim needs a lease', () => {
    expect(texts(drill('concurrency_claim_test')).some((text) => /\blease/i.test(text))).toBe(true);
  });

  it("the race step shows the tool server's claim, its lease clause only where the target has a lease column", () => {
    const race = drill('concurrency_claim_test').steps.find((step) => step.id === 'race')!;
    const shown = (names: ReturnType<typeof profileNames>) => (typeof race.sql === 'function' ? race.sql(names) : race.sql ?? [])[0] ?? '';
    expect(shown(profileNames(referenceProfile))).toContain('and ("status" = $2 or ("status" = $3 and "locked_until" < clock_timestamp())) order by');
    const { lease_until: _lease, ...leaseless } = referenceProfile.pending_transactions;
    expect(shown(profileNames({ ...referenceProfile, pending_transactions: leaseless }))).toContain('and ("status" = $2) order by');
  });

  it('the RLS truth step says the counts need a superuser or BYPASSRLS, not the owner', () => {
    const truth = drill('rls_identity_flip_test').steps.find((step) => step.id === 'truth')!;
    expect(truth.why).toMatch(/superuser or hold BYPASSRLS/);
    expect(truth.why).not.toMatch(/as the owner/);
  });

  it('the branch step shows the Neon branch beside CREATE DATABASE ... TEMPLATE', () => {
    const branch = drill('migration_review').steps.find((step) => step.id === 'branch')!;
    expect(branch.sql).toEqual([expect.stringMatching(/^create database .* template <target>$/), expect.stringMatching(/Neon branch/)]);
  });
});
