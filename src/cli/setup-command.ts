// `sor-drills setup`: the reference Reconciler schema and seed rows into a target, or
// (--down) out of it. The target string is checked before anything starts.
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { keepFlag, targetString } from './input-checks.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { exitCodes } from '../util/exit-codes.js';

export const setupFlags = {
  db: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  down: { type: 'boolean' },
  keep: { type: 'boolean' },
} as const;

export const setupUsage = `Usage: sor-drills setup [--db URL] [--yes] [--down] [--keep] [--no-color]

Installs the reference Reconciler schema (roles, tables, RLS, append-only triggers) and its
seed rows into an empty target through dbmate-format migrations, in one transaction; run twice
it says the schema is already there and changes nothing.

Flags
  --db URL          the target (default: DATABASE_URL, else a throwaway embedded PostgreSQL)
  -y, --yes         install into a database that holds tables of its own (refused without it)
  --down            remove what setup installed, in reverse order, through the down migrations
  --keep            leave the embedded cluster running after exit and print how to connect
${commonFlagsHelp()}

Needs CREATEROLE (the roles are cluster-wide) and CREATE on schema public.

${environmentHelp(['DATABASE_URL', 'PG', 'TMPDIR'])}

Exit codes
  0 installed (or already there), or removed   1 a foreign database refused without --yes
  2 bad usage   3 target unreachable or lacking a privilege (named)
  ${signalExitsHelp}`;

export async function setupCommand(args: string[]): Promise<number> {
  const { values } = parse(args, setupFlags);
  if (values.help) {
    await printHelp(setupUsage);
    return exitCodes.ok;
  }
  const db = targetString(values.db);
  const keep = keepFlag(values.keep, db);
  const { resolveTarget } = await import('../postgres/target.js');
  const { setup, setupDown } = await import('../postgres/setup.js');
  const { printKept } = await import('../postgres/kept.js');
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const target = await resolveTarget({ db, keep, onProgress: progress });
  try {
    progress(`target: ${target.display}`);
    const options = { embedded: target.kind === 'embedded', yes: Boolean(values.yes), onProgress: progress };
    if (values.down) await setupDown(target.url, options);
    else await setup(target.url, options);
    if (target.cluster && keep) printKept(target.cluster);
    return exitCodes.ok;
  } finally {
    await target.close();
  }
}
