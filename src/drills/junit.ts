// JUnit XML of a drill run, for CI release gates: one test case per drill. A drill
// that did not run (--only, or a run cut short) is skipped, not failed: a CI report
// must not count as broken what nobody looked at. The release decision still counts
// it as a fail (the bundle says "fail: not run"); this file only reports.
import type { Drill, DrillResult } from './types.js';

/**
 * What XML 1.0 forbids (https://www.w3.org/TR/xml/#charsets): C0 controls other than tab,
 * newline and carriage return, lone surrogates, U+FFFE and U+FFFF. Evidence quotes process
 * output and database errors, which can hold any of them; one makes the whole file unreadable.
 */
const forbiddenInXml = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function xmlText(text: string): string {
  return text
    .replace(forbiddenInXml, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** The runner's mark of a drill left out by --only (src/drills/runner.ts). */
const notRunReason = 'not run';

function wasRun(result: DrillResult | undefined): result is DrillResult {
  return result !== undefined && !(result.verdict === 'fail' && result.reason === notRunReason && result.evidence === notRunReason);
}

function testCase(drill: Drill, result: DrillResult | undefined): string {
  const seconds = ((result?.durationMs ?? 0) / 1000).toFixed(3);
  const head = `    <testcase classname="sor-drills" name="${xmlText(`${drill.number}. ${drill.key}`)}" time="${seconds}">`;
  let body: string;
  if (!wasRun(result)) body = '      <skipped message="not run"/>';
  else if (result.verdict === 'pass') body = `      <system-out>${xmlText(result.evidence)}</system-out>`;
  else {
    const reason = result.reason ?? result.evidence;
    // A drill that could not look says nothing about the lesson's habit.
    const detail =
      result.verdict === 'could-not-determine'
        ? `could not judge Lesson ${drill.lesson} (${drill.habit}): ${reason}`
        : `Lesson ${drill.lesson} (${drill.habit}) missing: ${reason}`;
    body = `      <failure type="${result.verdict}" message="${xmlText(reason)}">${xmlText(detail)}</failure>`;
  }
  return [head, body, '    </testcase>'].join('\n');
}

export function junitXml(results: readonly DrillResult[], drills: readonly Drill[], when: Date): string {
  const resultOf = (drill: Drill) => results.find((result) => result.key === drill.key);
  const ran = drills.map(resultOf).filter(wasRun);
  const failures = ran.filter((result) => result.verdict !== 'pass').length;
  const skipped = drills.length - ran.length;
  const total = (ran.reduce((sum, result) => sum + result.durationMs, 0) / 1000).toFixed(3);
  const counts = `tests="${drills.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${total}"`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="sor-drills" ${counts}>`,
    `  <testsuite name="system-of-record drills" ${counts} timestamp="${when.toISOString()}">`,
    ...drills.map((drill) => testCase(drill, resultOf(drill))),
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
