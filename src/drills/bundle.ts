// The evidence bundle: exactly the seed's JSON object (nine keys in the seed's
// order, each "pass" or "fail: <one-line reason>", then "release_decision"),
// the release decision paragraph immediately below it, then each drill's
// evidence line and folder and a sha256 manifest of the evidence files.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import { maskSecrets } from '../postgres/url.js';
import { unmappedHint } from './reference-schema.js';
import { bundleKeys, type BundleKey, type Drill, type DrillResult, fixText } from './types.js';
import { type ProfileNames, profileNames, referenceProfile } from '../postgres/profile/index.js';

/** The names a paragraph drafted without a profile speaks in. */
const referenceNames = profileNames(referenceProfile);

export type Bundle = Record<BundleKey, string> & { release_decision: string };

export type Decision = 'PERMITTED' | 'BLOCKED';

export { defaultBundlePath, masteryBundlePath } from './bundle-path.js';

export function bundleValue(result: DrillResult | undefined): string {
  if (!result) return 'fail: not run';
  if (result.verdict === 'pass') return 'pass';
  return `fail: ${result.reason ?? result.evidence}`;
}

export function decisionOf(results: readonly DrillResult[]): Decision {
  return bundleKeys.every((key) => results.find((result) => result.key === key)?.verdict === 'pass')
    ? 'PERMITTED'
    : 'BLOCKED';
}

export function failedDrills(results: readonly DrillResult[]): DrillResult[] {
  return bundleKeys
    .map((key) => results.find((result) => result.key === key))
    .filter((result): result is DrillResult => result !== undefined && result.verdict !== 'pass');
}

/** The one-line release_decision value of the JSON object. */
export function decisionLine(results: readonly DrillResult[], drills: readonly Drill[]): string {
  const failed = failedDrills(results);
  const missing = bundleKeys.filter((key) => !results.some((result) => result.key === key));
  if (failed.length === 0 && missing.length === 0) return 'PERMITTED: all nine drills passed';
  const blamed = [...failed.filter((result) => result.verdict === 'fail').map((result) => result.key), ...missing].map((key) => {
    const drill = drills.find((candidate) => candidate.key === key);
    return drill ? `${key} (Lesson ${drill.lesson}, ${drill.habit})` : key;
  });
  // A drill that could not tell names no habit: the run could not look at it.
  const unjudged = undeterminedGroups(failed).map((group) => `could not judge ${group.keys.join(', ')} (${group.why})`);
  const hint = unjudgedHint(failed);
  return `BLOCKED: ${[...blamed, ...unjudged].join('; ')}${hint ? `. ${asSentence(hint)}` : ''}`;
}

/** Drills that ended could-not-determine, grouped by why, with the shared unmapped-schema hint taken out. */
interface UndeterminedGroup {
  keys: BundleKey[];
  why: string;
}

function undeterminedWhy(result: DrillResult): string {
  const reason = (result.reason ?? result.evidence).replace(/^could not determine: /, '');
  const suffix = ` (${unmappedHint})`;
  return reason.endsWith(suffix) ? reason.slice(0, -suffix.length) : reason;
}

function undeterminedGroups(failed: readonly DrillResult[]): UndeterminedGroup[] {
  const groups: UndeterminedGroup[] = [];
  for (const result of failed.filter((candidate) => candidate.verdict === 'could-not-determine')) {
    const why = undeterminedWhy(result);
    const group = groups.find((candidate) => candidate.why === why);
    if (group) group.keys.push(result.key);
    else groups.push({ keys: [result.key], why });
  }
  return groups;
}

/** The unmapped-schema hint, once, when a drill could not judge because of a name the target lacks. */
function unjudgedHint(failed: readonly DrillResult[]): string | undefined {
  return failed.some((result) => result.verdict === 'could-not-determine' && (result.reason ?? '').endsWith(` (${unmappedHint})`))
    ? unmappedHint
    : undefined;
}

