// The forensics drill's verdict, from the state its steps left: a run that really
// failed, its runs row and agent_events, and a report with all six lines.
import { countWord } from '../sql.js';
import type { DrillContext, VerdictResult } from '../types.js';
import type { State } from './drill.js';
import { failingInput } from './failing-run.js';

/** Sentences in a line of text: a full stop, question or exclamation mark followed by a capital, or the end. */
export function sentenceCount(text: string): number {
  return text.split(/(?<=[.!?])\s+(?=[A-Z])/).filter((part) => part.trim() !== '').length;
}

export function forensicsVerdict(ctx: DrillContext, state: State): VerdictResult {
  const { outcome, runId, run, events, report, calls } = state;
  const n = ctx.profile.names;
  const eventsTable = n.events.tableName;
  const fail = (reason: string) => ({ verdict: 'fail' as const, evidence: reason, reason });

  if (!outcome) return fail('no run was made to investigate');
  const workerSaid = outcome.failed
    ? ` (the Worker's call failed: ${String(outcome.failed.error)})`
    : '';
  if (outcome.exitCode === 0) {
    return fail(
      `no failed run to investigate: the Worker finished its run (exit 0), so the database accepted an expense of ${failingInput.amount_cents} cents`,
    );
  }
  if (!run) {
    return fail(
      `the failed run ${runId ?? '(no run_id)'} left no ${n.runs.tableName} row: the journal recorded nothing, the forensic report cannot be built${workerSaid}`,
    );
  }
  if (run.status !== n.runs.values.failed) {
    return fail(`run ${run.id} is ${run.status}, not failed (Worker exit ${String(outcome.signal ?? outcome.exitCode)})${workerSaid}`);
  }
  if (events.length === 0) {
    return fail(`run ${run.id} has no ${eventsTable} rows: the forensic report cannot be built (no event trail for the timeline or the root cause)`);
  }
  if (!report) return fail(`the report for run ${run.id} was not assembled`);
  const populated = report.lines.filter((line) => line !== null).length;
  // The root cause is the failing call's own error: a target whose profile names no error
  // column cannot show it, which says nothing of the habit.
  const failedCall = calls.find((call) => call.status === n.tool_calls.values.failed);
  if (failedCall && report.lines[4] === null && n.tool_calls.error === undefined) {
    const reason =
      `could not determine: the root cause is the failing call's error, and the profile names no error column of ${n.tool_calls.tableName} ` +
      '(add tool_calls.error to the profile)';
    return { verdict: 'could-not-determine', evidence: reason, reason };
  }
  if (report.missing.length > 0 || populated !== 6) {
    return fail(
      `the forensic report for run ${run.id} cannot be built: ${report.missing.join('; ') || `${countWord(populated)} of six lines populated`}`,
    );
  }
  const failed = calls.find((call) => call.status === n.tool_calls.values.failed)!;
  const code = failed.error_code === undefined ? 'not recorded' : (failed.error_code ?? 'unknown');
  const capital = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);
  const rootCause = (report.lines[4] ?? '').replace(/^Root cause:\s*/, '');
  const sentences = sentenceCount(rootCause);
  return {
    verdict: 'pass',
    evidence:
      `Forensic report assembled for run_id ${run.id.slice(0, 4)}.... ${capital(countWord(populated))} lines populated ` +
      `from ${calls.length} ${n.tool_calls.tableName} and ${events.length} ${eventsTable} rows. ` +
      `Root cause named in ${countWord(sentences)} sentence${sentences === 1 ? '' : 's'} ` +
      `(${failed.tool} refused with SQLSTATE ${code}). ` +
      `Recommended next action: ${report.nextAction ?? 'none'}.`,
  };
}
