// The console as a class and a learner meet it, in a real pseudo-terminal (tmux), on the
// embedded PostgreSQL: drill 1 one step at a time with the proposal's DDL and each step's
// SQL on screen before it runs, a hint, the crash drill's queries in the scrollback, and a
// learner who quits after drill 2 resuming there; then the race drill's names agreeing
// between its evidence line, the process panel and the diff it wrote.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { alive, hasTmux, launch, removeWorkingDir, type Terminal } from './tmux.js';

if (!hasTmux()) throw new Error('the end-to-end tests need tmux (apt-get install tmux; .ci/run installs it)');

let terminal: Terminal | undefined;
let cwd: string | undefined;
afterEach(async () => {
  await terminal?.dispose();
  terminal = undefined;
  if (cwd) await removeWorkingDir(cwd);
  cwd = undefined;
});

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

const list = (screen: string) => /drills, in order ·/.test(screen) && screen.includes('forensics_drill') && /q quit/.test(screen);

describe('the console that teaches', () => {
  it('drill 1 one step at a time, the crash SQL in the scrollback, quit after drill 2, resume, and the race names agree', async () => {
    cwd = mkdtempSync(path.join(tmpdir(), 'sor-teach-'));
    terminal = launch({ args: [], columns: 80, rows: 24, cwd });
    await terminal.waitFor(list, 'the drill list', 90_000);
    terminal.keys('Enter');
    // Drill 1 open: the proposal's DDL and step 1 on screen, and step 1 not run.
    const opened = await terminal.waitFor((screen) => /add column notes/i.test(screen) && screen.includes('not run yet'), 'drill 1, step 1 shown');
    expect(opened).toContain('Step 1 of 7 · Read the proposed migration without running it');
    expect(opened).toMatch(/down\s+alter table expenses drop column notes/);
    expect(terminal.history()).not.toContain('✓ 1. Read the proposed migration');

    terminal.keys('h');
    const hint = await terminal.waitFor((screen) => screen.includes('What to look for'), 'the hint');
    expect(hint).toContain('The mistake people make here');
    terminal.keys('Escape');
    await terminal.waitFor((screen) => !screen.includes('What to look for') && screen.includes('not run yet'), 'the hint closed');

    terminal.keys('Enter');
    const second = await terminal.waitFor((screen) => screen.includes('Step 2 of 7') && screen.includes('not run yet'), 'step 2 waits', 30_000);
    expect(second).toContain('Check the drop guard');
    expect(terminal.history()).toContain('✓ 1. Read the proposed migration without running it');
    expect(terminal.history()).not.toContain('✓ 2. Check the drop guard');
    terminal.keys('a');
    await terminal.waitFor((screen) => screen.includes('✓ PASS'), 'drill 1 run through', 60_000);
    expect(terminal.history()).toContain('✓ 7. Drop branch cap-migration-1');

    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('Step 1 of 7') && screen.includes('Drill 2/9'), 'drill 2 shown');
    terminal.keys('a');
    await terminal.waitFor((screen) => screen.includes('press k'), 'the kill ask', 60_000);
    terminal.keys('k');
    await terminal.waitFor((screen) => screen.includes('press r'), 'the restart ask', 60_000);
    terminal.keys('r');
    await terminal.waitFor((screen) => screen.includes('✓ PASS'), 'drill 2 passed', 90_000);
    // The crash signature's query, with the run's id as a value, scrolled into the transcript.
    const history = terminal.history().replace(/\n/g, ' ');
    expect(history).toMatch(/SQL select "status" as status, "finished_at"::text as finished_at from\s+runs where "id" = '[0-9a-f-]{36}'/);
    expect(history).toContain('crash_signature: status=running, finished_at=null');
    const firstPids = terminal.tree();
    terminal.keys('q');
    expect(await terminal.exitCode(60_000)).toBe(130);
    expect(terminal.screen()).toContain('its data is kept in .sor-drills/ for the unfinished capstone');
    await expectNothingLeft(firstPids, terminal);
    terminal.kill();

    // The learner comes back: the capstone resumes with drills 1 and 2 still passed.
    terminal = launch({ args: [], columns: 160, rows: 50, cwd });
    await terminal.waitFor((screen) => screen.includes('Resume capstone (2 of 9 done)? enter resumes · n starts over'), 'the resume prompt', 30_000);
    terminal.keys('Enter');
    const resumed = await terminal.waitFor(list, 'the list, resumed', 90_000);
    expect(resumed).toMatch(/1 ✓ migration_review .* pass/);
    expect(resumed).toMatch(/2 ✓ run_journal_resume_drill .* pass/);
    expect(resumed).toContain('enter open drill 3');

    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('Step 1 of') && screen.includes('Drill 3/9'), 'drill 3 from its first step');
    terminal.keys('a');
    await terminal.waitFor((screen) => screen.includes('✓ PASS'), 'drill 3 passed', 60_000);
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('Step 1 of') && screen.includes('Drill 4/9'), 'drill 4 shown');
    terminal.keys('a');
    const ask = await terminal.waitFor((screen) => /press enter\s+Start Workers A and B/.test(screen), 'the start ask', 60_000);
    expect(ask).toContain('A first, B while A holds its row');
    terminal.keys('Enter');
    const verdict = await terminal.waitFor((screen) => /✓ PASS|✗ FAIL|\? COULD NOT/.test(screen), 'the race verdict', 90_000);
    // The process panel names the two Workers as the evidence does.
    let panel = terminal.screen();
    for (let tries = 0; tries < 4 && !/worker-a\s+\d+/.test(panel); tries += 1) {
      terminal.keys('Tab');
      panel = await terminal.waitFor((screen) => screen !== panel, 'the next panel');
    }
    expect(panel).toMatch(/worker-a\s+\d+/);
    expect(panel).toMatch(/worker-b\s+\d+/);
    const evidence = /Worker A claimed pending_transaction (T-\d+)\. Worker B skipped \1 and claimed (T-\d+)\./.exec(verdict.replace(/\s+/g, ' '));
    expect(evidence, verdict).not.toBeNull();
    const [, first, next] = evidence!;
    // The diff the drill wrote shows each claimed row by its natural key, claimed by the Worker the evidence names.
    const root = path.join(cwd, '.agent-history', 'oracle', 'concurrency_claim_test');
    const [folder] = readdirSync(root).sort().reverse();
    const diff = readFileSync(path.join(root, folder!, 'diff.txt'), 'utf8');
    expect(claimedBy(diff, first!)).toMatch(/^worker-a/);
    expect(claimedBy(diff, next!)).toMatch(/^worker-b/);

    // The rest of the capstone, each drill run through with a; then p packs it for handing in.
    for (const number of [5, 6, 7, 8, 9]) {
      terminal.keys('Enter');
      await terminal.waitFor((screen) => screen.includes('Step 1 of') && screen.includes(`Drill ${number}/9`), `drill ${number} shown`, 30_000);
      terminal.keys('a');
      await throughDrill(terminal, number);
    }
    terminal.keys('Enter');
    await terminal.waitFor((screen) => screen.includes('Release PERMITTED'), 'the decision', 30_000);
    terminal.keys('p');
    const packed = await terminal.waitFor((screen) => /packed \d+ files into \S+\.tar\.gz/.test(screen), 'the archive', 60_000);
    const archive = /packed \d+ files into (\S+\.tar\.gz)/.exec(packed)![1]!;
    const verified = await runCli(['verify', archive], { cwd });
    expect(verified.exitCode, verified.stdout).toBe(0);
    // The resumed drills' evidence is in it too: drill 1 ran in the first session.
    expect(verified.stdout).toMatch(/^ {2}1\. migration_review: pass: /m);
    // Finished: the capstone's state and its kept cluster go.
    const pids = terminal.tree();
    terminal.keys('q');
    expect(await terminal.exitCode(60_000)).toBe(0);
    await expectNothingLeft(pids, terminal);
    expect(existsSync(path.join(cwd, '.sor-drills', 'embedded'))).toBe(false);
  }, 600_000);
});