function asSentence(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

function drillWord(count: number): string {
  return count === 1 ? 'one drill' : `${count} drills`;
}

/** The drafted decision paragraph; the console lets the operator edit it before saving. */
export function draftParagraph(
  results: readonly DrillResult[],
  drills: readonly Drill[],
  target: string,
  names: ProfileNames = referenceNames,
): string {
  const missing = bundleKeys
    .filter((key) => !results.some((result) => result.key === key))
    .map((key): DrillResult => ({ key, verdict: 'fail', evidence: 'not run', reason: 'not run', evidenceDirs: [], broken: false, notes: [], durationMs: 0 }));
  const failed = [...failedDrills(results), ...missing];
  const passed = results.filter((result) => result.verdict === 'pass').length;
  if (decisionOf(results) === 'PERMITTED') {
    return (
      `Release PERMITTED. All nine drills passed against ${target}, each verdict computed from what the database ` +
      `and the Worker's processes did: migrations are reviewed and reversible, a crashed run resumes from its journal, ` +
      `retries are idempotent, claims skip locked rows, the outbox retries without double-sending, agent_events is ` +
      `append-only, tenants are isolated by row-level security, the Worker reaches the database only through four ` +
      `MCP tools, and a failed run can be explained from its rows.`
    );
  }
  // A drill that did not run looked at nothing: it blames no habit, it is only named.
  const notRun = failed.filter((result) => result.reason === 'not run').map((result) => result.key);
  const blamed = failed.filter((result) => result.verdict === 'fail' && result.reason !== 'not run');
  const parts = blamed.map((result) => {
    const drill = drills.find((candidate) => candidate.key === result.key);
    const lesson = drill ? `Lesson ${drill.lesson} (${drill.habit})` : 'an unknown lesson';
    const why = result.reason ?? result.evidence;
    return `${result.key} failed (${why}), so the habit of ${lesson} is missing`;
  });
  const groups = undeterminedGroups(failed);
  const unjudged = groups.reduce((sum, group) => sum + group.keys.length, 0);
  const hint = unjudgedHint(failed);
  const sentences = [`Release BLOCKED. ${passed} of nine drills passed against ${target}${parts.length > 0 ? `; ${parts.join('; ')}` : ''}.`];
  if (notRun.length > 0) {
    sentences.push(
      `${notRun.length === 1 ? 'One drill was' : `${notRun.length} drills were`} not run, so the run says nothing about ` +
        `${notRun.length === 1 ? 'its habit' : 'their habits'}: ${notRun.join(', ')}.`,
    );
  }
  if (unjudged > 0) {
    sentences.push(
      `The run could not judge ${drillWord(unjudged)}, so it says nothing about ${unjudged === 1 ? "its lesson's habit" : "their lessons' habits"}: ` +
        `${groups.map((group) => `${group.keys.join(', ')} (${group.why})`).join('; ')}.` +
        `${hint ? ` ${asSentence(hint)}` : ''} They count as failed until they can be judged.`,
    );
  }
  const fixes = blamed
    .map((result) => drills.find((candidate) => candidate.key === result.key))
    .filter((drill): drill is Drill => drill !== undefined)
    .map((drill) => fixText(drill, names));
  if (notRun.length > 0) fixes.push('run the drills that did not run');
  if (fixes.length > 0) sentences.push(`The smallest change that would unblock the release: ${fixes.join('; ')}.`);
  // No fix is drafted for a drill that could not look: that would be guessing at a habit.
  if (unjudged > 0) {
    const which = unjudged === 1 ? 'the drill it could not judge until it can' : 'the drills it could not judge until they can';
    sentences.push(`No change can be named for ${which} look at the target.`);
  }
  sentences.push(
    `Re-run the drills ${fixes.length > 0 ? 'after the change' : 'once they can look at the target'}; the release stays blocked until all nine pass.`,
  );
  return sentences.join(' ');
}

export function assembleBundle(results: readonly DrillResult[], drills: readonly Drill[]): Bundle {
  const bundle = {} as Bundle;
  for (const key of bundleKeys) {
    bundle[key] = bundleValue(results.find((result) => result.key === key));
  }
  bundle.release_decision = decisionLine(results, drills);
  return bundle;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = (await readdir(dir)).sort();
  } catch {
    return out;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry);
    const info = await stat(full);
    if (info.isDirectory()) out.push(...(await filesUnder(full)));
    else out.push(full);
  }
  return out;
}

export async function manifest(files: readonly string[], base: string): Promise<string[]> {
  const lines: string[] = [];
  for (const file of files) {
    const hash = await sha256Of(file).catch(() => undefined);
    if (hash) lines.push(`${hash}  ${path.relative(base, file)}`);
  }
  return lines;
}

