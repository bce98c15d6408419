// The fleet drill in the console, beyond the capstone: offered on the decision
// screen (its key in the footer and the help), asking first on a URL target, its
// progress and verdict drawn from the fleet's own events, and, over a real test
// database, a tiny real fleet (4 Workers, 40 transactions, 2 tenants) run from the
// console, its two files written; quitting mid-run leaves no process behind.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyFleetEvent, consoleFleetOptions } from '../../src/console/fleet.js';
import { fleetFiles, strainedFirstLine } from '../../src/drills/fleet/files.js';
import { bindingById, footerEntries, helpEntries } from '../../src/console/keys.js';
import { maskUrl } from '../../src/postgres/url.js';
import { createWorkerLogin, type WorkerLogin } from '../../src/reconciler/launch.js';
import { getState, resetStore, type ConsoleState, type FleetResult } from '../../src/store.js';
import { shownPath } from '../../src/util/paths.js';
import { createTestDatabase, queryRows, type TestDatabase } from '../helpers/db.js';
import { fakeDeps, startConsole } from './fake-console.js';
import { change, failOnActWarnings, inAct, keys, listState, renderConsole, renderSized, summaries, typed, type Rendered } from './helpers.js';
import type { Target } from '../../src/postgres/target.js';

failOnActWarnings();

const fleetKey = typed(bindingById('fleet').keys);

function decisionState(overrides: Partial<ConsoleState> = {}): void {
  listState(8, {
    screen: { name: 'decision' },
    runFinished: true,
    decisions: [
      {
        kind: 'run',
        decision: 'PERMITTED',
        bundle: [...summaries().map((s): [string, string] => [s.key, 'pass']), ['release_decision', 'PERMITTED: all nine drills passed']],
        passed: 9,
        text: 'Release PERMITTED.',
        cursor: 0,
        editing: false,
        path: 'bundle.md',
        saving: false,
        dirty: false,
        savedPath: '/tmp/bundle.md',
      },
    ],
    fleet: { offered: true, workers: 100, transactions: 10_000, phase: 'idle', lines: [] },
    ...overrides,
  });
}

const finished: FleetResult = {
  held: true,
  passed: true,
  processed: 10_000,
  transactions: 10_000,
  duplicates: 0,
  lost: 0,
  lock_errors: 0,
  throughput_tps: 312.4,
  p50_ms: 11.2,
  p99_ms: 84.5,
  backends_peak: 18,
  strained: 'Strained first: connections (41% of samples).',
  problems: [],
  json: 'evidence/fleet-20261201t183012.json',
  report: 'evidence/fleet-20261201t183012.md',
};

describe('the fleet as the console runs it', () => {
  it('runs the CLI defaults unless shrunk, and writes where the CLI writes', () => {
    expect(consoleFleetOptions()).toMatchObject({ workers: 100, transactions: 10_000, tenants: 10, hosts: 10, kill: 0, skipLocked: true, claimWithoutLock: false });
    expect(consoleFleetOptions({ workers: 4, transactions: 40, tenants: 2 })).toMatchObject({ workers: 4, transactions: 40, tenants: 2, hosts: 1 });
    expect(fleetFiles('fleet-x', { dir: '/tmp/e' })).toEqual({ json: '/tmp/e/fleet-x.json', report: '/tmp/e/fleet-x.md', logDir: '/tmp/e/fleet-x/processes' });
    expect(fleetFiles('fleet-x')).toEqual({
      json: path.resolve('evidence/fleet-x.json'),
      report: path.resolve('evidence/fleet-x.md'),
      logDir: path.resolve('evidence/fleet-x/processes'),
    });
    expect(fleetFiles('fleet-x', { out: '/tmp/o/figures.JSON' }).report).toBe('/tmp/o/figures.md');
  });

  it("reads the report's strained-first line", () => {
    const report = ['## What strained', 'no', '## What strained first', '', 'Ranked by...', '1. connections: ...', 'Strained first: **connections** (41% of samples).', ''].join('\n');
    expect(strainedFirstLine(report)).toBe('Strained first: connections (41% of samples).');
    expect(strainedFirstLine('# no such section')).toBeUndefined();
  });
});