/** Answers what the drill asks (k, r, enter) until its verdict is on screen; it must pass. */
async function throughDrill(terminal: Terminal, number: number): Promise<void> {
  const answered = new Set<string>();
  const screen = await terminal.waitFor(
    (text) => {
      const ask = /press (k|r|enter) {2}(.+)/.exec(text);
      if (ask && !answered.has(ask[0])) {
        answered.add(ask[0]);
        terminal.keys(ask[1] === 'enter' ? 'Enter' : ask[1]!);
      }
      return /✓ PASS|✗ FAIL|\? COULD NOT/.test(text) && text.includes(`Drill ${number}/9`);
    },
    `drill ${number}'s verdict`,
    120_000,
  );
  expect(screen, `drill ${number}`).toContain('✓ PASS');
}

/** The claimed_by the diff's after-side gives the row with this id (its `+` lines up to the next row). */
function claimedBy(diff: string, id: string): string | undefined {
  const lines = diff.split('\n');
  const at = lines.findIndex((line) => line.startsWith('+') && line.includes(`"id":"${id}"`));
  const row = at >= 0 ? lines[at]! : lines.find((line) => line.includes(`"id":"${id}"`));
  const inline = row ? /"claimed_by":"([^"]+)"/.exec(row)?.[1] : undefined;
  if (inline) return inline;
  for (const line of lines.slice(Math.max(0, at))) {
    const found = /^\+.*"claimed_by":\s*"([^"]+)"/.exec(line)?.[1];
    if (found) return found;
  }
  return undefined;
}
