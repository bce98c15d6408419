// `sor-drills pack BUNDLE [--out FILE] [--force]`: the bundle, its mastery bundle beside it,
// and every file their manifests list (evidence folders, drill records, process logs) in one
// .tar.gz with relative paths, for handing in. `sor-drills verify` checks it.
import { existsSync } from 'node:fs';
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { readableFile, writableFile } from './input-checks.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { exitCodes } from '../util/exit-codes.js';
import { UsageError } from '../postgres/url.js';

export const packFlags = {
  out: { type: 'string' },
  force: { type: 'boolean' },
} as const;

export const packUsage = `Usage: sor-drills pack BUNDLE [--out FILE] [--force]

Packs a bundle for handing in: one .tar.gz holding the bundle, its mastery bundle when there is
one beside it (<name>.mastery.md), and every file their manifests list (the oracle's evidence
folders, each drill's record, the process logs), at paths relative to the run's folder. An
instructor checks it with sor-drills verify ARCHIVE.

Flags
  --out FILE        where to write the archive (default: the bundle's name with .tar.gz)
  --force           overwrite --out when it already exists (refused without it)
${commonFlagsHelp()}

${environmentHelp(['TMPDIR'], { TMPDIR: 'where the archive is staged while it is written (default /tmp)' })}

Exit codes
  0 packed   2 bad usage (no such bundle, a bundle without a files index, --out exists)
  ${signalExitsHelp}`;

export async function packCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, packFlags, true);
  if (values.help) {
    await printHelp(packUsage);
    return exitCodes.ok;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'pack needs the bundle file: sor-drills pack BUNDLE' : `pack takes one bundle, not ${positionals.length}`);
  const bundle = readableFile('BUNDLE', positionals[0]!);
  const { defaultArchivePath, packBundle } = await import('../drills/pack.js');
  const shownOut = values.out === undefined ? defaultArchivePath(positionals[0]!) : String(values.out);
  const out = writableFile('--out', shownOut);
  if (!values.force && existsSync(out)) throw new UsageError(`${shownOut} already exists; add --force to overwrite it, or name another file with --out`);
  const files = await packBundle(bundle, out);
  process.stderr.write(`packed ${files.length} files into ${shownOut}\n`);
  return exitCodes.ok;
}
