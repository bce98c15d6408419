// A console SIGKILLed with its cluster up leaves a postmaster behind (ppid 1).
// The next start must find it by its owner file, stop it and remove it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../../src/util/wait.js';

const holder = fileURLToPath(new URL('../helpers/hold-cluster.mjs', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a cluster left by a SIGKILLed console', () => {
  it('is stopped and removed by the next start', async () => {
    const console = execa('node', [holder], { reject: false, buffer: false });
    const line = await new Promise<string>((resolve, reject) => {
      let text = '';
      console.stdout?.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(text.split('\n')[0]!);
      });
      console.on('exit', () => reject(new Error(`holder exited early: ${text}`)));
    });
    const { dir, postmaster } = JSON.parse(line) as { dir: string; postmaster: number };
    console.kill('SIGKILL');
    await console;
    expect(alive(postmaster)).toBe(true);
    expect(existsSync(dir)).toBe(true);

    // The next start of the console (any command that starts the embedded target).
    const next = await runCli(['setup']);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/removed \d+ stale cluster/);
    await waitFor('the stale postmaster to exit', () => !alive(postmaster), { timeoutMs: 10_000 });
    expect(existsSync(dir)).toBe(false);
  });
});
