// `sor-drills verify`: is a handed-in bundle consistent with the evidence its run wrote?
// Every file of the manifest is there with its hash; every file the bundle lists (records,
// evidence folders, process logs) is in the manifest; each drill's verdict in the JSON is
// re-derived from the drill's own record (and the record must not contradict itself: a pass
// needs every step, each ok, and no observation against the habit); release_decision is
// PERMITTED exactly when all nine pass, and the paragraph names every failed drill (its
// wording is the operator's). The mastery bundle beside it is checked the same way.
//
// What it cannot prove: that the run happened against the database it names. A consistent
// bundle could be a run against another database, or be forged whole by someone who
// rewrites the records, the hashes and the manifest together.
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { maskUrl } from '../postgres/url.js';
import { bundleValue, masteryBundlePath, parseBundle, parseBundleIndex, sha256Of, type BundleIndex } from './bundle.js';
import { recordContradictions, recordSchema, type DrillRecord } from './record.js';
import { bundleKeys, type BundleKey, type Drill, type DrillResult } from './types.js';

export interface Finding {
  /** The drill, the file or the part of the bundle the finding is about. */
  subject: string;
  message: string;
}

export interface DrillSummaryLine {
  key: BundleKey;
  value: string;
  evidence: string;
  broken: boolean;
}

export interface BundleCheck {
  file: string;
  kind: 'run' | 'mastery';
  target?: string;
  when?: string;
  decision?: string;
  drills: DrillSummaryLine[];
  findings: Finding[];
  /** Files (absolute) the bundle accounts for: its manifest's, plus the bundle file itself. */
  accounted: Set<string>;
  /** The mastery bundle only: whether it holds at least one honest failure (a drill run with its break that failed). */
  masteryMet?: boolean;
}

/** The manifest's lines: sha256 and path relative to the bundle's root. */
export function parseManifest(text: string): Array<{ hash: string; file: string }> {
  const at = text.indexOf('## Manifest (sha256)');
  if (at < 0) return [];
  const block = /```\n([\s\S]*?)\n?```/.exec(text.slice(at));
  return (block?.[1] ?? '')
    .split('\n')
    .map((line) => /^([0-9a-f]{64}) {2}(.+)$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ hash: match[1]!, file: match[2]! }));
}

async function filesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const full = path.join(dir, entry);
    const info = await stat(full);
    if (info.isDirectory()) out.push(...(await filesIn(full)));
    else out.push(full);
  }
  return out;
}

