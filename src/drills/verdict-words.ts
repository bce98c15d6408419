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

/**
 * A verdict and its evidence as one line: `COULD NOT DETERMINE: no statement log ...`.
 * The evidence of a could-not-determine drill starts with the same words (the bundle's
 * "fail: could not determine: ..." needs them); shown beside the word they are said once.
 */
export function verdictLine(verdict: Verdict, evidence: string): string {
  return `${verdictWord(verdict)}: ${besideVerdictWord(verdict, evidence)}`;
}

/** The evidence as shown next to the verdict word, without saying "could not determine" twice. */
export function besideVerdictWord(verdict: Verdict, evidence: string): string {
  return verdict === 'could-not-determine' ? evidence.replace(/^could not determine:\s*/i, '') : evidence;
}
