// Flags are typed and unknown flags are refused: one line naming the flag (exit 2);
// the entry adds where to read the usage (`see sor-drills <command> --help`).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../postgres/url.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command takes. */
export const commonFlags = {
  help: { type: 'boolean', short: 'h' },
  'no-color': { type: 'boolean' },
} as const satisfies Options;

/** The help lines of the common flags, for every command's usage text, descriptions at `column`. */
export function commonFlagsHelp(column = 20): string {
  return [
    ['--no-color', 'no colours (the same as NO_COLOR=1)'],
    ['-h, --help', 'this help, on stdout'],
  ]
    .map(([flag, text]) => `  ${flag!.padEnd(column - 2)}${text}`)
    .join('\n');
}

/** Where a usage error sends the reader: the usage of the command it was given to. */
export function helpHint(command: string | undefined): string {
  return `see sor-drills ${command ? `${command} ` : ''}--help`;
}

/** node:util's messages (several lines, in its words) as one line in ours. */
function parseErrorLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  const flag = /--[\w-]+/.exec(message)?.[0] ?? /'(-\w)'/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return `unknown flag ${flag}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) {
    if (/does not take an argument/.test(message)) return `${flag} takes no value`;
    if (/ambiguous/.test(message)) return `${flag} needs a value (for a value that starts with '-', write ${flag}=-VALUE)`;
    return `${flag} needs a value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const argument = /'([^']*)'/.exec(message)?.[1];
    return `unexpected argument ${JSON.stringify(argument ?? '')}`;
  }
  return message.split('\n')[0] ?? 'bad arguments';
}

export function parse(
  args: string[],
  options: Options,
  allowPositionals = false,
): { values: Record<string, unknown>; positionals: string[] } {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    const { values, positionals } = parseArgs({ args, options: { ...commonFlags, ...options }, strict: true, allowPositionals });
    parsed = { values: values as Record<string, unknown>, positionals };
  } catch (error) {
    throw new UsageError(parseErrorLine(error));
  }
  // --no-color is NO_COLOR by another name: set it, so every reader of NO_COLOR sees the same.
  if (parsed.values['no-color']) process.env.NO_COLOR = '1';
  return parsed;
}

/** Writes a command's usage on stdout (exit 0): --help is output asked for, not an error. */
export function printHelp(text: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${text}\n`, () => resolve()));
}
