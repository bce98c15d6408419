// `sor-drills` with no command: the console when a person is at a terminal,
// the headless run otherwise (a pipe, CI, --json), so `npm start` in a pipe
// prints the nine verdicts and writes the bundle.
import { parse } from './args.js';
import { exitCodes } from '../util/exit-codes.js';
import { paceOf, runFlags } from './run-flags.js';
import { usage } from './usage.js';
import { isBundleKey, type BundleKey } from '../drills/types.js';
import { UsageError } from '../postgres/url.js';

export function wantsConsole(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): boolean {
  if (values.json) return false;
  if (env.CI && env.CI !== 'false' && env.CI !== '0') return false;
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}

export async function defaultCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { ...runFlags, auto: { type: 'boolean' } }, usage);
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return exitCodes.ok;
  }
  if (!wantsConsole(values)) {
    if (values.auto) throw new UsageError('--auto needs a terminal; without one, sor-drills runs headless (see sor-drills run --help)');
    const { runCommand } = await import('./run-command.js');
    return runCommand(args);
  }
  for (const flag of ['only', 'junit', 'gate', 'migration', 'worker-role', 'reader-role', 'owner-role'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} is for the headless run: use sor-drills run --${flag} ...`);
  }
  const breaks = ((values.break as string[] | undefined) ?? []).map((key) => {
    if (!isBundleKey(key)) throw new UsageError(`--break ${key}: not a drill (see sor-drills run --help for the keys)`);
    return key as BundleKey;
  });
  const { startConsole, defaultPaceMs } = await import('../console/start.js');
  return startConsole({
    db: values.db as string | undefined,
    keep: Boolean(values.keep),
    yes: Boolean(values.yes),
    auto: Boolean(values.auto),
    paceMs: paceOf(values.pace, defaultPaceMs),
    out: values.out as string | undefined,
    breaks,
  });
}
