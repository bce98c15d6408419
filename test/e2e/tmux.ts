// A real pseudo-terminal for end-to-end runs: a detached, sized tmux session
// (CI unset in the child, so Ink draws as it would for a person). Frames are
// read with capture-pane and awaited with a predicate, never a fixed sleep.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { discardHome } from '../../src/postgres/embedded-home.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
/** The built CLI; SOR_DRILLS_E2E_CLI points the tests at another entry (e.g. while the CLI is being wired). */
export const cliPath = process.env.SOR_DRILLS_E2E_CLI ?? fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { encoding: 'utf8' });
}

export function hasTmux(): boolean {
  try {
    tmux('-V');
    return true;
  } catch {
    return false;
  }
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface Terminal {
  name: string;
  /** The visible screen, as text. */
  screen(): string;
  /** Screen and scrollback. */
  history(): string;
  keys(...keys: string[]): void;
  waitFor(predicate: (screen: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** Resolves with the command's exit code once it ended. */
  exitCode(timeoutMs?: number): Promise<number>;
  /** Every process of the command's tree seen so far (pids), for the nothing-left-running check. */
  tree(): Set<number>;
  /** The PostgreSQL clusters this command started that still run (an orphan too, whoever its parent now is). */
  clusters(): Map<number, string>;
  resize(columns: number, rows: number): void;
  /** Ends the session (a hangup for what runs in it). */
  kill(): void;
  /** Ends the session and removes the working directory it made (once nothing runs in it). */
  dispose(): Promise<void>;
}

export interface Launch {
  args: string[];
  columns?: number;
  rows?: number;
  env?: Record<string, string>;
  cwd?: string;
}

const marker = '__SOR_DRILLS_EXIT=';
/**
 * Put in the command's environment, which PostgreSQL inherits from the console: it tells this
 * terminal's clusters from those other test runs on the same machine start meanwhile.
 */
const terminalVariable = 'SOR_E2E_TERMINAL';

/**
 * Removes a working directory the console ran in, with the embedded cluster a capstone kept
 * for it (in .sor-drills/embedded/cluster, or as root under the temp dir, found through the
 * home's pointer): the product's own discard, as `n starts over` does.
 */
export async function removeWorkingDir(dir: string): Promise<void> {
  await discardHome(path.join(dir, '.sor-drills', 'embedded', 'cluster')).catch(() => false);
  rmSync(dir, { recursive: true, force: true });
}

export function launch(options: Launch): Terminal {
  const name = `sor-e2e-${randomBytes(4).toString('hex')}`;
  // A working directory of its own unless the test names one: what the console keeps there (.sor-drills/,
  // .agent-history/) never reaches the checkout, and goes with the terminal.
  const ownCwd = options.cwd === undefined ? mkdtempSync(path.join(tmpdir(), 'sor-e2e-cwd-')) : undefined;
  const cwd = options.cwd ?? ownCwd!;
  const env = Object.entries({ ...options.env, [terminalVariable]: name })
    .map(([key, value]) => `${key}=${shellQuote(value)}`)
    .join(' ');
  // env -u CI: the console mounts Ink only outside CI. The pane stays after the command ends.
  const command = `cd ${shellQuote(cwd)} && env -u CI ${env} node ${shellQuote(cliPath)} ${options.args.map(shellQuote).join(' ')}; echo ${marker}$?; sleep 3600`;
  execFileSync('tmux', ['new-session', '-d', '-s', name, '-x', String(options.columns ?? 120), '-y', String(options.rows ?? 40), command], {
    env: { ...process.env, CI: '' },
  });
  tmux('set-option', '-t', name, 'history-limit', '20000');
  const shellPid = Number(tmux('display-message', '-p', '-t', name, '#{pane_pid}').trim());
  const seen = new Set<number>();
  const record = () => {
    for (const pid of descendants(shellPid)) seen.add(pid);
  };
  const terminal: Terminal = {
    name,
    screen: () => tmux('capture-pane', '-p', '-t', name),
    history: () => tmux('capture-pane', '-p', '-S', '-', '-t', name),
    keys: (...keys) => {
      tmux('send-keys', '-t', name, ...keys);
    },
    async waitFor(predicate, what, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        record();
        const screen = terminal.screen();
        if (predicate(screen)) return screen;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; screen:\n${screen}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async exitCode(timeoutMs = 30_000) {
      const screen = await terminal.waitFor((text) => text.includes(marker), 'the command to end', timeoutMs);
      return Number(new RegExp(`${marker}(\\d+)`).exec(screen)?.[1]);
    },
    tree: () => {
      record();
      seen.delete(shellPid);
      for (const pid of [...seen]) if (isSleep(pid)) seen.delete(pid);
      return new Set(seen);
    },
    clusters: () => clusterPostmasters(`${terminalVariable}=${name}`),
    resize: (columns, rows) => {
      tmux('resize-window', '-t', name, '-x', String(columns), '-y', String(rows));
    },
    kill: () => {
      try {
        tmux('kill-session', '-t', name);
      } catch {
        // already gone
      }
    },
    dispose: async () => {
      terminal.kill();
      if (ownCwd) await removeWorkingDir(ownCwd);
    },
  };
  return terminal;
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function isSleep(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep';
  } catch {
    return false;
  }
}

/** Every live process below pid (children, grandchildren, ...). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child)) continue;
    const parent = parentOf(child);
    if (parent === undefined) continue;
    children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const out: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    out.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie is dead for our purpose.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Postgres processes whose data directory is a throwaway cluster of sor-drills, and whose environment holds `variable` (NAME=value). */
function clusterPostmasters(variable: string): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const index = args.indexOf('-D');
      const dir = index >= 0 ? args[index + 1] : undefined;
      // A throwaway cluster (sor-drills-pg-*) or a capstone's kept one (its home, or sor-drills-home-* as root).
      if (!dir || !/sor-drills-pg-|sor-drills-home-|\.sor-drills\//.test(dir)) continue;
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(variable)) found.set(pid, dir);
    } catch {
      // gone
    }
  }
  return found;
}
