// The capstone's saved state: where it lives per target (and that no password ever
// reaches a path or the file), a round trip, an invalid file ignored with its reason,
// the atomic write, the permissions, and removal that leaves what it did not make.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  capstoneClusterHome,
  capstoneDir,
  doneCount,
  loadCapstone,
  removeCapstone,
  saveCapstone,
  withResult,
  type CapstoneState,
} from '../../src/console/capstone.js';
import type { BundleKey, DrillResult } from '../../src/drills/types.js';
import { scratchDir } from '../helpers/scratch.js';

function result(key: BundleKey, verdict: DrillResult['verdict'] = 'pass'): DrillResult {
  return {
    key,
    verdict,
    evidence: `${key}: observed 1 row`,
    ...(verdict === 'pass' ? {} : { reason: 'the unique key is missing' }),
    evidenceDirs: [`.agent-history/oracle/${key}/2025-01-01T00-00-00Z`],
    broken: false,
    notes: [],
    durationMs: 1234,
  };
}

function state(results: DrillResult[] = [result('migration_review'), result('run_journal_resume_drill', 'fail')]): CapstoneState {
  return {
    version: 1,
    target: 'postgres://learner:***@db.example.com:5433/capstone',
    profile: 'examples/their-reconciler/profile.json',
    startedAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:10:00.000Z',
    breaks: ['idempotency_retry_test'],
    results,
  };
}

describe('capstoneDir', () => {
  const cwd = '/home/learner/course';
  const url = { kind: 'url' as const, display: 'postgres://learner:***@db.example.com:5433/capstone?sslmode=require' };

  it('is .sor-drills/embedded for the embedded target, whatever its port', () => {
    expect(capstoneDir(cwd, { kind: 'embedded', display: 'postgres://postgres:***@127.0.0.1:40001/sor_drills' })).toBe(
      '/home/learner/course/.sor-drills/embedded',
    );
    expect(capstoneDir(cwd, { kind: 'embedded', display: 'postgres://postgres:***@127.0.0.1:40002/sor_drills' })).toBe(
      '/home/learner/course/.sor-drills/embedded',
    );
  });

  it('gives the embedded target under a profile a hash of the profile', () => {
    const dir = capstoneDir(cwd, { kind: 'embedded', display: 'x' }, 'profile.json');
    expect(path.basename(dir)).toMatch(/^embedded-[0-9a-f]{8}$/);
    expect(capstoneDir(cwd, { kind: 'embedded', display: 'y' }, 'profile.json')).toBe(dir);
    expect(capstoneDir(cwd, { kind: 'embedded', display: 'x' }, 'other.json')).not.toBe(dir);
  });

  it('names a URL target host-port-database plus 8 hex of the masked URL and the profile', () => {
    const dir = capstoneDir(cwd, url);
    expect(path.dirname(dir)).toBe('/home/learner/course/.sor-drills');
    expect(path.basename(dir)).toMatch(/^db.example.com-5433-capstone-[0-9a-f]{8}$/);
    expect(capstoneDir(cwd, url)).toBe(dir);
    expect(capstoneDir(cwd, url, 'profile.json')).not.toBe(dir);
    expect(capstoneDir(cwd, { ...url, display: url.display.replace('learner', 'other') })).not.toBe(dir);
    expect(path.basename(capstoneDir(cwd, { kind: 'url', display: 'postgres://u:***@[::1]/d' }))).toMatch(/^1-5432-d-[0-9a-f]{8}$/);
  });

  it('makes a path-safe name of an odd database name, and falls back for a display that is not a URL', () => {
    const odd = capstoneDir(cwd, { kind: 'url', display: 'postgres://u:***@h:5432/My%20DB%2F..%2Fetc' });
    expect(path.basename(odd)).toMatch(/^h-5432-my-db-\.-etc-[0-9a-f]{8}$/);
    expect(path.dirname(odd)).toBe('/home/learner/course/.sor-drills');
    expect(path.basename(capstoneDir(cwd, { kind: 'url', display: 'host=h dbname=d password=***' }))).toMatch(/^target-[0-9a-f]{8}$/);
  });

  it('never puts a password in the path, even one passed unmasked', () => {
    const secret = 'S3cretPassw0rd';
    const unmasked = capstoneDir(cwd, { kind: 'url', display: `postgres://learner:${secret}@db.example.com:5433/capstone` });
    expect(unmasked).not.toContain(secret);
    expect(unmasked).not.toContain(secret.toLowerCase());
    // The hash is of the masked URL: the same directory as the masked display.
    expect(unmasked).toBe(capstoneDir(cwd, { kind: 'url', display: 'postgres://learner:***@db.example.com:5433/capstone' }));
    const keyword = capstoneDir(cwd, { kind: 'url', display: `host=h dbname=d password=${secret}` });
    expect(keyword).not.toContain(secret.toLowerCase());
  });

  it('keeps the cluster home inside the capstone directory', () => {
    expect(capstoneClusterHome('/w/.sor-drills/embedded')).toBe('/w/.sor-drills/embedded/cluster');
  });
});

