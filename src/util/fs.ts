// Files are written atomically: a reader never sees half a file, and a crash
// mid-write leaves the old file (or none), never a torn one.
//
// A rename alone is atomic for readers, not for a power cut: the file's blocks may
// reach the disk after the rename does, leaving an empty or partial file under the
// final name. So the temporary file is fsynced before the rename, and the directory
// after it, so the rename itself is on disk when we say the file is written.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** What can be written: the whole content, or its chunks as they come (a generator, a stream). */
export type FileContent = string | Uint8Array | Iterable<string | Uint8Array> | AsyncIterable<string | Uint8Array>;

/** Directories that cannot be opened for fsync on some systems; the rename is done all the same. */
const unsyncableDirectory = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'ENOTSUP']);

async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (!unsyncableDirectory.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await handle?.close();
  }
}

export interface WriteOptions {
  /** The file's mode (as created, before the umask): 0o600 for a file only its owner may read. */
  mode?: number;
}

export async function writeFileAtomic(file: string, data: FileContent, options: WriteOptions = {}): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    // The temporary file is made with the mode, so the content is never readable by more.
    const handle = await open(temporary, 'wx', options.mode ?? 0o666);
    try {
      await writeFile(handle, data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}
