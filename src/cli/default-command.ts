// `sor-drills` with no command: the console when a person is at a terminal,
// the headless run otherwise (a pipe, CI, --json), so `npm start` in a pipe
// prints the nine verdicts and writes the bundle. Either way every flag, every
// file a flag names and the target are checked before anything starts.
import { parse, printHelp } from './args.js';
import { exitCodes } from '../util/exit-codes.js';
import { checkRunInput, runFlags } from './run-flags.js';
import { usage } from './usage.js';
import { UsageError } from '../postgres/url.js';

export const defaultFlags = { ...runFlags, auto: { type: 'boolean' } } as const;

/** Flags only the headless run knows what to do with. */
const headlessOnly = ['only', 'junit', 'gate', 'migration', 'worker-role', 'reader-role', 'owner-role'] as const;

/** Ink's own rule (is-in-ci): CI or CONTINUOUS_INTEGRATION present and not 0 or false. */
function inCi(env: NodeJS.ProcessEnv): boolean {
  return ['CI', 'CONTINUOUS_INTEGRATION'].some((key) => key in env && env[key] !== '0' && env[key] !== 'false');
}

export function wantsConsole(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): boolean {
  if (values.json) return false;
  if (inCi(env)) return false;
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}

export async function defaultCommand(args: string[]): Promise<number> {
  const { values } = parse(args, defaultFlags);
  if (values.help) {
    await printHelp(usage);
    return exitCodes.ok;
  }
  const atTerminal = wantsConsole(values);
  if (!atTerminal && values.auto) throw new UsageError('--auto needs a terminal; without one, sor-drills runs headless (as sor-drills run)');
  if (atTerminal) {
    for (const flag of headlessOnly) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is for the headless run: use sor-drills run --${flag} ...`);
    }
  }
  const input = await checkRunInput(values);
  if (!atTerminal) {
    const { runHeadless } = await import('./run-command.js');
    return runHeadless(input);
  }
  const { startConsole } = await (await import('../console/load.js')).loadConsole();
  return startConsole({
    db: input.db,
    keep: input.keep,
    yes: input.yes,
    auto: Boolean(values.auto),
    paceMs: input.paceMs,
    // Checked above; handed on as typed, so the console names it as the operator wrote it.
    out: values.out as string | undefined,
    breaks: input.breaks,
    profile: input.profile,
    roles: input.roles,
  });
}
