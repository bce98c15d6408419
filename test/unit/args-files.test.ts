// The files flags name: checked before any work (exists and readable; a directory
// that exists or can be made, and can be written), and written atomically
// (fsync of the file before the rename, of the directory after it).
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { scratchDir } from '../helpers/scratch.js';
import { writeFileAtomic } from '../../src/util/fs.js';
import { integerFlag, positiveNumberFlag, readableFile, writableDirectory, writableFile } from '../../src/cli/input-checks.js';
import { UsageError } from '../../src/postgres/url.js';

const root = scratchDir('args-files-');
let count = 0;
const fresh = () => {
  const dir = path.join(root, `case-${(count += 1)}`);
  mkdirSync(dir);
  return dir;
};

const usageMessage = (check: () => unknown): string => {
  try {
    check();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('expected a UsageError');
};

describe('files named by flags', () => {
  it('--migration: an existing readable file passes, as an absolute path', () => {
    const dir = fresh();
    writeFileSync(path.join(dir, 'm.sql'), '-- migrate:up\n');
    expect(readableFile('--migration', path.join(dir, 'm.sql'))).toBe(path.join(dir, 'm.sql'));
  });

  it('--migration: a missing file or a directory is refused, naming the flag', () => {
    const dir = fresh();
    expect(usageMessage(() => readableFile('--migration', path.join(dir, 'nope.sql')))).toMatch(/^--migration .*nope\.sql: no such file/);
    expect(usageMessage(() => readableFile('--migration', dir))).toMatch(/^--migration .*: is a directory; name a file/);
  });

  it('--out: a file in a directory that does not exist yet passes, and nothing is created', () => {
    const dir = fresh();
    const out = path.join(dir, 'a', 'b', 'bundle.md');
    expect(writableFile('--out', out)).toBe(out);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('--out: a path through a file, or an existing directory, is refused', () => {
    const dir = fresh();
    writeFileSync(path.join(dir, 'file'), 'x');
    expect(usageMessage(() => writableFile('--out', path.join(dir, 'file', 'bundle.md')))).toMatch(/^--out .*: .*file is a file, not a directory/);
    expect(usageMessage(() => writableFile('--junit', dir))).toMatch(/^--junit .*: is a directory; name a file/);
    expect(usageMessage(() => writableFile('--out', ''))).toBe('--out is empty; name a file');
  });

  it.skipIf(process.getuid?.() === 0)('--dir: a directory we may not write into is refused (not as root: root writes anywhere)', () => {
    const dir = fresh();
    chmodSync(dir, 0o555);
    try {
      expect(usageMessage(() => writableDirectory('--dir', path.join(dir, 'evidence')))).toMatch(/^--dir .*: cannot write in .*EACCES/);
    } finally {
      chmodSync(dir, 0o755);
    }
  });
});

describe('flag values', () => {
  it.each([['-1'], ['abc'], ['1.5'], [''], ['1e3'], ['2147483648']])('--pace %j is refused', (value) => {
    expect(usageMessage(() => integerFlag('--pace', value, { fallback: 0 }))).toMatch(/^--pace .*: expected a whole number of milliseconds from 0 to 2147483647$/);
  });

  it('--pace 0 and 700 pass; absent takes the default', () => {
    expect(integerFlag('--pace', '0', { fallback: 9 })).toBe(0);
    expect(integerFlag('--pace', '700', { fallback: 9 })).toBe(700);
    expect(integerFlag('--pace', undefined, { fallback: 9 })).toBe(9);
  });

  it('seconds: above 0, at most the longest timer', () => {
    expect(positiveNumberFlag('--timeout', '2.5', { max: 100, unit: 'seconds' })).toBe(2.5);
    for (const bad of ['0', '-1', 'x', '101', '']) {
      expect(usageMessage(() => positiveNumberFlag('--timeout', bad, { max: 100, unit: 'seconds' }))).toMatch(/^--timeout /);
    }
  });
});

describe('writeFileAtomic', () => {
  afterEach(() => vi.restoreAllMocks());

  it('the content lands, in a directory it makes, and no temporary file is left', async () => {
    const dir = fresh();
    const file = path.join(dir, 'deep', 'bundle.md');
    await writeFileAtomic(file, 'first');
    await writeFileAtomic(file, 'second');
    expect(readFileSync(file, 'utf8')).toBe('second');
    expect(readdirSync(path.dirname(file))).toEqual(['bundle.md']);
  });

  it('fsyncs the file before the rename and its directory after it', async () => {
    const dir = fresh();
    const file = path.join(dir, 'bundle.md');
    writeFileSync(file, 'old');
    const probe = await open(file, 'r');
    const prototype = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    // What the final name holds at each fsync shows where the fsync fell relative to the rename.
    const seen: string[] = [];
    const sync = prototype.sync;
    vi.spyOn(prototype, 'sync').mockImplementation(function (this: unknown) {
      seen.push(readFileSync(file, 'utf8'));
      return sync.call(this);
    });
    await writeFileAtomic(file, 'new');
    expect(seen).toEqual(['old', 'new']);
  });

  it('a write that fails half-way leaves the old file whole, and no temporary file', async () => {
    const dir = fresh();
    const file = path.join(dir, 'bundle.md');
    await writeFileAtomic(file, 'the old bundle');
    async function* halfThenFail() {
      yield 'half of the new';
      throw new Error('disk went away');
    }
    await expect(writeFileAtomic(file, halfThenFail())).rejects.toThrow('disk went away');
    expect(readFileSync(file, 'utf8')).toBe('the old bundle');
    expect(readdirSync(dir)).toEqual(['bundle.md']);
  });

  it('a rename that fails (the name is a directory) leaves that directory and no temporary file', async () => {
    const dir = fresh();
    const taken = path.join(dir, 'taken');
    mkdirSync(taken);
    writeFileSync(path.join(taken, 'inside'), 'keep');
    await expect(writeFileAtomic(taken, 'x')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(readFileSync(path.join(taken, 'inside'), 'utf8')).toBe('keep');
  });
});
