// What the drills need of a target, as data, and how a run that could not look at
// a drill says so: the missing names in one line with an honest hint, and a
// decision that never blames a habit for a drill that could not judge.
import { describe, expect, it } from 'vitest';
import { decisionLine, draftParagraph } from '../../src/drills/bundle.js';
import { drills } from '../../src/drills/index.js';
import { describeMissing, referenceColumns, resolveNeeds, unmappedHint } from '../../src/drills/reference-schema.js';
import { bundleKeys, type BundleKey, type DrillResult } from '../../src/drills/types.js';

function result(key: BundleKey, verdict: DrillResult['verdict'] = 'pass', reason?: string): DrillResult {
  return { key, verdict, evidence: reason ?? `evidence of ${key}`, reason, evidenceDirs: [], broken: false, notes: [], durationMs: 1 };
}

const unmapped = (what: string) => `could not determine: no ${what} found in the target (${unmappedHint})`;

describe('the needs of the nine drills', () => {
  it('every drill declares them, and names only tables and columns of the reference schema', () => {
    for (const drill of drills) {
      expect(drill.needs, drill.key).toBeDefined();
      for (const { table, columns } of resolveNeeds(drill.needs ?? [])) {
        expect(Object.keys(referenceColumns), `${drill.key}: ${table}`).toContain(table);
        for (const column of columns) expect(referenceColumns[table], `${drill.key}: ${table}.${column}`).toContain(column);
      }
    }
  });

  it('the drills that start the tool server need the whole journal it writes', () => {
    const journal = ['runs', 'turns', 'tool_calls', 'agent_events'];
    const withToolServer: BundleKey[] = [
      'run_journal_resume_drill',
      'idempotency_retry_test',
      'concurrency_claim_test',
      'outbox_relay_retry_test',
      'mcp_boundary_test',
      'forensics_drill',
    ];
    for (const key of withToolServer) {
      const needed = resolveNeeds(drills.find((drill) => drill.key === key)!.needs ?? []);
      for (const table of journal) {
        const entry = needed.find((candidate) => candidate.table === table);
        expect(entry?.columns, `${key}: ${table}`).toEqual([...referenceColumns[table as keyof typeof referenceColumns]]);
      }
    }
  });

  it('a table by name means all its reference columns; a narrowed one only those; both merge per table', () => {
    expect(resolveNeeds(['tenants', { table: 'expenses', columns: ['tenant_id'] }, { table: 'expenses', columns: ['id'] }])).toEqual([
      { table: 'tenants', columns: ['id', 'name'] },
      { table: 'expenses', columns: ['tenant_id', 'id'] },
    ]);
  });
});

describe('the missing names, in one line', () => {
  it('names tables, then columns, with the hint, and shortens long lists', () => {
    expect(describeMissing({ tables: ['tenants'], columns: [] })).toBe(`no table tenants found in the target (${unmappedHint})`);
    expect(describeMissing({ tables: ['tenants', 'outbox'], columns: ['expenses.tenant_id'] })).toBe(
      `no tables tenants, outbox and no column expenses.tenant_id found in the target (${unmappedHint})`,
    );
    expect(describeMissing({ tables: [], columns: ['a.a', 'a.b', 'a.c', 'a.d', 'a.e', 'a.f'] })).toMatch(
      /^no columns a\.a, a\.b, a\.c, a\.d and 2 more found in the target \(/,
    );
    expect(describeMissing({ tables: ['tenants'], columns: [] })).not.toMatch(/\n/);
  });

  it('names the command that drafts a profile, and the flag that uses it', () => {
    expect(unmappedHint).toContain('`sor-drills profile --db URL --out profile.json`');
    expect(unmappedHint).toContain('`--profile profile.json`');
  });
});

describe('the decision when drills could not judge', () => {
  const allUnjudged = bundleKeys.map((key) =>
    key === 'migration_review'
      ? result(key)
      : result(key, 'could-not-determine', unmapped(key === 'rls_identity_flip_test' ? 'column expenses.tenant_id' : 'table tenants')),
  );

  it('the paragraph says the run could not judge them, naming them and why, and blames no habit', () => {
    const paragraph = draftParagraph(allUnjudged, drills, 'postgres://me:***@db/app');
    expect(paragraph).toMatch(/^Release BLOCKED\. 1 of nine drills passed against postgres:\/\/me:\*\*\*@db\/app\. /);
    expect(paragraph).toContain(
      "The run could not judge 8 drills, so it says nothing about their lessons' habits: " +
        'run_journal_resume_drill, idempotency_retry_test, concurrency_claim_test, outbox_relay_retry_test, append_only_event_test, mcp_boundary_test, forensics_drill (no table tenants found in the target); ' +
        'rls_identity_flip_test (no column expenses.tenant_id found in the target). ' +
        "The drills went by the reference Reconciler's names, since no profile was given;",
    );
    // The hint once, not once per drill.
    expect(paragraph.split(unmappedHint.slice(1)).length).toBe(2);
    expect(paragraph).not.toMatch(/is missing|habit of Lesson/);
    expect(paragraph).not.toMatch(/smallest change/);
    expect(paragraph).toContain('No change can be named for the drills it could not judge until they can look at the target.');
  });

  it('the release_decision line names them as not judged, without a lesson', () => {
    const line = decisionLine(allUnjudged, drills);
    expect(line).toMatch(/^BLOCKED: could not judge run_journal_resume_drill, idempotency_retry_test, .* \(no table tenants found in the target\); could not judge rls_identity_flip_test \(no column expenses\.tenant_id found in the target\)\. The drills went by the reference Reconciler's names/);
    expect(line).not.toMatch(/Lesson/);
    expect(line).not.toMatch(/\n/);
  });

  it('a drill that failed on its mechanism still names its lesson, habit and fix beside one that could not judge', () => {
    const results = bundleKeys.map((key) =>
      key === 'idempotency_retry_test'
        ? result(key, 'fail', 'two invocations produced 2 expenses rows')
        : key === 'mcp_boundary_test'
          ? result(key, 'could-not-determine', 'could not determine: no statement log')
          : result(key),
    );
    const paragraph = draftParagraph(results, drills, 'db');
    expect(paragraph).toMatch(/^Release BLOCKED\. 7 of nine drills passed against db; idempotency_retry_test failed \(two invocations produced 2 expenses rows\), so the habit of Lesson 3 \(idempotency keys\) is missing\. /);
    expect(paragraph).toContain("The run could not judge one drill, so it says nothing about its lesson's habit: mcp_boundary_test (no statement log).");
    expect(paragraph).not.toContain(unmappedHint);
    expect(paragraph).toMatch(/The smallest change that would unblock the release: .*ON CONFLICT/);
    expect(paragraph).toContain('No change can be named for the drill it could not judge until it can look at the target.');
    expect(paragraph).not.toMatch(/mcp_boundary_test failed|Lesson 8/);
    expect(decisionLine(results, drills)).toBe(
      'BLOCKED: idempotency_retry_test (Lesson 3, idempotency keys); could not judge mcp_boundary_test (no statement log)',
    );
  });
});