export async function sha256Of(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/** The heading of the bundle's files index, which `sor-drills verify` and `pack` read. */
export const filesHeading = '## Files (read by sor-drills verify)';

/**
 * The bundle's files index: for each drill, its record, its evidence folders and its process
 * logs, relative to `root` (itself relative to the bundle file's folder), so a handed-in bundle
 * (or its archive) can be checked against what the run wrote.
 */
export interface BundleIndex {
  version: 1;
  kind: 'run' | 'mastery';
  target: string;
  when: string;
  root: string;
  drills: Partial<Record<BundleKey, { verdict: string; broken: boolean; record?: string; evidence: string[]; logs: string[] }>>;
}

function bundleIndex(results: readonly DrillResult[], base: string, header: { target: string; when: Date; file?: string; kind?: 'run' | 'mastery' }): BundleIndex {
  const relative = (file: string) => path.relative(base, file);
  const drills: BundleIndex['drills'] = {};
  for (const result of results) {
    drills[result.key] = {
      verdict: result.verdict,
      broken: result.broken,
      ...(result.record ? { record: relative(result.record) } : {}),
      evidence: result.evidenceDirs.map(relative),
      logs: (result.logs ?? []).map(relative),
    };
  }
  const root = header.file ? path.relative(path.dirname(path.resolve(header.file)), path.resolve(base)) || '.' : '.';
  return { version: 1, kind: header.kind ?? 'run', target: header.target, when: header.when.toISOString(), root, drills };
}

/** The files a bundle's manifest covers: each drill's evidence folders' files, its record and its logs. */
export async function evidenceFilesOf(results: readonly DrillResult[]): Promise<string[]> {
  const files = new Set<string>();
  for (const result of results) {
    for (const dir of result.evidenceDirs) for (const file of await filesUnder(dir)) files.add(file);
    if (result.record) files.add(result.record);
    for (const log of result.logs ?? []) files.add(log);
  }
  return [...files];
}

export interface BundleDocument {
  bundle: Bundle;
  paragraph: string;
  text: string;
}

/** The whole file: JSON, the paragraph right below it, then evidence lines and the manifest. */
export async function renderBundle(
  results: readonly DrillResult[],
  drills: readonly Drill[],
  paragraph: string,
  base: string,
  header: { target: string; when: Date; title?: string; file?: string; kind?: 'run' | 'mastery' },
): Promise<BundleDocument> {
  const bundle = assembleBundle(results, drills);
  const lines: string[] = [JSON.stringify(bundle, null, 2), '', paragraph.trim(), ''];
  lines.push(`## Evidence`, '', `Target: ${header.target}. Run: ${header.when.toISOString()}.`, '');
  for (const key of bundleKeys) {
    const result = results.find((candidate) => candidate.key === key);
    const drill = drills.find((candidate) => candidate.key === key);
    const label = drill ? `${drill.number}. ${key}` : key;
    if (!result) {
      lines.push(`- ${label}: not run`);
      continue;
    }
    const folders = result.evidenceDirs.map((dir) => path.relative(base, dir)).join(', ');
    lines.push(
      `- ${label}: ${result.verdict}${result.broken ? ' (deliberate break)' : ''}: ${result.evidence}` +
        (folders ? ` [${folders}]` : ''),
    );
    for (const note of result.notes) lines.push(`  - ${note}`);
    if (result.record) lines.push(`  - record: ${path.relative(base, result.record)}`);
    if (result.logs?.length) lines.push(`  - process logs: ${result.logs.map((log) => path.relative(base, log)).join(', ')}`);
  }
  const files = await manifest(await evidenceFilesOf(results), base);
  lines.push('', '## Manifest (sha256)', '', '```', ...files, '```', '');
  lines.push(filesHeading, '', '```json', JSON.stringify(bundleIndex(results, base, header), null, 2), '```', '');
  const text = maskSecrets(lines.join('\n'));
  return { bundle, paragraph, text };
}

export async function writeBundle(file: string, text: string): Promise<void> {
  await writeFileAtomic(file, text);
}

/** The files index at the bottom of a bundle file, if it has one. */
export function parseBundleIndex(text: string): BundleIndex | undefined {
  const at = text.indexOf(`${filesHeading}\n`);
  if (at < 0) return undefined;
  const block = /```json\n([\s\S]*?)\n```/.exec(text.slice(at));
  if (!block) return undefined;
  return JSON.parse(block[1]!) as BundleIndex;
}

/** Reads the JSON object back from the top of a bundle file (for tests and tooling). */
export function parseBundle(text: string): { bundle: Bundle; paragraph: string } {
  const end = text.indexOf('\n}\n');
  if (end < 0) throw new Error('no JSON object at the top of the bundle');
  const bundle = JSON.parse(text.slice(0, end + 2)) as Bundle;
  const rest = text.slice(end + 3).trimStart();
  const paragraph = rest.split('\n\n')[0] ?? '';
  return { bundle, paragraph };
}
