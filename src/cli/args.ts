// Flags are typed and unknown flags are refused (exit 2 with the usage).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../postgres/url.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(
  args: string[],
  options: Options,
  usage: string,
  allowPositionals = false,
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals });
    return { values: values as Record<string, unknown>, positionals };
  } catch (error) {
    const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    throw new UsageError(`${message}\n\n${usage}`);
  }
}