async function readRecord(file: string): Promise<{ record?: DrillRecord; problem?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return { problem: `its record ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
  }
  try {
    const parsed = recordSchema.safeParse(JSON.parse(text));
    if (!parsed.success) return { problem: `its record is not a drill record (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? 'invalid'})` };
    return { record: parsed.data as DrillRecord };
  } catch (error) {
    return { problem: `its record is not JSON (${(error as Error).message})` };
  }
}

/** The bundle value a record gives: as the bundle writes it from a result. */
function valueOf(record: DrillRecord): string {
  const result: Pick<DrillResult, 'verdict' | 'reason' | 'evidence'> = record;
  return bundleValue(result as DrillResult);
}

/**
 * Checks one bundle file. `root` overrides where its listed paths are relative to (an
 * archive's layout); otherwise the bundle's own index says.
 */
export async function checkBundle(file: string, drills: readonly Drill[], options: { root?: string; show?: (file: string) => string } = {}): Promise<BundleCheck> {
  const show = options.show ?? ((name: string) => name);
  const findings: Finding[] = [];
  const check: BundleCheck = { file, kind: 'run', drills: [], findings, accounted: new Set([path.resolve(file)]) };
  const text = await readFile(file, 'utf8');
  let bundle: Record<string, string>;
  let paragraph: string;
  try {
    ({ bundle, paragraph } = parseBundle(text) as { bundle: Record<string, string>; paragraph: string });
  } catch (error) {
    findings.push({ subject: show(file), message: `not a bundle: ${(error as Error).message}` });
    return check;
  }
  const keys = Object.keys(bundle);
  const expected = [...bundleKeys, 'release_decision'];
  if (keys.join(',') !== expected.join(',')) {
    findings.push({ subject: show(file), message: `its JSON object has the keys ${keys.join(', ')}; a bundle has ${expected.join(', ')}, in that order` });
  }
  let index: BundleIndex | undefined;
  try {
    index = parseBundleIndex(text);
  } catch (error) {
    findings.push({ subject: show(file), message: `its files index is not JSON (${(error as Error).message})` });
  }
  if (!index) {
    findings.push({ subject: show(file), message: 'it has no files index (written by an older sor-drills, or cut): its verdicts cannot be checked' });
    return check;
  }
  check.kind = index.kind;
  check.target = maskUrl(index.target);
  check.when = index.when;
  check.decision = bundle.release_decision;
  const root = options.root ?? path.resolve(path.dirname(file), index.root);
  const at = (relative: string) => path.resolve(root, relative);

  // The manifest: every file there with its hash.
  const manifest = parseManifest(text);
  const listed = new Set<string>();
  for (const entry of manifest) {
    const full = at(entry.file);
    listed.add(full);
    check.accounted.add(full);
    if (!existsSync(full)) {
      findings.push({ subject: entry.file, message: 'in the manifest, missing' });
      continue;
    }
    const hash = await sha256Of(full);
    if (hash !== entry.hash) findings.push({ subject: entry.file, message: 'edited: its sha256 is not the manifest\u2019s' });
  }

  const failed: BundleKey[] = [];
  for (const key of bundleKeys) {
    const value = bundle[key] ?? '';
    if (value !== 'pass') failed.push(key);
    const entry = index.drills[key];
    const line: DrillSummaryLine = { key, value, evidence: value, broken: entry?.broken ?? false };
    check.drills.push(line);
    if (!entry) {
      if (value !== 'fail: not run') findings.push({ subject: key, message: `the bundle says ${JSON.stringify(value)} but the run recorded no result for it` });
      line.evidence = 'not run';
      continue;
    }
    // What the drill cites must be in the manifest: an evidence file (or folder) it lacks was added or never hashed.
    for (const dir of entry.evidence) {
      if (!existsSync(at(dir))) {
        findings.push({ subject: key, message: `its evidence folder ${dir} is missing` });
        continue;
      }
      for (const inside of await filesIn(at(dir))) {
        if (!listed.has(inside)) findings.push({ subject: path.relative(root, inside), message: `in ${key}'s evidence folder but not in the manifest` });
      }
    }
    for (const log of entry.logs) if (!listed.has(at(log))) findings.push({ subject: log, message: `${key}'s process log is not in the manifest` });
    if (!entry.record && value === 'fail: not run' && entry.evidence.length === 0) {
      line.evidence = 'not run';
      continue;
    }
    if (!entry.record) {
      findings.push({ subject: key, message: 'no record of the drill was written: its verdict cannot be re-derived' });
      continue;
    }
    if (!listed.has(at(entry.record))) findings.push({ subject: entry.record, message: `${key}'s record is not in the manifest` });
    const { record, problem } = await readRecord(at(entry.record));
    if (!record) {
      findings.push({ subject: key, message: problem ?? 'its record cannot be read' });
      continue;
    }
    line.evidence = record.verdict === 'pass' ? record.evidence : (record.reason ?? record.evidence);
    line.broken = record.broken;
    if (record.key !== key) findings.push({ subject: key, message: `its record is ${record.key}'s` });
    const derived = valueOf(record);
    if (value !== derived) {
      findings.push({ subject: key, message: `the bundle says ${JSON.stringify(value)}; its record says ${JSON.stringify(derived)}` });
    }
    if (entry.verdict !== record.verdict) findings.push({ subject: key, message: `the files index says ${entry.verdict}; its record says ${record.verdict}` });
    const drill = drills.find((candidate) => candidate.key === key);
    if (drill && record.stepCount !== drill.steps.length) {
      findings.push({ subject: key, message: `its record counts ${record.stepCount} steps; the drill has ${drill.steps.length}` });
    }
    for (const contradiction of recordContradictions(record)) findings.push({ subject: key, message: `its record contradicts itself: ${contradiction}` });
  }

  // The decision, re-derived: PERMITTED exactly when all nine pass; the paragraph names each failed drill.
  const permitted = failed.length === 0;
  const decision = bundle.release_decision ?? '';
  if (permitted !== decision.startsWith('PERMITTED')) {
    findings.push({
      subject: 'release_decision',
      message: permitted ? `all nine pass, but it says ${JSON.stringify(decision.split(':')[0])}` : `it says ${JSON.stringify(decision.split(':')[0])}, but ${failed.join(', ')} did not pass`,
    });
  }
  if (!permitted && !decision.startsWith('BLOCKED')) {
    findings.push({ subject: 'release_decision', message: 'a release with a failed drill is BLOCKED' });
  }
  for (const key of failed) {
    if (!paragraph.includes(key)) findings.push({ subject: 'decision paragraph', message: `it does not name ${key}, which did not pass` });
  }
  if (check.kind === 'mastery') check.masteryMet = check.drills.some((drill) => drill.broken && drill.value !== 'pass');
  return check;
}

export interface VerifyResult {
  checks: BundleCheck[];
  findings: Finding[];
}

/** A bundle file and, when it is there, its mastery bundle beside it. */
export async function verifyBundle(file: string, drills: readonly Drill[], options: { root?: string; show?: (file: string) => string } = {}): Promise<VerifyResult> {
  const checks = [await checkBundle(file, drills, options)];
  const mastery = masteryBundlePath(file);
  if (existsSync(mastery)) checks.push(await checkBundle(mastery, drills, options));
  return { checks, findings: checks.flatMap((check) => check.findings) };
}

/** The summary an instructor reads: target, when, each drill's verdict and evidence line, the mastery gate. */
export function summaryLines(checks: readonly BundleCheck[], drills: readonly Drill[]): string[] {
  const lines: string[] = [];
  for (const check of checks) {
    lines.push(`${check.kind === 'mastery' ? 'mastery bundle' : 'bundle'} ${check.file}`);
    if (check.target) lines.push(`  target: ${check.target}`);
    if (check.when) lines.push(`  run: ${check.when}`);
    for (const drill of check.drills) {
      const number = drills.find((candidate) => candidate.key === drill.key)?.number ?? '?';
      const verdict = drill.value === 'pass' ? 'pass' : 'fail';
      lines.push(`  ${number}. ${drill.key}: ${verdict}${drill.broken ? ' (deliberate break)' : ''}: ${drill.evidence}`);
    }
    if (check.decision) lines.push(`  release_decision: ${check.decision}`);
    if (check.kind === 'mastery') {
      lines.push(`  mastery gate: ${check.masteryMet ? 'met (a drill run with its deliberate break failed honestly)' : 'not met: no drill run with its break failed'}`);
    }
  }
  if (!checks.some((check) => check.kind === 'mastery')) lines.push('  mastery gate: no mastery bundle');
  return lines;
}
