// The bundle's shape, key by key against the seed, and the decision paragraph.
import { describe, expect, it } from 'vitest';
import { assembleBundle, decisionOf, draftParagraph, parseBundle, renderBundle } from '../../src/drills/bundle.js';
import { drills } from '../../src/drills/index.js';
import { bundleKeys, type BundleKey, type DrillResult } from '../../src/drills/types.js';

// The seed's bundle, in its order (seeds/000_3e2bac6ed85a2da7.txt, "The Evidence Bundle").
const seedKeys = [
  'migration_review',
  'run_journal_resume_drill',
  'idempotency_retry_test',
  'concurrency_claim_test',
  'outbox_relay_retry_test',
  'append_only_event_test',
  'rls_identity_flip_test',
  'mcp_boundary_test',
  'forensics_drill',
  'release_decision',
];

function result(key: BundleKey, verdict: DrillResult['verdict'] = 'pass', reason?: string): DrillResult {
  return { key, verdict, evidence: reason ?? `evidence of ${key}`, reason, evidenceDirs: [], broken: false, notes: [], durationMs: 1 };
}

const allPass = bundleKeys.map((key) => result(key));

describe('the evidence bundle', () => {
  it('has exactly the seed keys in the seed order', () => {
    expect(Object.keys(assembleBundle(allPass, drills))).toEqual(seedKeys);
    expect(bundleKeys).toEqual(seedKeys.slice(0, 9));
  });

  it('is "pass" or "fail: <one-line reason>" per drill', () => {
    const results = allPass.map((r) => (r.key === 'idempotency_retry_test' ? result(r.key, 'fail', 'two rows\nlanded') : r));
    const bundle = assembleBundle(results, drills);
    expect(bundle.idempotency_retry_test).toBe('fail: two rows\nlanded');
    expect(bundle.migration_review).toBe('pass');
    expect(bundle.release_decision).toMatch(/^BLOCKED: idempotency_retry_test \(Lesson 3, idempotency keys\)$/);
  });

  it('a drill that could not be determined counts as fail; a missing drill is "fail: not run"', () => {
    const results = allPass.filter((r) => r.key !== 'forensics_drill').map((r) =>
      r.key === 'mcp_boundary_test' ? result(r.key, 'could-not-determine', 'could not determine: no statement log') : r,
    );
    const bundle = assembleBundle(results, drills);
    expect(bundle.mcp_boundary_test).toBe('fail: could not determine: no statement log');
    expect(bundle.forensics_drill).toBe('fail: not run');
    expect(decisionOf(results)).toBe('BLOCKED');
  });

  it('PERMITTED only when all nine passed', () => {
    expect(decisionOf(allPass)).toBe('PERMITTED');
    expect(assembleBundle(allPass, drills).release_decision).toMatch(/^PERMITTED/);
    expect(draftParagraph(allPass, drills, 'db')).toMatch(/^Release PERMITTED\./);
  });

  it('the BLOCKED paragraph names each failed drill, its lesson and the smallest change', () => {
    const results = allPass.map((r) => (r.key === 'idempotency_retry_test' ? result(r.key, 'fail', 'produced 2 expenses rows') : r));
    const paragraph = draftParagraph(results, drills, 'db');
    expect(paragraph).toMatch(/^Release BLOCKED\. 8 of nine drills passed/);
    expect(paragraph).toMatch(/idempotency_retry_test failed \(produced 2 expenses rows\), so the habit of Lesson 3 \(idempotency keys\) is missing/);
    expect(paragraph).toMatch(/ON CONFLICT \(tenant_id, idempotency_key\) DO NOTHING/);
  });

  it('a drill that was not run (--only) is named, never blamed for a missing habit', () => {
    const results = [result('idempotency_retry_test', 'fail', 'produced 2 expenses rows')];
    const paragraph = draftParagraph(results, drills, 'db');
    expect(paragraph).toMatch(/^Release BLOCKED\. 0 of nine drills passed against db; idempotency_retry_test failed .* Lesson 3 \(idempotency keys\) is missing\. /);
    expect(paragraph).toContain('8 drills were not run, so the run says nothing about their habits: migration_review, run_journal_resume_drill,');
    expect(paragraph).not.toMatch(/migration_review failed|Lesson 1 .* is missing/);
    expect(paragraph).toContain('run the drills that did not run');
  });

  it('the fix speaks the profile\'s names: a single-column key on the learner\'s own table', async () => {
    const { profileNames, referenceProfile } = await import('../../src/postgres/profile/index.js');
    const names = profileNames({ ...referenceProfile, expenses: { ...referenceProfile.expenses, table: 'spend', idempotency_key: ['idem'] } });
    const results = allPass.map((r) => (r.key === 'idempotency_retry_test' ? result(r.key, 'fail', 'produced 2 rows') : r));
    expect(draftParagraph(results, drills, 'db', names)).toContain('keep a unique key on spend (idem) and write with INSERT ... ON CONFLICT (idem) DO NOTHING');
  });

  it('the file holds the JSON, the paragraph right below it, then the evidence and a manifest', async () => {
    const document = await renderBundle(allPass, drills, 'Release PERMITTED. Edited by the operator.', process.cwd(), {
      target: 'postgres://u:***@h/db',
      when: new Date('2026-11-21T10:00:00Z'),
    });
    const parsed = parseBundle(document.text);
    expect(parsed.bundle).toEqual(document.bundle);
    expect(parsed.paragraph).toBe('Release PERMITTED. Edited by the operator.');
    expect(document.text).toMatch(/## Evidence[\s\S]*## Manifest \(sha256\)/);
  });
});
