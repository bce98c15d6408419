#!/usr/bin/env node
// sor-drills: the entry. Picks a command, runs it, and owns the exit: one
// top-level catch turns any failure into one actionable line and an exit code.
import { describeFailure } from './postgres/errors.js';
import { exitCodes } from './util/exit-codes.js';
import { exiting, exitWith, installExitHandlers } from './util/lifecycle.js';
import { helpHint } from './cli/args.js';

type Command = (args: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  setup: async () => (await import('./cli/setup-command.js')).setupCommand,
  run: async () => (await import('./cli/run-command.js')).runCommand,
  oracle: async () => (await import('./cli/oracle-command.js')).oracleCommand,
  tools: async () => (await import('./cli/tools-command.js')).toolsCommand,
  profile: async () => (await import('./cli/profile-command.js')).profileCommand,
  pack: async () => (await import('./cli/pack-command.js')).packCommand,
  verify: async () => (await import('./cli/verify-command.js')).verifyCommand,
  fleet: async () => (await import('./cli/fleet-command.js')).fleetCommand,
};

/** The command a usage error's hint points to (undefined: the top-level usage). */
let helpTopic: string | undefined;

async function unknownCommand(name: string): Promise<never> {
  const { UsageError } = await import('./postgres/url.js');
  throw new UsageError(`unknown command: ${name} (the commands are ${Object.keys(commands).join(', ')})`);
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'help') {
    // `sor-drills help run` is `sor-drills run --help`, word for word.
    const [topic, ...extra] = rest;
    if (topic === undefined || topic === '--help' || topic === '-h') return main(['--help']);
    if (!commands[topic]) return unknownCommand(topic);
    if (extra.length > 0) {
      const { UsageError } = await import('./postgres/url.js');
      throw new UsageError(`help takes one command, not ${JSON.stringify(extra.join(' '))}`);
    }
    return main([topic, '--help']);
  }
  if (first === '--version' || first === '-v') {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return exitCodes.ok;
  }
  if (first !== undefined && !first.startsWith('-')) {
    const load = commands[first];
    if (!load) return unknownCommand(first);
    helpTopic = first;
    return (await load())(rest);
  }
  const { defaultCommand } = await import('./cli/default-command.js');
  return defaultCommand(argv);
}

installExitHandlers((error) => {
  const { message } = describeFailure(error);
  process.stderr.write(`sor-drills: ${message}\n`);
});

main(process.argv.slice(2)).then(
  (code) => exitWith(code),
  (error: unknown) => {
    const { code, message } = describeFailure(error);
    // Interrupted (ctrl+c, SIGTERM): the cleanups stopping the cluster and the children made
    // the command fail; the exit's own code stands and there is nothing to report.
    if (exiting()) return exitWith(code);
    const line = message.split('\n')[0] ?? '';
    // A usage error is one line and where to read the usage, never the whole usage.
    const hint = code === exitCodes.usage ? `; ${helpHint(helpTopic)}` : '';
    process.stderr.write(`sor-drills: ${line}${hint}\n`);
    return exitWith(code);
  },
);