describe('the offer and the fleet screen (store states)', () => {
  it('offers the fleet on the decision screen, its key in the footer there and in the help, nowhere else', async () => {
    decisionState();
    const ui = await renderConsole();
    const frame = await ui.waitFor((text) => text.includes('Release PERMITTED'), 'the decision');
    expect(frame).toContain('Beyond the capstone: f runs the fleet drill: 100 Workers over 10,000 transactions on this target');
    expect(frame).toContain('f fleet drill');
    expect(footerEntries(getState()).map((entry) => entry.keys)).toContain('f');
    expect(helpEntries().find((group) => group.group === 'decision')!.entries.some((entry) => entry.keys === 'f' && entry.text.includes('fleet drill'))).toBe(true);
    // Not on the drill list, nor before it is offered.
    await change({ screen: { name: 'list' } });
    expect(footerEntries(getState()).map((entry) => entry.keys)).not.toContain('f');
    await change((state) => ({ screen: { name: 'decision' }, fleet: { ...state.fleet, offered: false } }));
    await ui.waitFor((text) => text.includes('Release PERMITTED') && !text.includes('Beyond the capstone'), 'no offer');
    expect(footerEntries(getState()).map((entry) => entry.keys)).not.toContain('f');
    await ui.close();
  });

  it('draws the progress and the phase lines from the FleetEvents, then the finished summary', async () => {
    decisionState({ screen: { name: 'fleet' } });
    await change((state) => ({ fleet: { ...state.fleet, phase: 'running' } }));
    const ui = await renderConsole();
    await ui.waitFor((text) => text.includes('processed 0 / 10,000 · starting'), 'the run starting');
    // Esc does not leave a running fleet; the footer offers quit and help only.
    expect(footerEntries(getState()).map((entry) => entry.keys)).toEqual(['?', 'q']);
    await inAct(() => {
      applyFleetEvent({ type: 'phase', message: 'seeding 10000 pending transactions over 10 tenants (fleet-x)' });
      applyFleetEvent({ type: 'phase', message: 'starting 100 Workers in 10 processes' });
      applyFleetEvent({ type: 'progress', processed: 2_500, claimed: 37, total: 10_000, tpsNow: 301.6, elapsedMs: 8_420, kills: 1 });
      applyFleetEvent({ type: 'kill', host: 'fleet-x-host03', pid: 4242, processed: 2_400 });
      applyFleetEvent({ type: 'restart', host: 'fleet-x-host03', pid: 4343 });
    });
    const running = await ui.waitFor((text) => text.includes('processed 2,500 / 10,000'), 'the progress');
    expect(running).toContain('25%');
    expect(running).toContain('claimed 37 · 302 tx/s now · elapsed 8.4 s · kills 1');
    expect(running).toContain('seeding 10000 pending transactions over 10 tenants (fleet-x)');
    expect(running).toContain('SIGKILL fleet-x-host03 (pid 4242) at 2400 processed');
    expect(running).toContain('started fleet-x-host03 again (pid 4343): its Workers resume from the journal');
    // q while it runs asks first, as while a drill runs.
    await ui.press('q');
    await ui.waitFor((text) => text.includes('The fleet drill is running: quit, stopping it and its Workers? (y/n)'), 'the question');
    await ui.press('n');
    await ui.waitFor((text) => !text.includes('quit, stopping it'), 'the question gone');
    expect(ui.controller.quitting).toBe(false);

    await change((state) => ({ fleet: { ...state.fleet, phase: 'done', result: finished } }));
    const done = await ui.waitFor((text) => text.includes('History held'), 'the verdict');
    expect(done).toContain('✓ History held: 10,000 / 10,000 processed · 0 duplicates · 0 lost · 0 lock errors');
    expect(done).toContain('Throughput 312.4 tx/s · claim p50 11.2 ms, p99 84.5 ms · backends peak 18');
    expect(done).toContain('Strained first: connections (41% of samples).');
    expect(done).toContain('figures evidence/fleet-20261201t183012.json');
    expect(done).toContain('report  evidence/fleet-20261201t183012.md');
    await ui.press(keys.escape);
    const back = await ui.waitFor((text) => text.includes('Release PERMITTED'), 'back to the decision');
    expect(back).toContain('Last fleet run: history held · report in evidence/fleet-20261201t183012.md');
    await ui.close();
  });

  it('fits 80x24 while running and when done, a failed history naming its problems', async () => {
    decisionState({ screen: { name: 'fleet' }, terminal: { columns: 80, rows: 24 } });
    await change((state) => ({
      fleet: {
        ...state.fleet,
        phase: 'running',
        lines: Array.from({ length: 12 }, (_, i) => `phase line ${i} ${'word '.repeat(30)}`),
        progress: { processed: 10, claimed: 2, total: 10_000, tpsNow: 3, elapsedMs: 100, kills: 0 },
      },
    }));
    for (const fleet of [
      getState().fleet,
      { ...getState().fleet, phase: 'done' as const, result: { ...finished, held: false, passed: false, duplicates: 3, problems: ['fleet-x-host01 exited with code 1 (its log: x)', 'no transaction processed for 60 s'] } },
    ]) {
      await change({ fleet, history: [] });
      const ui = await renderSized(80, 24);
      const lines = ui.frame().replace(/\n$/, '').split('\n');
      expect(lines.length, ui.frame()).toBeLessThan(24);
      if (fleet.phase === 'done') {
        expect(ui.frame()).toContain('✗ History DID NOT hold');
        expect(ui.frame()).toContain('✗ fleet-x-host01 exited with code 1');
      }
      await ui.close();
    }
    // The decision screen with the offer, the mastery gate and the last run's line.
    await change((state) => ({
      screen: { name: 'decision' },
      mastery: { offered: true, selected: 2, running: false },
      fleet: { ...state.fleet, phase: 'done', result: finished },
      decisions: state.decisions.map((draft) => ({ ...draft, text: 'word '.repeat(400) })),
      history: [],
    }));
    const ui = await renderSized(80, 24);
    expect(ui.frame().replace(/\n$/, '').split('\n').length, ui.frame()).toBeLessThan(24);
    expect(ui.frame()).toContain('Last fleet run: history held');
    await ui.close();
  });
});

