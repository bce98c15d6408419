// `sor-drills` with no command. Until the console exists, it starts the target,
// installs the reference schema and says what it did.
import { parse } from './args.js';
import { exitCodes } from './errors.js';
import { resolveTarget } from '../target/target.js';
import { setup } from '../target/setup.js';
import { printKept } from './kept.js';
import { usage } from './usage.js';

export async function defaultCommand(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      db: { type: 'string' },
      yes: { type: 'boolean', short: 'y' },
      keep: { type: 'boolean' },
    },
    usage,
  );
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const target = await resolveTarget({ db: values.db as string | undefined, keep: Boolean(values.keep), onProgress: progress });
  try {
    progress(`target: ${target.display}`);
    await setup(target.url, { embedded: target.kind === 'embedded', yes: Boolean(values.yes), onProgress: progress });
    if (target.cluster && values.keep) printKept(target.cluster);
    return exitCodes.ok;
  } finally {
    await target.close();
  }
}
