// The deliberate bugs of this example, each switched on by EXAMPLE_BUG=<name> in one
// process's environment (off by default), so the tests can prove each drill catches it.
export const knownBugs = {
  'no-resume': 'worker: ignores its crashed run and always starts a new one (run journal resume drill)',
  'no-skip-locked': 'tool server: claims with plain FOR UPDATE, so a second claim waits (concurrency claim drill)',
  'dispatch-before-send': 'relay: marks a message sent and commits before sending it (outbox relay drill)',
  'leak-database-url': 'worker: started with DATABASE_URL in its environment, declared in processes.worker.env (MCP boundary drill)',
  'sql-tool': 'tool server: lists an extra tool `sql` that executes its argument (MCP boundary drill)',
};

/** The bug switched on in env, or undefined; an unknown name is refused (a typo must not test the fixed code). */
export function exampleBug(env) {
  const bug = env.EXAMPLE_BUG || undefined;
  if (bug !== undefined && !Object.hasOwn(knownBugs, bug)) {
    throw new Error(`EXAMPLE_BUG=${bug} is not one of ${Object.keys(knownBugs).join(', ')}`);
  }
  return bug;
}
