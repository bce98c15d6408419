// JUnit XML of a drill run, for CI release gates: one test case per drill.
import type { Drill, DrillResult } from './types.js';

function escape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

export function junitXml(results: readonly DrillResult[], drills: readonly Drill[], when: Date): string {
  const failures = results.filter((result) => result.verdict !== 'pass').length;
  const seconds = (ms: number) => (ms / 1000).toFixed(3);
  const total = results.reduce((sum, result) => sum + result.durationMs, 0);
  const cases = results.map((result) => {
    const drill = drills.find((candidate) => candidate.key === result.key);
    const name = `${drill?.number ?? '?'}. ${result.key}`;
    const head = `    <testcase classname="sor-drills" name="${escape(name)}" time="${seconds(result.durationMs)}">`;
    const body =
      result.verdict === 'pass'
        ? `      <system-out>${escape(result.evidence)}</system-out>`
        : `      <failure type="${result.verdict}" message="${escape(result.reason ?? result.evidence)}">${escape(
            `Lesson ${drill?.lesson ?? '?'} (${drill?.habit ?? ''}): ${result.reason ?? result.evidence}`,
          )}</failure>`;
    return [head, body, '    </testcase>'].join('\n');
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="sor-drills" tests="${results.length}" failures="${failures}" time="${seconds(total)}">`,
    `  <testsuite name="system-of-record drills" tests="${results.length}" failures="${failures}" timestamp="${when.toISOString()}" time="${seconds(total)}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
