// The supervisor with real processes: explicit environments (nothing inherited),
// a kill that takes the whole process group, states and exit codes, restart,
// waiting on lines, log files, and stopAll leaving no process alive.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, Supervisor, type ProcessInfo } from '../../src/reconciler/supervisor.js';
import { waitFor } from '../../src/util/wait.js';

let logDir: string;
let sup: Supervisor;

const node = (name: string, script: string, env: Record<string, string> = {}) =>
  sup.start({ name, args: ['-e', script], env: { PATH: process.env.PATH ?? '', ...env } });

/** Prints its own pid and a grandchild's, then waits forever. */
const parentWithChild = `
  const { spawn } = require('node:child_process');
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  console.log(JSON.stringify({ event: 'pids', parent: process.pid, child: child.pid }));
  setInterval(() => {}, 1000);
`;

beforeAll(async () => {
  logDir = await mkdtemp(path.join(tmpdir(), 'sor-reconciler-supervisor-'));
  sup = new Supervisor({ logDir, stopDeadlineMs: 500 });
});

afterAll(async () => {
  await sup?.close();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

describe('Supervisor', () => {
  it('gives a child exactly the environment it is handed, whatever the console holds', async () => {
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = 'postgres://console:secret@127.0.0.1:1/db';
    try {
      await node('env', `console.log(JSON.stringify({ event: 'env', keys: Object.keys(process.env).sort() }))`, { SOR_X: '1' });
      const line = await sup.waitForEvent('env', 'env', { timeoutMs: 5_000 });
      expect(line.keys).toEqual(['PATH', 'SOR_X']);
      expect((await sup.waitForExit('env')).exitCode).toBe(0);
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
    }
  });

  it('SIGKILLs the whole process group: the grandchild dies with its parent', async () => {
    const states: string[] = [];
    const onProcess = (info: ProcessInfo) => info.name === 'group' && states.push(info.state);
    sup.on('process', onProcess);
    await node('group', parentWithChild);
    const pids = await sup.waitForEvent('group', 'pids', { timeoutMs: 5_000 });
    expect(isAlive(Number(pids.child))).toBe(true);
    const info = await sup.kill('group');
    sup.off('process', onProcess);
    expect(info).toMatchObject({ state: 'killed', signal: 'SIGKILL', exitCode: undefined });
    expect(states).toEqual(['starting', 'running', 'killed']);
    await waitFor('the grandchild to die', () => !isAlive(Number(pids.child)), { timeoutMs: 5_000 });
  });

  it('reports an exit code, rejects a wait for a line that never comes, and restarts with the same spec', async () => {
    await node('exits', `console.log('hello'); console.error('oops'); process.exit(3)`);
    await expect(sup.waitForLine('exits', (line) => line === 'never', { timeoutMs: 5_000 })).rejects.toThrow(/exited with code 3/);
    const first = sup.get('exits')!;
    expect(first).toMatchObject({ state: 'exited', exitCode: 3, starts: 1 });
    expect(first.recentLines).toEqual(expect.arrayContaining(['hello', 'oops']));

    const again = await sup.restart('exits');
    expect(again.starts).toBe(2);
    expect(again.pid).not.toBe(first.pid);
    await sup.waitForExit('exits');
    const log = await readFile(first.logFile, 'utf8');
    expect(log.match(/start #\d/g)).toEqual(['start #1', 'start #2']);
    expect(log).toContain('[stderr] oops');
    expect(log).toContain('exited with code 3');
  });

  it('times out a wait with the last lines, and masks URL passwords in lines', async () => {
    await node('quiet', `console.log('postgres://u:hunter2@h/db'); setInterval(() => {}, 1000)`);
    // The line must be there before the short wait starts: a Node start under load can take longer than 300 ms.
    await sup.waitForLine('quiet', (line) => line.startsWith('postgres://'), { timeoutMs: 10_000 });
    await expect(sup.waitForLine('quiet', (line) => line === 'never', { timeoutMs: 300 })).rejects.toThrow(/timed out.*postgres:\/\/u:\*\*\*@h\/db/);
    await sup.kill('quiet');
  });

  it('stopAll stops everything, SIGKILLing what ignores SIGTERM: no started pid is alive', async () => {
    await node('stubborn', `process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)`);
    await sup.waitForLine('stubborn', (line) => line === 'ready', { timeoutMs: 5_000 });
    await node('group2', parentWithChild);
    const pids = await sup.waitForEvent('group2', 'pids', { timeoutMs: 5_000 });
    await node('polite', `setInterval(() => {}, 1000)`);
    await sup.stopAll();
    expect(sup.get('stubborn')).toMatchObject({ state: 'killed', signal: 'SIGKILL' });
    expect(sup.get('polite')).toMatchObject({ state: 'killed', signal: 'SIGTERM' });
    const started = [...sup.startedPids(), Number(pids.child)];
    await waitFor('every started process to be gone', () => started.every((pid) => !isAlive(pid)), { timeoutMs: 5_000 });
  });

  // A console (the compiled supervisor and lifecycle, as the CLI uses them) with one
  // supervised child, ended each way a console can end: the child must not outlive it.
  const consoleScript = (dist: string) => `
    import { Supervisor } from ${JSON.stringify(pathToFileURL(path.join(dist, 'reconciler/supervisor.js')).href)};
    import { exitWith, installExitHandlers } from ${JSON.stringify(pathToFileURL(path.join(dist, 'util/lifecycle.js')).href)};
    installExitHandlers(() => {});
    const sup = new Supervisor({ logDir: process.env.LOG_DIR });
    await sup.start({ name: 'child', args: ['-e', 'setInterval(() => {}, 1000)'], env: { PATH: process.env.PATH } });
    console.log(JSON.stringify({ event: 'child', pid: sup.get('child').pid }));
    const how = process.argv[2];
    // It ends only once the test has seen its child alive (the test writes the go file): else a
    // loaded machine reads the child's pid after the console already ended and took it along.
    const { existsSync } = await import('node:fs');
    const go = process.env.LOG_DIR + '.go';
    const end = () => {
      if (how === 'throw') throw new Error('boom');
      else if (how === 'bare-exit') process.exit(0);
      else if (how === 'normal') exitWith(0);
    };
    const poll = setInterval(() => {
      if (how !== 'wait' && existsSync(go)) {
        clearInterval(poll);
        end();
      }
    }, 5);
  `;

  it.each([
    ['normal', undefined, 0],
    ['throw', undefined, 70],
    ['bare-exit', undefined, 0],
    ['wait', 'SIGTERM', 143],
    ['wait', 'SIGINT', 130],
  ] as const)('stops its children when the console ends: %s %s', async (how, signal, code) => {
    const dist = fileURLToPath(new URL('../../dist', import.meta.url));
    const script = path.join(logDir, 'console.mjs');
    await writeFile(script, consoleScript(dist));
    const name = `console-${how}-${signal ?? 'none'}`;
    await sup.start({ name, args: [script, how], env: { PATH: process.env.PATH ?? '', LOG_DIR: path.join(logDir, name) } });
    const child = Number((await sup.waitForEvent(name, 'child', { timeoutMs: 10_000 })).pid);
    expect(isAlive(child)).toBe(true);
    await writeFile(`${path.join(logDir, name)}.go`, '');
    if (signal) await sup.kill(name, signal);
    const ended = await sup.waitForExit(name);
    expect(ended.exitCode).toBe(code);
    await waitFor('the console\'s child to be gone', () => !isAlive(child), { timeoutMs: 5_000 });
  });

  it('refuses to start a second process under a running name', async () => {
    await node('single', `setInterval(() => {}, 1000)`);
    await expect(node('single', `0`)).rejects.toThrow(/already running/);
    await sup.kill('single');
  });
});
