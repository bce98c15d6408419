import { parse } from './args.js';
import { exitCodes } from '../util/exit-codes.js';
import { resolveTarget } from '../postgres/target.js';
import { setup, setupDown } from '../postgres/setup.js';
import { printKept } from '../postgres/kept.js';

const usage = `Usage: sor-drills setup [--db URL] [--yes] [--down] [--keep]

Installs the reference Reconciler schema (roles, tables, RLS, append-only triggers) and its
seed rows into an empty target through dbmate-format migrations; run twice it changes nothing.
--down removes what setup installed, in reverse order, through the down migrations.`;

export async function setupCommand(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      db: { type: 'string' },
      yes: { type: 'boolean', short: 'y' },
      down: { type: 'boolean' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return exitCodes.ok;
  }
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const target = await resolveTarget({ db: values.db as string | undefined, keep: Boolean(values.keep), onProgress: progress });
  try {
    progress(`target: ${target.display}`);
    const options = { embedded: target.kind === 'embedded', yes: Boolean(values.yes), onProgress: progress };
    if (values.down) await setupDown(target.url, options);
    else await setup(target.url, options);
    if (target.cluster && values.keep) printKept(target.cluster);
    return exitCodes.ok;
  } finally {
    await target.close();
  }
}
