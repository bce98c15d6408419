// The console end to end, in a real pseudo-terminal (tmux), as a person would
// see it: `node dist/cli.js` (built by `pretest`) on the embedded PostgreSQL.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bundleKeys } from '../../src/drills/types.js';
import { parseBundle } from '../../src/drills/bundle.js';
import { alive, clusterPostmasters, hasTmux, launch, type Terminal } from './tmux.js';

if (!hasTmux()) throw new Error('the end-to-end tests need tmux (apt-get install tmux; .ci/run installs it)');

let terminal: Terminal | undefined;
afterEach(() => {
  terminal?.kill();
  terminal = undefined;
});

/** Nothing of ours may outlive the console: no node, no postgres, no Reconciler process. */
async function expectNothingLeft(pids: Set<number>, clustersBefore: Map<number, string>): Promise<void> {
  const deadline = Date.now() + 10_000;
  let left: number[] = [];
  let clusters: string[] = [];
  do {
    left = [...pids].filter(alive);
    clusters = [...clusterPostmasters()].filter(([pid]) => !clustersBefore.has(pid)).map(([pid, dir]) => `${pid} ${dir}`);
    if (left.length === 0 && clusters.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  } while (Date.now() < deadline);
  expect({ left, clusters }).toEqual({ left: [], clusters: [] });
}

describe('the console in a terminal', () => {
  it('shows the nine drills and the footer, ? shows help, q quits with nothing left running', async () => {
    const clustersBefore = clusterPostmasters();
    terminal = launch({ args: [], columns: 120, rows: 40 });
    const first = await terminal.waitFor((screen) => screen.includes('sor-drills'), 'the first frame', 20_000);
    expect(first).toMatch(/Target|Nine drills/);
    const list = await terminal.waitFor((screen) => /drills, in order ·/.test(screen), 'the drill list', 90_000);
    expect(list).toContain('Nine drills, in order');
    for (const key of bundleKeys) expect(list).toContain(key);
    expect(list).toMatch(/enter open drill 1/);
    expect(list).toMatch(/\? help/);
    expect(list).toMatch(/q quit/);

    terminal.keys('?');
    const help = await terminal.waitFor((screen) => screen.includes('Keys'), 'the help screen');
    for (const key of ['ctrl+s', 'tab', 'esc', 'enter']) expect(help).toContain(key);
    terminal.keys('Escape');
    await terminal.waitFor((screen) => /drills, in order ·/.test(screen) && !screen.includes('Keys ·'), 'the list again');

    const pids = terminal.tree();
    expect(pids.size).toBeGreaterThan(0);
    terminal.keys('q');
    expect(await terminal.exitCode(60_000)).toBe(130);
    await expectNothingLeft(pids, clustersBefore);
    // The terminal is handed back clean: the last frame says what was stopped.
    expect(terminal.screen()).toMatch(/stopped PostgreSQL/);
  }, 180_000);

  it('a terminal smaller than 80x24 gets a message, the layout comes back when it grows, ctrl+c stops everything', async () => {
    const clustersBefore = clusterPostmasters();
    terminal = launch({ args: [], columns: 70, rows: 20 });
    await terminal.waitFor((screen) => screen.includes('Terminal too small: 70x20'), 'the message', 20_000);
    terminal.resize(100, 30);
    await terminal.waitFor((screen) => /drills, in order/.test(screen) && !screen.includes('too small'), 'the layout', 90_000);
    const pids = terminal.tree();
    // Ctrl-C in raw mode is a key, not a signal: the console must still stop everything and say 130.
    terminal.keys('C-c');
    expect(await terminal.exitCode(60_000)).toBe(130);
    await expectNothingLeft(pids, clustersBefore);
  }, 180_000);

  it('closing the terminal mid-drill (a hangup) stops the Reconciler processes and PostgreSQL', async () => {
    const clustersBefore = clusterPostmasters();
    terminal = launch({ args: [], columns: 120, rows: 40 });
    await terminal.waitFor((screen) => /drills, in order ·/.test(screen), 'the drill list', 90_000);
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('enter start drill'), 'drill 1');
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('enter next drill'), 'drill 1 done', 60_000);
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('enter start drill'), 'drill 2');
    terminal.keys('Enter');
    // The crash drill has its tool server and Worker running when the terminal goes away.
    await terminal.waitFor((screen) => screen.includes('press k'), 'the kill ask', 60_000);
    const pids = terminal.tree();
    terminal.kill();
    await expectNothingLeft(pids, clustersBefore);
  }, 240_000);

  it('q while PostgreSQL is still starting stops the cluster it was starting', async () => {
    const clustersBefore = clusterPostmasters();
    terminal = launch({ args: [], columns: 100, rows: 30 });
    await terminal.waitFor((screen) => screen.includes('getting the target ready'), 'the boot screen', 20_000);
    terminal.keys('q');
    expect(await terminal.exitCode(60_000)).toBe(130);
    await expectNothingLeft(terminal.tree(), clustersBefore);
  }, 120_000);

  it('--auto --pace 0 --out F walks all nine drills, writes F and exits with the decision', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sor-e2e-'));
    const out = path.join(dir, 'bundle.md');
    const clustersBefore = clusterPostmasters();
    try {
      terminal = launch({ args: ['--auto', '--pace', '0', '--out', out], columns: 120, rows: 40 });
      await terminal.waitFor((screen) => /Drill \d|drills, in order|Release/.test(screen), 'the drills', 90_000);
      const pids = terminal.tree();
      const code = await terminal.exitCode(900_000);
      expect(existsSync(out), terminal.history()).toBe(true);
      const { bundle, paragraph } = parseBundle(readFileSync(out, 'utf8'));
      expect(Object.keys(bundle)).toEqual([...bundleKeys, 'release_decision']);
      for (const key of bundleKeys) expect(bundle[key]).toMatch(/^(pass|fail: .+)$/);
      const permitted = bundle.release_decision.startsWith('PERMITTED');
      expect(code).toBe(permitted ? 0 : 1);
      expect(paragraph).toMatch(permitted ? /^Release PERMITTED/ : /^Release BLOCKED/);
      const history = terminal.history();
      expect(history).toContain(`bundle saved: ${out}`);
      expect(history).toMatch(/Release (PERMITTED|BLOCKED)|release (PERMITTED|BLOCKED)/);
      await expectNothingLeft(new Set([...pids, ...terminal.tree()]), clustersBefore);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 1_000_000);
});
