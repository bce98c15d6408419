// JUnit XML for CI: a document any XML 1.0 parser reads whatever the evidence
// quotes (process output holds ESC, BEL, NUL), and drills that were not run
// reported as skipped, not as failures.
import { describe, expect, it } from 'vitest';
import { junitXml } from '../../src/drills/junit.js';
import { drills } from '../../src/drills/index.js';
import { runDrills, type RunOptions } from '../../src/drills/runner.js';
import { defaultRoles } from '../../src/postgres/roles.js';
import { defaultDrillOptions } from '../../src/drills/session.js';
import type { BundleKey, DrillResult } from '../../src/drills/types.js';

const when = new Date('2026-01-02T03:04:05Z');

/** The runner's own results when nothing is selected to run: all nine "not run" (no database touched). */
async function notRunResults(): Promise<DrillResult[]> {
  const options: RunOptions = {
    drills,
    url: 'postgres://nobody@127.0.0.1:1/none',
    display: 'postgres://nobody@127.0.0.1:1/none',
    database: 'none',
    embedded: false,
    roles: defaultRoles,
    options: defaultDrillOptions,
    operator: { request: async (_ask, perform) => perform() },
    breaks: new Set(),
    only: new Set<BundleKey>(),
    system: {} as RunOptions['system'],
    emit: () => {},
  };
  return runDrills(options);
}

const ran = (key: BundleKey, verdict: DrillResult['verdict'], evidence: string, reason?: string): DrillResult => ({
  key,
  verdict,
  evidence,
  reason,
  evidenceDirs: [],
  broken: false,
  notes: [],
  durationMs: 1234,
});

/** XML 1.0's Char production (https://www.w3.org/TR/xml/#NT-Char), over the whole document. */
const onlyXmlChars = /^(?:[\t\n\r\u0020-\ud7ff\ue000-\ufffd]|[\ud800-\udbff][\udc00-\udfff])*$/;

const cases = (xml: string) => xml.split('<testcase ').slice(1);

describe('junitXml', () => {
  it('strips the control characters XML 1.0 forbids, keeps tab, newline and CR, and escapes markup', async () => {
    const results = await notRunResults();
    const evidence = 'worker said \u001b[31mred\u001b[0m\u0007 \u0000 a\tb\nc\rd \uffff \ud800 & <ok> "q" 👩‍💻';
    results[2] = ran('idempotency_retry_test', 'pass', evidence);
    results[3] = ran('concurrency_claim_test', 'fail', 'x', `55P03 \u0008lock\u000b not available <${evidence}>`);
    const xml = junitXml(results, drills, when);
    expect(xml).toMatch(onlyXmlChars);
    expect(xml).toContain('<system-out>worker said [31mred[0m  a\tb\nc\rd   &amp; &lt;ok&gt; &quot;q&quot; 👩‍💻</system-out>');
    expect(xml).toContain('message="55P03 lock not available &lt;worker said');
  });

  it('keeps a well-formed surrogate pair (an emoji) and drops a lone one', async () => {
    const results = await notRunResults();
    results[0] = ran('migration_review', 'pass', `ok 🇫🇷 \udc00 \ud83d`);
    const xml = junitXml(results, drills, when);
    expect(xml).toContain('<system-out>ok 🇫🇷  </system-out>');
    expect(xml).toMatch(onlyXmlChars);
  });

  it('drills not run are skipped, not failures; a fail and a could-not-determine are failures', async () => {
    const results = await notRunResults();
    expect(results.every((result) => result.reason === 'not run')).toBe(true);
    results[2] = ran('idempotency_retry_test', 'pass', 'expenses +1');
    results[6] = ran('rls_identity_flip_test', 'fail', 'Alice saw Bob', 'Alice saw 31 of Bob rows');
    results[7] = ran('mcp_boundary_test', 'could-not-determine', 'no statement log', 'no statement log');
    const xml = junitXml(results, drills, when);
    expect(xml).toContain('<testsuites name="sor-drills" tests="9" failures="2" errors="0" skipped="6"');
    expect(xml).toMatch(/<testsuite name="system-of-record drills" tests="9" failures="2" errors="0" skipped="6" time="3\.702" timestamp="2026-01-02T03:04:05.000Z">/);
    const all = cases(xml);
    expect(all).toHaveLength(9);
    const byKey = (key: string) => all.find((entry) => entry.includes(`. ${key}"`))!;
    for (const key of ['migration_review', 'run_journal_resume_drill', 'concurrency_claim_test', 'outbox_relay_retry_test', 'append_only_event_test', 'forensics_drill']) {
      expect(byKey(key)).toContain('<skipped message="not run"/>');
      expect(byKey(key)).not.toContain('<failure');
    }
    expect(byKey('idempotency_retry_test')).toContain('<system-out>expenses +1</system-out>');
    expect(byKey('rls_identity_flip_test')).toContain('<failure type="fail" message="Alice saw 31 of Bob rows">Lesson 7 (');
    expect(byKey('rls_identity_flip_test')).toContain(') missing: Alice saw 31 of Bob rows</failure>');
    expect(byKey('mcp_boundary_test')).toContain('<failure type="could-not-determine"');
    // A drill that could not look blames no habit.
    expect(byKey('mcp_boundary_test')).toContain('>could not judge Lesson 8 (');
    expect(byKey('mcp_boundary_test')).not.toContain('missing:');
  });

  it('a drill with no result at all (the run was cut short) is skipped too', async () => {
    const results = [ran('migration_review', 'pass', 'reviewed')];
    const xml = junitXml(results, drills, when);
    expect(xml).toMatch(/tests="9" failures="0" errors="0" skipped="8"/);
    expect(cases(xml).filter((entry) => entry.includes('<skipped'))).toHaveLength(8);
  });

  it('all nine passed: nothing skipped, nothing failed', () => {
    const results = drills.map((drill) => ran(drill.key, 'pass', 'ok'));
    expect(junitXml(results, drills, when)).toMatch(/tests="9" failures="0" errors="0" skipped="0"/);
  });
});
