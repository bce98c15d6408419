// Where a throwaway cluster goes: RAM-backed /dev/shm when it is a tmpfs with room and
// TMPDIR names no place; the temp dir otherwise.
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { throwawayRoot } from '../../src/postgres/embedded.js';

const saved = process.env.TMPDIR;
afterEach(() => {
  if (saved === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = saved;
});

function shmIsRoomyTmpfs(): boolean {
  try {
    const fs = statfsSync('/dev/shm');
    return fs.type === 0x01021994 && fs.bavail * fs.bsize >= 1024 ** 3;
  } catch {
    return false;
  }
}

describe('throwawayRoot', () => {
  it('is the temp dir TMPDIR names, whatever /dev/shm is', () => {
    process.env.TMPDIR = '/var/tmp';
    expect(throwawayRoot()).toBe(tmpdir());
    expect(throwawayRoot()).toBe('/var/tmp');
  });

  it('is /dev/shm without TMPDIR when that is a tmpfs with a GiB free, else the temp dir', () => {
    delete process.env.TMPDIR;
    expect(throwawayRoot()).toBe(shmIsRoomyTmpfs() ? '/dev/shm' : tmpdir());
  });
});
