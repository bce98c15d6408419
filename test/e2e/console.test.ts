// The console end to end, in a real pseudo-terminal (tmux), as a person would
// see it: `node dist/cli.js` (built by `pretest`) on the embedded PostgreSQL.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bundleKeys } from '../../src/drills/types.js';
import { alive, hasTmux, launch, type Terminal } from './tmux.js';

if (!hasTmux()) throw new Error('the end-to-end tests need tmux (apt-get install tmux; .ci/run installs it)');

let terminal: Terminal | undefined;
afterEach(async () => {
  await terminal?.dispose();
  terminal = undefined;
});

/** Nothing of ours may outlive the console: no node, no postgres, no Reconciler process. */
async function expectNothingLeft(pids: Set<number>, started: Terminal): Promise<void> {
  const deadline = Date.now() + 10_000;
  let left: number[] = [];
  let clusters: string[] = [];
  do {
    left = [...pids].filter(alive);
    clusters = [...started.clusters()].map(([pid, dir]) => `${pid} ${dir}`);
    if (left.length === 0 && clusters.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  } while (Date.now() < deadline);
  expect({ left, clusters }).toEqual({ left: [], clusters: [] });
}

describe('the console in a terminal', () => {
  it('shows the nine drills and the footer, ? shows help, q quits with nothing left running', async () => {
    terminal = launch({ args: [], columns: 120, rows: 40 });
    const first = await terminal.waitFor((screen) => screen.includes('sor-drills'), 'the first frame', 20_000);
    expect(first).toMatch(/Target|Nine drills/);
    // The whole list and its footer: a frame caught mid-draw (a loaded runner) holds only its first rows.
    const list = await terminal.waitFor(
      (screen) => /drills, in order ·/.test(screen) && screen.includes('forensics_drill') && /q quit/.test(screen),
      'the drill list with its footer',
      90_000,
    );
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
    // The embedded cluster is seen as this terminal's, so that the check after q can see it gone.
    expect(terminal.clusters().size).toBe(1);
    terminal.keys('q');
    expect(await terminal.exitCode(60_000)).toBe(130);
    await expectNothingLeft(pids, terminal);
    // The terminal is handed back clean: the last frame says what was stopped.
    expect(terminal.screen()).toMatch(/stopped PostgreSQL/);
  }, 180_000);

  it('a terminal smaller than 80x24 gets a message, the layout comes back when it grows, ctrl+c stops everything', async () => {
    terminal = launch({ args: [], columns: 70, rows: 20 });
    await terminal.waitFor((screen) => screen.includes('Terminal too small: 70x20'), 'the message', 20_000);
    terminal.resize(100, 30);
    await terminal.waitFor((screen) => /drills, in order/.test(screen) && !screen.includes('too small'), 'the layout', 90_000);
    const pids = terminal.tree();
    // Ctrl-C in raw mode is a key, not a signal: the console must still stop everything and say 130.
    terminal.keys('C-c');
    expect(await terminal.exitCode(60_000)).toBe(130);
    await expectNothingLeft(pids, terminal);
  }, 180_000);

  it('closing the terminal mid-drill (a hangup) stops the Reconciler processes and PostgreSQL', async () => {
    terminal = launch({ args: [], columns: 120, rows: 40 });
    await terminal.waitFor((screen) => /drills, in order ·/.test(screen), 'the drill list', 90_000);
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('enter run step 1'), 'drill 1');
    terminal.keys('a');
    await terminal.waitFor((screen) => screen.includes('enter next drill'), 'drill 1 done', 60_000);
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('enter run step 1'), 'drill 2');
    terminal.keys('a');
    // The crash drill has its tool server and Worker running when the terminal goes away.
    await terminal.waitFor((screen) => screen.includes('press k'), 'the kill ask', 60_000);
    const pids = terminal.tree();
    terminal.kill();
    await expectNothingLeft(pids, terminal);
  }, 240_000);

  it('q while PostgreSQL is still starting stops the cluster it was starting', async () => {
    terminal = launch({ args: [], columns: 100, rows: 30 });
    await terminal.waitFor((screen) => screen.includes('getting the target ready'), 'the boot screen', 20_000);
    terminal.keys('q');
    expect(await terminal.exitCode(60_000)).toBe(130);
    await expectNothingLeft(terminal.tree(), terminal);
  }, 120_000);

  it('--auto --pace 0 --out F passes all nine drills on the reference, writes F and exits 0 PERMITTED', async () => {
    const run = await autoRun([]);
    expect(run.bundle, lastLines(run.history)).toEqual({ ...allPass(), release_decision: 'PERMITTED: all nine drills passed' });
    expect(run.code).toBe(0);
    expect(run.paragraph).toMatch(/^Release PERMITTED\. All nine drills passed/);
  }, 1_000_000);

  it('--auto --break idempotency_retry_test fails exactly that drill, on the +2 its break causes: BLOCKED, exit 1', async () => {
    const run = await autoRun(['--break', 'idempotency_retry_test']);
    expect(run.bundle, lastLines(run.history)).toEqual({
      ...allPass(),
      // The break leaves the key out: two rows land for two calls, and the drill says so from the count.
      idempotency_retry_test: expect.stringMatching(/^fail: .*row count delta: \+2$/),
      release_decision: expect.stringMatching(/^BLOCKED: idempotency_retry_test \(Lesson 3, [^;]+\)$/),
    });
    expect(run.code).toBe(1);
    expect(run.paragraph).toMatch(/^Release BLOCKED\. 8 of nine drills passed/);
  }, 1_000_000);
});

/** The transcript's end, for an assertion's message: where the run went wrong. */
function lastLines(history: string, count = 40): string {
  return history.trimEnd().split('\n').slice(-count).join('\n');
}

/** Every drill's bundle value "pass", in the bundle's key order. */
function allPass(): Record<string, string> {
  return Object.fromEntries(bundleKeys.map((key) => [key, 'pass']));
}

/**
 * `--auto --pace 0 --out F` plus these arguments in a terminal, to its end. The bundle is read
 * from F's own text (the JSON object at its top, then the paragraph), not through the code that
 * wrote it; nothing of the console may be left running.
 */
async function autoRun(args: string[]): Promise<{ code: number; bundle: Record<string, string>; paragraph: string; history: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sor-e2e-'));
  const out = path.join(dir, 'bundle.md');
  try {
    terminal = launch({ args: ['--auto', '--pace', '0', ...args, '--out', out], columns: 120, rows: 40 });
    await terminal.waitFor((screen) => /Drill \d|drills, in order|Release/.test(screen), 'the drills', 90_000);
    const pids = terminal.tree();
    expect(terminal.clusters().size).toBe(1);
    const code = await terminal.exitCode(900_000);
    const history = terminal.history();
    expect(existsSync(out), lastLines(history)).toBe(true);
    expect(history).toContain(`bundle saved: ${out}`);
    const text = readFileSync(out, 'utf8');
    const end = text.indexOf('\n}\n');
    expect(end, text.slice(0, 2_000)).toBeGreaterThan(0);
    const bundle = JSON.parse(text.slice(0, end + 2)) as Record<string, string>;
    expect(Object.keys(bundle)).toEqual([...bundleKeys, 'release_decision']);
    const paragraph = text.slice(end + 3).trimStart().split('\n\n')[0] ?? '';
    await expectNothingLeft(new Set([...pids, ...terminal.tree()]), terminal);
    return { code, bundle, paragraph, history };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
