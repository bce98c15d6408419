// Runs the built CLI (dist/, built by `pretest`) as a user would, with an
// environment that holds no DATABASE_URL unless the test gives one.
import { execa, type Options } from 'execa';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG']) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return { ...env, ...extra };
}

export async function runCli(args: string[], options: Options & { env?: Record<string, string> } = {}) {
  const result = await execa('node', [cliPath, ...args], {
    reject: false,
    timeout: 120_000,
    extendEnv: false,
    ...options,
    env: cleanEnv(options.env ?? {}),
  });
  return {
    exitCode: result.exitCode,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    durationMs: result.durationMs,
  };
}