describe('the saved capstone', () => {
  it('round-trips, counts the drills done, and a missing file is no capstone', async () => {
    const dir = path.join(scratchDir('capstone-'), '.sor-drills', 'embedded');
    expect(await loadCapstone(dir)).toEqual({});
    const saved = state();
    await saveCapstone(dir, saved);
    const loaded = await loadCapstone(dir);
    expect(loaded.ignored).toBeUndefined();
    expect(loaded.state).toEqual(saved);
    expect(doneCount(loaded.state!)).toBe(2);
  });

  it("keeps each result's record and log parts, which a resumed capstone's bundle cites", async () => {
    const dir = path.join(scratchDir('capstone-'), '.sor-drills', 'embedded');
    const cited = { ...result('migration_review'), record: '/w/.agent-history/records/migration_review/20250101T000000/record.json', logs: ['/w/a.log'] };
    await saveCapstone(dir, state([cited]));
    const loaded = await loadCapstone(dir);
    expect(loaded.state?.results[0]).toEqual(cited);
  });

  it('is written atomically (no temporary file left), the file 0600 and its directories 0700', async () => {
    const cwd = scratchDir('capstone-');
    const dir = path.join(cwd, '.sor-drills', 'embedded');
    await saveCapstone(dir, state());
    await saveCapstone(dir, withResult(state(), result('idempotency_retry_test')));
    expect(readdirSync(dir)).toEqual(['capstone.json']);
    expect(statSync(path.join(dir, 'capstone.json')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(cwd, '.sor-drills')).mode & 0o777).toBe(0o700);
    expect(doneCount((await loadCapstone(dir)).state!)).toBe(3);
  });

  it('holds no password: the target is the masked display', async () => {
    const dir = scratchDir('capstone-');
    await saveCapstone(dir, state());
    const text = readFileSync(path.join(dir, 'capstone.json'), 'utf8');
    expect(text).toContain('learner:***@');
    expect(text).not.toMatch(/postgres:\/\/[^:]+:(?!\*\*\*@)[^@]+@/);
  });

  it.each([
    ['not JSON', '{"version": 1,', /is not JSON/],
    ['another version', JSON.stringify({ ...state(), version: 2 }), /version/],
    ['a result that is not a drill', JSON.stringify({ ...state(), results: [{ ...result('migration_review'), key: 'drill_10' }] }), /results\.0\.key/],
    [
      'drills out of order',
      JSON.stringify(state([result('run_journal_resume_drill'), result('migration_review')])),
      /not in drill order/,
    ],
    ['the same drill twice', JSON.stringify(state([result('migration_review'), result('migration_review')])), /twice/],
  ])('ignores a file that is %s, saying why in one line', async (_name, text, reason) => {
    const dir = scratchDir('capstone-');
    await writeFile(path.join(dir, 'capstone.json'), text);
    const loaded = await loadCapstone(dir);
    expect(loaded.state).toBeUndefined();
    expect(loaded.ignored).toMatch(reason);
    expect(loaded.ignored).not.toContain('\n');
  });

  it('ignores a file it cannot read, saying why', async () => {
    const dir = scratchDir('capstone-');
    // A directory where the file should be: unreadable as a file even for root.
    await mkdir(path.join(dir, 'capstone.json'));
    const loaded = await loadCapstone(dir);
    expect(loaded.state).toBeUndefined();
    expect(loaded.ignored).toMatch(/could not be read \(EISDIR\)/);
  });

  it('refuses to save a state it could not load back', async () => {
    const dir = scratchDir('capstone-');
    await expect(saveCapstone(dir, state([result('forensics_drill'), result('migration_review')]))).rejects.toThrow(/drill order/);
    expect(existsSync(path.join(dir, 'capstone.json'))).toBe(false);
  });

  it('records a result in drill order, replacing an earlier one of the same drill', () => {
    const first = withResult(state([result('idempotency_retry_test')]), result('migration_review'), '2025-01-02T00:00:00.000Z');
    expect(first.results.map((kept) => kept.key)).toEqual(['migration_review', 'idempotency_retry_test']);
    expect(first.updatedAt).toBe('2025-01-02T00:00:00.000Z');
    const again = withResult(first, result('migration_review', 'fail'));
    expect(again.results.map((kept) => `${kept.key}:${kept.verdict}`)).toEqual(['migration_review:fail', 'idempotency_retry_test:pass']);
  });
});

describe('removeCapstone', () => {
  it('removes the file and the directory it leaves empty, not its parent', async () => {
    const cwd = scratchDir('capstone-');
    const dir = path.join(cwd, '.sor-drills', 'embedded');
    await saveCapstone(dir, state());
    await removeCapstone(dir);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(path.join(cwd, '.sor-drills'))).toBe(true);
    // Removing what is not there is no error.
    await removeCapstone(dir);
  });

  it('leaves the directory while something else (the cluster home) is in it', async () => {
    const dir = path.join(scratchDir('capstone-'), '.sor-drills', 'embedded');
    await saveCapstone(dir, state());
    await mkdir(capstoneClusterHome(dir));
    await removeCapstone(dir);
    expect(readdirSync(dir)).toEqual(['cluster']);
  });
});
