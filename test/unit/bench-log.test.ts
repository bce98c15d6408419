// The bench hook bench/key-latency reads (src/console/bench-log.ts): with SOR_DRILLS_FRAME_LOG
// set, one line per key, frame and poll, each with the wall-clock time and what it names.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { initialState } from '../../src/store.js';
import { waitFor } from '../../src/util/wait.js';

const dir = mkdtempSync(path.join(tmpdir(), 'bench-log-'));
afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the bench log', () => {
  it('writes nothing and opens nothing when SOR_DRILLS_FRAME_LOG is unset', async () => {
    vi.stubEnv('SOR_DRILLS_FRAME_LOG', '');
    const log = await import('../../src/console/bench-log.js');
    expect(log.benchLogging).toBe(false);
    log.benchLine('frame', 'anything');
  });

  it('appends key, frame and poll lines with the time and what the frame shows', async () => {
    const file = path.join(dir, 'frames.log');
    vi.stubEnv('SOR_DRILLS_FRAME_LOG', file);
    const log = await import('../../src/console/bench-log.js');
    const before = performance.timeOrigin + performance.now();
    log.benchLine('key', log.keyName('', { tab: true }));
    log.benchLine('key', log.keyName('?', {}));
    log.benchLine('frame', log.frameView({ ...initialState(), screen: { name: 'drill' }, panel: 'diff', ask: { ask: { kind: 'kill', process: 'worker', prompt: 'kill it' }, performing: false } }));
    log.benchLine('poll', 'queries=1 ms=2.0');
    await waitFor('four lines', () => existsSync(file) && readFileSync(file, 'utf8').split('\n').length === 5, { timeoutMs: 5_000 });
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.map((line) => line.replace(/^(\w+) [\d.]+ /, '$1 '))).toEqual([
      'key tab',
      'key "?"',
      'frame screen=drill panel=diff drill=- phase=- step=- ask=kill quit=- history=0',
      'poll queries=1 ms=2.0',
    ]);
    const at = Number(lines[0]!.split(' ')[1]);
    expect(at).toBeGreaterThanOrEqual(Math.floor(before));
    expect(at).toBeLessThan(before + 5_000);
  });
});
