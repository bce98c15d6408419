// The verdict words and the exit codes, each written once: the headless run's
// progress lines use the same words as the console (could-not-determine is not
// printed as FAIL), and every code the README lists has a name.
import { describe, expect, it } from 'vitest';
import { progressPrinter } from '../../src/cli/run-command.js';
import type { DrillResult } from '../../src/drills/types.js';
import { verdictWord } from '../../src/drills/verdict-words.js';
import { describeFailure, errorMessage } from '../../src/postgres/errors.js';
import { exitCodes } from '../../src/util/exit-codes.js';

function finished(verdict: DrillResult['verdict'], evidence: string): DrillResult {
  return { key: 'mcp_boundary_test', verdict, evidence, evidenceDirs: [], broken: false, notes: [], durationMs: 1 };
}

describe('verdict words', () => {
  it('the headless run prints each verdict with the console word', () => {
    const lines: string[] = [];
    const print = progressPrinter((line) => lines.push(line));
    for (const verdict of ['pass', 'fail', 'could-not-determine'] as const) {
      print({ type: 'drill-finished', key: 'mcp_boundary_test', result: finished(verdict, `${verdict} evidence`) });
    }
    expect(lines).toEqual([
      '      = PASS: pass evidence',
      '      = FAIL: fail evidence',
      '      = COULD NOT DETERMINE: could-not-determine evidence',
    ]);
    expect(verdictWord('could-not-determine')).toBe('COULD NOT DETERMINE');
  });

  it('says "could not determine" once beside the word, though the bundle\'s reason starts with it', () => {
    const lines: string[] = [];
    progressPrinter((line) => lines.push(line))({
      type: 'drill-finished',
      key: 'mcp_boundary_test',
      result: finished('could-not-determine', 'could not determine: no statement log'),
    });
    expect(lines).toEqual(['      = COULD NOT DETERMINE: no statement log']);
  });
});

describe('exit codes and failures', () => {
  it('names every code the README lists', () => {
    expect(Object.values(exitCodes)).toEqual(expect.arrayContaining([0, 1, 2, 3, 4, 70, 130, 141]));
  });

  it('one errorMessage: one line, secrets masked', () => {
    expect(errorMessage(new Error('cannot reach postgres://me:hunter2@db/app\nstack'))).toBe('cannot reach postgres://me:***@db/app');
    expect(errorMessage(undefined)).toBe('unknown error');
  });

  it('failures by name: usage 2, consent 1, target 3, anything else internal (70), masked', () => {
    const named = (name: string) => Object.assign(new Error('x'), { name });
    expect(describeFailure(named('UsageError')).code).toBe(exitCodes.usage);
    expect(describeFailure(named('ConsentError')).code).toBe(exitCodes.blocked);
    expect(describeFailure(named('TargetError')).code).toBe(exitCodes.unreachable);
    expect(describeFailure(new Error('boom at postgres://u:pw@h/d'))).toEqual({ code: exitCodes.internal, message: 'boom at postgres://u:***@h/d' });
  });
});
