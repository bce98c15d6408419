// The verdict and verdict.md, in the seed's report format: scope, engine, verdict;
// action; diff summary; specifications verified; findings; transcript.
import path from 'node:path';
import type { ActionResult, ExpectationResult, QuiescenceResult, Snapshot, TableDiff, TableSummary, Verdict } from './types.js';
import { evidenceFiles } from './types.js';

export interface VerdictInput {
  action: ActionResult;
  quiescence: QuiescenceResult | null;
  results: ExpectationResult[];
  /** Set when the after-snapshot (or the diff) could not be taken. */
  afterError: string | null;
}

/**
 * ESCALATE when the action failed, the after-snapshot failed, nothing was asserted, async work
 * never settled, or a predicate could not be determined; REJECT when a predicate is unsatisfied;
 * APPROVE when every predicate is satisfied.
 */
export function decideVerdict(input: VerdictInput): Verdict {
  if (input.action.exitCode !== 0) return 'ESCALATE';
  if (input.afterError) return 'ESCALATE';
  if (input.results.length === 0) return 'ESCALATE';
  if (input.quiescence && !input.quiescence.settled) return 'ESCALATE';
  if (input.results.some((result) => result.verdict === 'unsatisfied')) return 'REJECT';
  if (input.results.some((result) => result.verdict === 'could-not-determine')) return 'ESCALATE';
  return 'APPROVE';
}

/** The seed's "Change matches spec?" column for one table. */
export function tableMatches(table: TableDiff | undefined, results: ExpectationResult[]): string {
  const mine = results.filter((result) => result.expectation.table === (table?.table ?? ''));
  const changed =
    table !== undefined &&
    (table.delta !== 0 || table.addedCount + table.removedCount + table.changedCount > 0 || (table.schema?.length ?? 0) > 0);
  if (mine.length === 0) return `not asserted (${changed ? 'changed' : 'unchanged'})`;
  const specs = mine.map((result) => result.expectation.text).join(', ');
  if (mine.some((result) => result.verdict === 'unsatisfied')) return `no (spec: ${specs})`;
  if (mine.some((result) => result.verdict === 'could-not-determine')) return `could not determine (spec: ${specs})`;
  return `yes (spec: ${specs})`;
}

export function summariseTables(before: Snapshot, after: Snapshot | null, tables: TableDiff[], results: ExpectationResult[]): TableSummary[] {
  return before.tables.map((table) => {
    const diff = tables.find((entry) => entry.table === table.table);
    const later = after?.tables.find((entry) => entry.table === table.table);
    return {
      table: table.table,
      before: table.count,
      after: later?.count ?? null,
      delta: diff?.delta ?? null,
      added: diff?.addedCount ?? 0,
      removed: diff?.removedCount ?? 0,
      changed: diff?.changedCount ?? 0,
      streamed: table.streamed || Boolean(later?.streamed),
      matches: diff ? tableMatches(diff, results) : 'could not determine (no after-snapshot)',
    };
  });
}

const cell = (text: string) => text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const show = (value: number | null) => (value === null ? 'n/a' : String(value));

export interface ReportInput {
  verdict: Verdict;
  card: string;
  folder: string;
  before: Snapshot;
  scopeText: string;
  action: ActionResult;
  tables: TableSummary[];
  results: ExpectationResult[];
  findings: string[];
}

/** Where the folder is, relative to the working directory when it is inside it. */
export function displayPath(folder: string): string {
  const relative = path.relative(process.cwd(), folder);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : folder;
}

const fileNotes: Record<(typeof evidenceFiles)[number], string> = {
  'before.json': 'pre-action snapshot',
  'before.normalised.json': 'same with volatiles redacted',
  'action.log': 'output of the action',
  'action_exit.txt': 'exit code of the action',
  'after.json': 'post-action snapshot',
  'after.normalised.json': 'normalised',
  'diff.txt': 'diff -u of the two normalised snapshots',
  'verdict.md': 'this report',
};

export function renderVerdictMarkdown(input: ReportInput): string {
  const folder = displayPath(input.folder);
  const lines = [
    '## DB-State QA Report',
    `**Scope**: ${input.scopeText}`,
    `**Engine**: Postgres (${input.before.engine}, ${input.before.target})`,
    `**Verdict**: ${input.verdict}`,
    '',
    '### Action',
    `- Primary oracle: ${input.action.primary}`,
    `- Action: \`${input.action.label.replace(/`/g, "'")}\``,
    `- Action exit: ${input.action.exitCode}${input.action.signal ? ` (${input.action.signal})` : ''}${input.action.error ? ` (${input.action.error})` : ''}`,
    `- Action transcript: \`${path.join(folder, 'action.log')}\``,
    '',
    '### Diff Summary',
    '| Table | Before count | After count | Change matches spec? |',
    '|---|---|---|---|',
    ...input.tables.map((table) => `| ${cell(table.table)} | ${show(table.before)} | ${show(table.after)} | ${cell(table.matches)} |`),
    '',
    '### Specifications Verified',
    '| Spec # | Predicate | Verified by | Verdict |',
    '|--------|-----------|-------------|---------|',
    ...(input.results.length > 0
      ? input.results.map(
          (result, index) =>
            `| ${index + 1} | \`${cell(result.expectation.text)}\` ${cell(result.predicate)} | ${cell(result.evidence)} | ${result.verdict} |`,
        )
      : ['| - | (none given) | a spec that does not name fields is too vague | could-not-determine |']),
    '',
    '### Findings',
    ...(input.findings.length > 0 ? input.findings.map((finding, index) => `${index + 1}. ${finding}`) : ['None.']),
    '',
    '### Transcript',
    `Path: \`${folder}/\``,
    `Contents: ${evidenceFiles.map((file) => `${file} (${fileNotes[file]})`).join(', ')}`,
    '',
  ];
  return lines.join('\n');
}
