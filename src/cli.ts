#!/usr/bin/env node
// sor-drills: the entry. Picks a command, runs it, and owns the exit: one
// top-level catch turns any failure into one actionable line and an exit code.
import { describeFailure } from './postgres/errors.js';
import { exitCodes } from './util/exit-codes.js';
import { exitWith, installExitHandlers } from './util/lifecycle.js';
import { usage } from './cli/usage.js';

type Command = (args: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  setup: async () => (await import('./cli/setup-command.js')).setupCommand,
  run: async () => (await import('./cli/run-command.js')).runCommand,
  oracle: async () => (await import('./cli/oracle-command.js')).oracleCommand,
  tools: async () => (await import('./cli/tools-command.js')).toolsCommand,
};

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${usage}\n`);
    return exitCodes.ok;
  }
  if (first === '--version' || first === '-v') {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return exitCodes.ok;
  }
  if (first !== undefined && !first.startsWith('-')) {
    const load = commands[first];
    if (!load) {
      const { UsageError } = await import('./postgres/url.js');
      throw new UsageError(`unknown command: ${first}\n\n${usage}`);
    }
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
    process.stderr.write(`sor-drills: ${message}\n`);
    return exitWith(code);
  },
);
