// `sor-drills verify BUNDLE|ARCHIVE`: whether a handed-in bundle is consistent with the
// evidence its run wrote (src/drills/verify.ts). One line per finding, naming the drill or
// the file; then the summary an instructor reads. Exit 0 consistent, 1 not, 2 bad usage.
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { readableFile } from './input-checks.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { exitCodes } from '../util/exit-codes.js';
import { UsageError } from '../postgres/url.js';

export const verifyUsage = `Usage: sor-drills verify BUNDLE|ARCHIVE

Checks that a bundle (a .md written by sor-drills) or an archive made by sor-drills pack is
consistent with the evidence its run wrote:
  - every file of the manifest is there with its sha256, and every evidence file, drill record
    and process log the bundle lists is in the manifest (an archive holds nothing else);
  - each drill's verdict in the JSON is re-derived from that drill's record, which must not
    contradict itself (a pass needs every step, each ok, no observation against the habit);
  - release_decision is PERMITTED exactly when all nine pass, and the decision paragraph names
    every failed drill (its wording is the operator's);
  - the mastery bundle beside it, when there is one, the same way.
It cannot prove that the run happened against the database the bundle names. An archive with
an absolute path, a .. or a link is refused before anything is extracted.

${commonFlagsHelp()}

${environmentHelp(['TMPDIR'], { TMPDIR: 'where an archive is extracted to be checked, then removed (default /tmp)' })}

Exit codes
  0 consistent   1 not consistent (one line per finding)   2 bad usage (no such file)
  ${signalExitsHelp}`;

export const verifyFlags = {} as const;

export async function verifyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, verifyFlags, true);
  if (values.help) {
    await printHelp(verifyUsage);
    return exitCodes.ok;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'verify needs a bundle or an archive: sor-drills verify BUNDLE|ARCHIVE' : `verify takes one file, not ${positionals.length}`);
  const file = readableFile('BUNDLE', positionals[0]!);
  const [{ drills }, { isArchive, verifyArchive }, { summaryLines, verifyBundle }] = await Promise.all([
    import('../drills/index.js'),
    import('../drills/pack.js'),
    import('../drills/verify.js'),
  ]);
  const result = isArchive(file) ? await verifyArchive(file, drills) : await verifyBundle(file, drills, { show: (name) => name });
  const out: string[] = [];
  for (const finding of result.findings) out.push(`✗ ${finding.subject}: ${finding.message}`);
  if (result.checks.length > 0) out.push(...summaryLines(result.checks, drills));
  out.push(result.findings.length === 0 ? `consistent: ${positionals[0]} matches the evidence its run wrote` : `not consistent: ${result.findings.length} finding${result.findings.length === 1 ? '' : 's'} in ${positionals[0]}`);
  await new Promise<void>((resolve) => process.stdout.write(`${out.join('\n')}\n`, () => resolve()));
  return result.findings.length === 0 ? exitCodes.ok : exitCodes.blocked;
}
