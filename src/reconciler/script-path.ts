// Which file a child process of the Reconciler runs: its one-file bundle (dist/bundle/,
// made by `npm run build`), or the compiled script when the bundle is missing or older.
// This module sits beside launch.ts so that both resolve the same relative paths.
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type ReconcilerScript = 'tool-server' | 'worker' | 'fleet-worker' | 'relay' | 'email-service';

/**
 * The script a child process runs: its bundle (dist/bundle/, made by `npm run build`: one file
 * loads in about a third of the time of its ~200 modules) when that is at least as new as the
 * compiled script, else the compiled script itself, beside this module in dist/ or in
 * dist/reconciler/ when running from src/ (vitest).
 */
export function scriptPath(script: ReconcilerScript): string {
  const compiled = compiledScript(script);
  const bundle = fileURLToPath(new URL(`../../dist/bundle/${script}.js`, pathToFileURL(compiled)));
  return pickScript(bundle, compiled);
}

function compiledScript(script: ReconcilerScript): string {
  const beside = fileURLToPath(new URL(`./${script}.js`, import.meta.url));
  if (existsSync(beside)) return beside;
  const built = fileURLToPath(new URL(`../../dist/reconciler/${script}.js`, import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`cannot find the compiled ${script}.js (looked at ${beside} and ${built}): run npm run build`);
}

/** The bundle, unless it is missing or older than its script: then it was made from other code (a bare tsc ran after it). */
export function pickScript(bundle: string, compiled: string): string {
  try {
    return statSync(bundle).mtimeMs >= statSync(compiled).mtimeMs ? bundle : compiled;
  } catch {
    return compiled;
  }
}
