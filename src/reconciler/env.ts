// Environments of the supervised processes, built from an allow-list.
//
// No child inherits the console's environment (execa `extendEnv: false`): the
// console may hold DATABASE_URL, PGPASSWORD or PGHOST, and the Worker must never
// see them, not even to hand them on. Each child gets the few variables a Node
// process needs to run plus its own SOR_* settings, and nothing else.

/** The only variables copied from the console's environment into any child. */
export const inheritedVariables = ['PATH', 'LANG', 'TZ'] as const;

/** Every variable a Worker process may have: the contract the boundary drill checks. */
export const workerEnvAllowList = [
  ...inheritedVariables,
  'SOR_TOOLS_URL',
  'SOR_TOOLS_TOKEN',
  'SOR_WORKER_NAME',
  'SOR_TENANT',
  'SOR_PACE_MS',
  'SOR_TURNS',
  'SOR_RESUME',
  'SOR_MODE',
  'SOR_PAUSE_AFTER',
  'SOR_CLAIM_HOLD_MS',
  'SOR_WAIT_FOR_GO',
] as const;

export type WorkerEnvName = (typeof workerEnvAllowList)[number];

/**
 * The inherited variables (when set in `source`) plus `extra`. Undefined extras are left out.
 * Nothing else of `source` is copied, whatever it holds.
 */
export function allowListEnv(
  extra: Record<string, string | number | boolean | undefined>,
  source: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of inheritedVariables) {
    const value = source[name];
    if (value !== undefined) env[name] = value;
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value !== undefined) env[name] = String(value);
  }
  return env;
}

/** Names in env that look like database credentials (DATABASE_URL or any PG* variable). */
export function credentialVariables(env: Record<string, string | undefined>): string[] {
  return Object.keys(env).filter((name) => name === 'DATABASE_URL' || /^PG/i.test(name));
}

/** Parses the NUL-separated contents of /proc/<pid>/environ. */
export function parseEnviron(raw: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of raw.split('\0')) {
    if (!entry) continue;
    const at = entry.indexOf('=');
    if (at <= 0) continue;
    env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return env;
}
