// A drill's machine-readable record: what each step did, every observation it made
// (with whether it was as the habit needs), the evidence folders and process logs it
// cites, and the verdict. Written by the runner when the drill ends, beside the
// oracle's folders: .agent-history/records/<bundle-key>/<timestamp>.json. The oracle's
// own folders stay exactly the seed's. `sor-drills verify` re-derives each verdict of a
// handed-in bundle from these records (src/drills/verify.ts).
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { createEvidenceFolder } from '../oracle/index.js';
import { maskSecrets } from '../postgres/url.js';
import { bundleKeys, type BundleKey, type Verdict } from './types.js';

export const recordVersion = 1;

export interface RecordedStep {
  id: string;
  title: string;
  ok: boolean;
  summary?: string;
}

export interface RecordedObservation {
  /** The id of the step that made it (absent: before the first step, the names check). */
  step?: string;
  label: string;
  value: string;
  ok?: boolean;
}

export interface DrillRecord {
  version: typeof recordVersion;
  key: BundleKey;
  broken: boolean;
  startedAt: string;
  finishedAt: string;
  /** How many steps the drill has: a pass needs every one of them, each ok. */
  stepCount: number;
  steps: RecordedStep[];
  observations: RecordedObservation[];
  verdict: Verdict;
  evidence: string;
  reason?: string;
  /** The oracle's evidence folders the drill wrote, relative to the record's folder root (.agent-history). */
  evidenceDirs: string[];
  /** The logs of the processes that ran during the drill, relative to the same root. */
  logs: string[];
}

export const recordSchema = z.object({
  version: z.literal(recordVersion),
  key: z.enum(bundleKeys),
  broken: z.boolean(),
  startedAt: z.string(),
  finishedAt: z.string(),
  stepCount: z.number().int().nonnegative(),
  steps: z.array(z.object({ id: z.string(), title: z.string(), ok: z.boolean(), summary: z.string().optional() })),
  observations: z.array(
    z.object({ step: z.string().optional(), label: z.string(), value: z.string(), ok: z.boolean().optional() }),
  ),
  verdict: z.enum(['pass', 'fail', 'could-not-determine']),
  evidence: z.string(),
  reason: z.string().optional(),
  evidenceDirs: z.array(z.string()),
  logs: z.array(z.string()),
});

/** The folder that holds the oracle's folders, the records and the process logs: `.agent-history`. */
export function historyRoot(evidenceRoot: string): string {
  return path.dirname(path.resolve(evidenceRoot));
}

/** A process's log, from where it stood when the drill began. */
export interface LogSlice {
  name: string;
  file: string;
  /** The byte offset the drill's part begins at. */
  from: number;
}

/**
 * Writes the record under <history>/records/<key>/<timestamp>/record.json, with the part of
 * each process log the drill's time wrote copied beside it (logs/<name>.log): fixed at the
 * drill's end, as the evidence folders are, while the log files themselves go on growing.
 * Returns the record's path and the copies' paths.
 */
export async function writeRecord(
  evidenceRoot: string,
  record: Omit<DrillRecord, 'logs'>,
  slices: readonly LogSlice[] = [],
): Promise<{ file: string; logs: string[] }> {
  const history = historyRoot(evidenceRoot);
  // A folder per record keeps the seed's timestamp naming (and its -2, -3 for the same second).
  const folder = await createEvidenceFolder(path.join(history, 'records'), record.key);
  const logs: string[] = [];
  for (const slice of slices) {
    const text = await readFile(slice.file).catch(() => undefined);
    if (!text) continue;
    const copy = path.join(folder, 'logs', `${slice.name.replace(/[^\w.-]+/g, '_')}.log`);
    await mkdir(path.dirname(copy), { recursive: true });
    await writeFile(copy, maskSecrets(text.subarray(Math.min(slice.from, text.length)).toString('utf8')), { flag: 'wx' });
    logs.push(copy);
  }
  const file = path.join(folder, 'record.json');
  // Masked as the bundle is, so the record's lines are the bundle's, word for word.
  const masked: DrillRecord = {
    ...record,
    evidence: maskSecrets(record.evidence),
    ...(record.reason ? { reason: maskSecrets(record.reason) } : {}),
    logs: logs.map((log) => path.relative(history, log)),
  };
  await writeFile(file, `${JSON.stringify(masked, null, 2)}\n`, { flag: 'wx' });
  return { file, logs };
}

/** Where each log in the folder stands now: the offsets a drill's slices begin at. */
export async function logOffsets(dir: string | undefined): Promise<Map<string, number>> {
  const offsets = new Map<string, number>();
  if (!dir) return offsets;
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const info = await stat(path.join(dir, entry)).catch(() => undefined);
    if (info?.isFile()) offsets.set(path.join(dir, entry), info.size);
  }
  return offsets;
}

/** What a record must show for its verdict to stand: one line per contradiction (empty: it stands). */
export function recordContradictions(record: DrillRecord): string[] {
  const problems: string[] = [];
  const failedSteps = record.steps.filter((step) => !step.ok);
  const refuted = record.observations.filter((observation) => observation.ok === false);
  if (record.verdict === 'pass') {
    if (record.steps.length !== record.stepCount) {
      problems.push(`a pass needs all ${record.stepCount} steps, the record has ${record.steps.length}`);
    }
    for (const step of failedSteps) problems.push(`a pass with step "${step.title}" failed`);
    for (const observation of refuted) problems.push(`a pass with observation ${observation.label} not as the habit needs (${observation.value})`);
  } else if (failedSteps.length === 0 && refuted.length === 0 && record.steps.length === record.stepCount && !record.reason) {
    problems.push(`a ${record.verdict} with every step ok, no observation against it and no reason`);
  }
  return problems;
}
