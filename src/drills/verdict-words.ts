// How a verdict is written where a person reads it: the console's verdict line
// and transcript, and the headless run's progress lines. One table, so the three
// cannot drift (could-not-determine is never shown as a plain FAIL: it says the
// drill could not tell, though the bundle counts it as a fail).
import type { Verdict } from './types.js';

export const verdictWords: Record<Verdict, { word: string; mark: string }> = {
  pass: { word: 'PASS', mark: '✓' },
  fail: { word: 'FAIL', mark: '✗' },
  'could-not-determine': { word: 'COULD NOT DETERMINE', mark: '?' },
};

export function verdictWord(verdict: Verdict): string {
  return verdictWords[verdict].word;
}
