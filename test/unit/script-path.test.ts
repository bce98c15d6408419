// The child scripts the drills start: the bundle `npm run build` makes, unless a later
// bare tsc made it stale, and then the freshly compiled script.
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickScript, scriptPath } from '../../src/reconciler/launch.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sor-drills-script-path-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(bundleAt: number | undefined, compiledAt: number): Promise<{ bundle: string; compiled: string }> {
  const bundle = path.join(dir, `bundle-${bundleAt}-${compiledAt}.js`);
  const compiled = path.join(dir, `compiled-${bundleAt}-${compiledAt}.js`);
  await writeFile(compiled, '');
  await utimes(compiled, compiledAt, compiledAt);
  if (bundleAt !== undefined) {
    await writeFile(bundle, '');
    await utimes(bundle, bundleAt, bundleAt);
  }
  return { bundle, compiled };
}

describe('pickScript', () => {
  it('runs the bundle when it was made after the compiled script, or in the same instant', async () => {
    const later = await files(2_000_000, 1_000_000);
    expect(pickScript(later.bundle, later.compiled)).toBe(later.bundle);
    const same = await files(1_000_000, 1_000_000);
    expect(pickScript(same.bundle, same.compiled)).toBe(same.bundle);
  });

  it('runs the compiled script when the bundle is older (a bare tsc ran since) or missing', async () => {
    const stale = await files(1_000_000, 2_000_000);
    expect(pickScript(stale.bundle, stale.compiled)).toBe(stale.compiled);
    const none = await files(undefined, 1_000_000);
    expect(pickScript(none.bundle, none.compiled)).toBe(none.compiled);
  });
});

describe('the built scripts', () => {
  it('are the bundles after npm run build, and each runs on its own (no module left outside it)', () => {
    for (const script of ['worker', 'relay', 'tool-server', 'fleet-worker'] as const) {
      const file = scriptPath(script);
      expect(file.split(path.sep).slice(-2)).toEqual(['bundle', `${script}.js`]);
      // Started with no settings, each says what it misses in one line and exits: its imports all resolved.
      const result = spawnSync(process.execPath, [file], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' }, timeout: 20_000 });
      expect(result.stderr).toMatch(/is not set \(this script is started by the sor-drills supervisor\)/);
      expect(result.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Dynamic require|Cannot find/);
    }
  });
});
