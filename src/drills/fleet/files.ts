// Where a fleet run's evidence goes and how it is written: the JSON of its figures,
// the markdown report beside it, and the processes' logs in a folder named after the
// run's tag. One place for the CLI (`sor-drills fleet`) and the console (f on the
// decision screen), so both leave the same two files.
import path from 'node:path';
import { writeFileAtomic } from '../../util/fs.js';
import { fleetJson, renderFleetReport, type FleetOutcome } from './report.js';

export interface FleetFiles {
  /** The figures (absolute). */
  json: string;
  /** The markdown report beside it (absolute). */
  report: string;
  /** Where the fleet's processes write their logs. */
  logDir: string;
}

/** The files of run `tag`: `out` when given, else `<dir>/<tag>.json`; the report is `<out without .json>.md`. */
export function fleetFiles(tag: string, options: { out?: string; dir?: string } = {}): FleetFiles {
  const json = path.resolve(options.out ?? path.join(options.dir ?? 'evidence', `${tag}.json`));
  return {
    json,
    report: `${json.replace(/\.json$/i, '')}.md`,
    logDir: path.join(path.dirname(json), tag, 'processes'),
  };
}

/** Writes the JSON and the report of an outcome; returns both (the JSON object is what --json prints). */
export async function writeFleetFiles(
  outcome: FleetOutcome,
  files: Pick<FleetFiles, 'json' | 'report'>,
): Promise<{ json: Record<string, unknown>; report: string }> {
  const json = fleetJson(outcome);
  const report = renderFleetReport(outcome);
  await writeFileAtomic(files.json, `${JSON.stringify(json, null, 2)}\n`);
  await writeFileAtomic(files.report, report);
  return { json, report };
}

/**
 * The report's verdict on what strained: the last line of its "What strained first" section
 * ("Strained first: the claim's row locks (a lock wait in 41% of samples)." or "Nothing crossed its line: ..."),
 * without its markdown emphasis.
 */
export function strainedFirstLine(report: string): string | undefined {
  const lines = report.split('\n');
  const start = lines.findIndex((line) => line.trim() === '## What strained first');
  if (start < 0) return undefined;
  const end = lines.findIndex((line, index) => index > start && line.startsWith('## '));
  const section = lines.slice(start + 1, end < 0 ? undefined : end).filter((line) => line.trim() !== '');
  return section.at(-1)?.replace(/\*\*/g, '').trim();
}