// A real fleet from the console: the fake drills walk to the decision over a target whose URL is this
// file's test database (the fake target's kind decides whether the console asks first).
let db: TestDatabase;
let login: WorkerLogin;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  login = await createWorkerLogin(db.url);
  dir = mkdtempSync(path.join(tmpdir(), 'sor-console-fleet-'));
});

afterAll(async () => {
  try {
    await login?.drop();
    await db?.dispose();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

const tiny = { workers: 4, transactions: 40, tenants: 2 };

async function consoleOn(kind: Target['kind'], size: typeof tiny = tiny): Promise<Rendered> {
  const fakes = fakeDeps([], { kind });
  const resolveTarget = fakes.resolveTarget;
  const display = maskUrl(db.url);
  const ui = await startConsole(
    { breaks: [], yes: true, fleet: { options: size, dir, workerUrl: async () => login.url } },
    {
      ...fakes,
      resolveTarget: async (options) => ({ ...(await resolveTarget(options)), url: db.url, display }),
    },
  );
  await ui.waitFor((text) => text.includes('Nine drills, in order'), 'the list');
  for (let index = 0; index < 9; index += 1) {
    if (index === 0) await ui.press(keys.enter);
    await ui.waitFor((text) => text.includes('enter run step 1'), `drill ${index + 1} shown`);
    await ui.press(typed(bindingById('run-rest').keys));
    if (index === 1) {
      await ui.waitFor((text) => text.includes('kill it (SIGKILL)'), 'the kill ask');
      await ui.press('k');
    }
    await ui.waitFor((text) => text.includes('✓ PASS'), `drill ${index + 1} verdict`);
    await ui.press(keys.enter);
  }
  await ui.waitFor((text) => text.includes('Release PERMITTED'), 'the decision', 10_000);
  return ui;
}

const fleetTenants = () => queryRows<{ id: string }>(db.url, `select id from tenants where id like 'fleet-%' order by id`);

/** Processes whose parent is this test process (the fleet's tool servers and Worker hosts while they run). */
function children(): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe('a real fleet run from the console', () => {
  it('on a URL target, f asks first: n writes nothing; y runs it, shows its progress and verdict, and writes the two files', async () => {
    resetStore({ terminal: { columns: 100, rows: 40 } });
    const ui = await consoleOn('url');
    expect(ui.frame()).toContain('Beyond the capstone: f runs the fleet drill: 4 Workers over 40 transactions on this target');
    await ui.press(fleetKey);
    const asked = await ui.waitFor((text) => text.includes('y write them and run the fleet drill in it'), 'the consent question');
    expect(asked).toContain('The fleet drill writes into');
    expect(asked.replace(/\s+/g, ' ')).toContain('40 pending transactions over 2 tenants of its own');
    expect(getState().fleet.phase).toBe('consent');
    await ui.press('n');
    await ui.waitFor((text) => text.includes('Release PERMITTED'), 'back to the decision');
    expect(await fleetTenants()).toEqual([]);

    await ui.press(fleetKey);
    await ui.waitFor((text) => text.includes('y write them and run'), 'asked again');
    // Every progress the store saw (the run is short: the frames could skip one).
    const seen: number[] = [];
    const unsubscribe = (await import('../../src/store.js')).store.subscribe((state) => {
      if (state.fleet.progress && seen.at(-1) !== state.fleet.progress.processed) seen.push(state.fleet.progress.processed);
    });
    await ui.press('y');
    await ui.waitFor((text) => text.includes('processed') && text.includes('/ 40'), 'the live progress', 60_000);
    const done = await ui.waitFor((text) => text.includes('History held'), 'the verdict', 120_000);
    unsubscribe();
    expect(seen.length).toBeGreaterThan(0);
    expect(done).toContain('✓ History held: 40 / 40 processed · 0 duplicates · 0 lost · 0 lock errors');
    expect(done).toMatch(/Throughput [\d.]+ tx\/s · claim p50 [\d.]+ ms, p99 [\d.]+ ms · backends peak \d+/);
    expect(done).toMatch(/Strained first: |Nothing crossed its line/);
    expect(getState().fleet.lines.some((line) => line.startsWith('seeding 40 pending transactions over 2 tenants'))).toBe(true);

    const result = getState().fleet.result!;
    expect(result).toMatchObject({ held: true, passed: true, processed: 40, transactions: 40, duplicates: 0, lost: 0, lock_errors: 0 });
    expect(path.dirname(path.resolve(result.json))).toBe(dir);
    expect(result.json).toBe(shownPath(path.resolve(result.json)));
    expect(done).toContain(`figures ${result.json}`);
    expect(done).toContain(`report  ${result.report}`);
    const json = JSON.parse(readFileSync(result.json, 'utf8')) as Record<string, unknown>;
    expect(json).toMatchObject({ workers: 4, transactions: 40, processed: 40, duplicates: 0, ok: true });
    const report = readFileSync(result.report, 'utf8');
    expect(report).toContain('# Fleet drill: 4 Workers over 40 transactions: PASS');
    expect(report).not.toContain(new URL(db.url).password);
    expect(getState().history.some((line) => line.text.includes('fleet drill (4 Workers, 40 transactions): history held'))).toBe(true);
    expect((await fleetTenants()).length).toBe(2);

    await ui.press(keys.escape);
    await ui.waitFor((text) => text.includes('Last fleet run: history held'), 'the decision with the last run');
    await ui.press(keys.ctrlC);
    await expect(ui.controller.quit).resolves.toBe(130);
    await inAct(() => ui.controller.settled());
    await ui.close();
  }, 240_000);

  it('a fleet that cannot run says why on its screen, and esc goes back to the decision', async () => {
    resetStore({ terminal: { columns: 100, rows: 40 } });
    const ui = await consoleOn('embedded', { workers: 2, transactions: 40, tenants: 4 });
    const tenantsBefore = await fleetTenants();
    await ui.press(fleetKey);
    await ui.waitFor((text) => text.includes('✗ The fleet drill could not run:') && text.includes('--tenants must not exceed --workers'), 'the failure');
    expect(await fleetTenants()).toEqual(tenantsBefore);
    await ui.press(keys.escape);
    await ui.waitFor((text) => text.includes('Release PERMITTED'), 'back to the decision');
    expect(ui.controller.quitting).toBe(false);
    await ui.press(keys.ctrlC);
    await expect(ui.controller.quit).resolves.toBe(130);
    await ui.close();
  }, 60_000);

  it('on the embedded cluster f runs at once; ctrl+c mid-run quits, stopping every process the fleet started', async () => {
    resetStore({ terminal: { columns: 100, rows: 40 } });
    const before = new Set(children());
    // Far more work than the run gets time for: quitting must stop it, not wait for it.
    const ui = await consoleOn('embedded', { workers: 4, transactions: 4_000, tenants: 2 });
    await ui.press(fleetKey);
    expect(getState().fleet.phase).toBe('running');
    await ui.waitFor(() => getState().fleet.progress !== undefined, 'the fleet at work', 60_000);
    expect(children().filter((pid) => !before.has(pid)).length).toBeGreaterThan(0);
    const quitAt = Date.now();
    await ui.press(keys.ctrlC);
    await expect(ui.controller.quit).resolves.toBe(130);
    await inAct(() => ui.controller.settled());
    expect(Date.now() - quitAt).toBeLessThan(15_000);
    expect(children().filter((pid) => !before.has(pid))).toEqual([]);
    const [left] = await queryRows<{ pending: number }>(
      db.url,
      `select count(*)::int as pending from pending_transactions where tenant_id like 'fleet-%' and status <> 'processed'`,
    );
    expect(left!.pending).toBeGreaterThan(0);
    await ui.close();
  }, 240_000);
});
