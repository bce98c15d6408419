// The console on the operator's own Worker side (examples/worker-side through its
// profile), in a real pseudo-terminal: ctrl+c in the middle of the crash drill leaves
// none of their processes running, and no cluster.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dropOtherRoles, exampleDir, exampleProfile, installOtherReconciler, otherRoles } from '../helpers/other-reconciler.js';
import { scratchDir } from '../helpers/scratch.js';
import { alive, hasTmux, launch, type Terminal } from './tmux.js';

if (!hasTmux()) throw new Error('the end-to-end tests need tmux (apt-get install tmux; .ci/run installs it)');

const roles = otherRoles();
let db: TestDatabase;
let profileFile: string;
let terminal: Terminal | undefined;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await installOtherReconciler(db.url, roles);
  const profile = await exampleProfile(roles);
  // Written elsewhere, so the commands are made absolute: they would resolve against this file's folder.
  const processes = structuredClone(profile.processes!);
  for (const spec of [processes.tool_server, processes.worker, processes.relay]) {
    if (spec) spec.command = spec.command.map((part) => (part.endsWith('.mjs') ? path.join(exampleDir, part) : part));
  }
  profileFile = path.join(scratchDir('operator-console-'), 'profile.json');
  writeFileSync(profileFile, JSON.stringify({ ...profile, processes }));
});
afterEach(async () => {
  await terminal?.dispose();
  terminal = undefined;
});
afterAll(async () => {
  await db?.dispose();
  if (db) await dropOtherRoles(db.adminUrl, roles);
});

describe("the console on the operator's own processes", () => {
  it('ctrl+c during the crash drill stops their Worker and tool server, and nothing is left', async () => {
    terminal = launch({ args: ['--db', db.url, '--yes', '--profile', profileFile], columns: 120, rows: 40 });
    await terminal.waitFor((screen) => /drills, in order ·/.test(screen), 'the drill list', 90_000);
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('enter run step 1'), 'drill 1');
    terminal.keys('a');
    await terminal.waitFor((screen) => screen.includes('enter next drill'), 'drill 1 done', 60_000);
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('enter run step 1'), 'drill 2');
    terminal.keys('a');
    // Their processes run under the console: seen in its process tree by their command lines.
    const seen = await waitForTheirs(terminal);
    terminal.keys('C-c');
    const code = await terminal.exitCode(30_000);
    expect(code).toBe(130);
    const deadline = Date.now() + 10_000;
    let left = seen.filter(alive);
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = seen.filter(alive);
    }
    expect(left).toEqual([]);
  }, 180_000);
});

/** The pids of examples/worker-side processes in the console's tree, once both the tool server and the Worker run. */
async function waitForTheirs(started: Terminal): Promise<number[]> {
  const { readFileSync } = await import('node:fs');
  const deadline = Date.now() + 90_000;
  for (;;) {
    const pids = [...started.tree()].filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(exampleDir);
      } catch {
        return false;
      }
    });
    const commands = pids.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    if (commands.some((line) => line.includes('tool-server.mjs')) && commands.some((line) => line.includes('worker.mjs'))) return pids;
    if (Date.now() > deadline) throw new Error(`their tool server and Worker never ran under the console:\n${started.screen()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
