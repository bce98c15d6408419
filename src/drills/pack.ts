// `sor-drills pack`: a bundle and everything it cites in one .tar.gz an instructor can
// verify on another machine. Inside, paths are relative: the bundle (and its mastery
// bundle, when there is one) at the top, `sor-drills-pack.json` naming them, and each file
// of their manifests at its path relative to the run's folder (.agent-history/...).
// `sor-drills verify ARCHIVE` lists the archive first and refuses an absolute path, a
// `..`, a link or a device before it extracts anything, into a fresh temporary folder.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { UsageError } from '../postgres/url.js';
import { masteryBundlePath, parseBundleIndex } from './bundle.js';
import { parseManifest, verifyBundle, type VerifyResult } from './verify.js';
import type { Drill } from './types.js';

export const packFile = 'sor-drills-pack.json';

interface PackIndex {
  version: 1;
  bundles: string[];
}

/** `evidence/bundle-X.md` -> `evidence/bundle-X.tar.gz`. */
export function defaultArchivePath(bundle: string): string {
  const parsed = path.parse(bundle);
  return path.join(parsed.dir, `${parsed.name}.tar.gz`);
}

function inside(relative: string): boolean {
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

/** Writes the archive; returns the files it holds (relative paths). */
export async function packBundle(bundle: string, out: string): Promise<string[]> {
  const files = [bundle, masteryBundlePath(bundle)].filter((file, index) => index === 0 || existsSync(file));
  const stage = await mkdtemp(path.join(tmpdir(), 'sor-drills-pack-'));
  try {
    const entries: string[] = [packFile];
    const bundles: string[] = [];
    const added = new Set<string>();
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      const index = parseBundleIndex(text);
      if (!index) throw new UsageError(`${file} has no files index (written by an older sor-drills): run the drills again to pack it`);
      const root = path.resolve(path.dirname(file), index.root);
      const name = path.basename(file);
      await copyFile(file, path.join(stage, name));
      bundles.push(name);
      entries.push(name);
      for (const { file: listed } of parseManifest(text)) {
        if (!inside(listed)) throw new UsageError(`${file} lists ${listed}, outside its run's folder: it cannot go into an archive with relative paths`);
        if (added.has(listed)) continue;
        const source = path.join(root, listed);
        if (!existsSync(source)) throw new UsageError(`${listed} is in ${file}'s manifest but missing: verify the bundle first`);
        await mkdir(path.dirname(path.join(stage, listed)), { recursive: true });
        await copyFile(source, path.join(stage, listed));
        added.add(listed);
        entries.push(listed);
      }
    }
    await writeFile(path.join(stage, packFile), `${JSON.stringify({ version: 1, bundles } satisfies PackIndex, null, 2)}\n`);
    await mkdir(path.dirname(path.resolve(out)), { recursive: true });
    await tar.c({ gzip: true, file: out, cwd: stage, portable: true }, entries);
    return entries;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/** Whether the path names an archive (by its name): verify then extracts it. */
export function isArchive(file: string): boolean {
  return /\.(tar\.gz|tgz)$/i.test(file);
}

/** Why an entry may not be extracted, or undefined when it may. */
function refusal(entry: { path: string; type: string }): string | undefined {
  const name = entry.path;
  if (path.isAbsolute(name) || /^[A-Za-z]:[\\/]/.test(name)) return `an absolute path (${name})`;
  if (name.split(/[\\/]/).includes('..')) return `a path that climbs out with .. (${name})`;
  if (entry.type !== 'File' && entry.type !== 'Directory' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
    return `a ${entry.type} entry (${name}): an archive of sor-drills holds files and folders only`;
  }
  return undefined;
}

export interface ArchiveResult extends VerifyResult {
  /** Set when the archive was refused before anything was extracted. */
  refused?: string;
}

/** Verifies an archive: listed and checked first, extracted into a fresh temporary folder, then each bundle. */
export async function verifyArchive(archive: string, drills: readonly Drill[]): Promise<ArchiveResult> {
  const refusals: string[] = [];
  const names: string[] = [];
  await tar.t({
    file: archive,
    onReadEntry: (entry) => {
      const why = refusal({ path: entry.path, type: entry.type });
      if (why) refusals.push(why);
      else names.push(entry.path.replace(/\/$/, ''));
    },
  });
  if (refusals.length > 0) {
    return { checks: [], findings: refusals.map((why) => ({ subject: archive, message: `refused, nothing extracted: ${why}` })), refused: refusals[0] };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'sor-drills-verify-'));
  try {
    await tar.x({ file: archive, cwd: dir, strict: true, preservePaths: false, preserveOwner: false });
    let pack: PackIndex;
    try {
      pack = JSON.parse(await readFile(path.join(dir, packFile), 'utf8')) as PackIndex;
    } catch {
      return { checks: [], findings: [{ subject: archive, message: `not an archive of sor-drills pack: no ${packFile} at its top` }] };
    }
    const show = (file: string) => path.relative(dir, file) || file;
    const result: VerifyResult = { checks: [], findings: [] };
    // The run bundle; its mastery bundle beside it is found by verifyBundle.
    const main = pack.bundles.find((name) => !name.endsWith('.mastery.md')) ?? pack.bundles[0];
    if (main) {
      const checked = await verifyBundle(path.join(dir, main), drills, { root: dir, show });
      result.checks.push(...checked.checks);
      result.findings.push(...checked.findings);
    }
    // Every file of the archive is a bundle, the pack's index, or in a manifest.
    const accounted = new Set<string>([path.join(dir, packFile)]);
    for (const check of result.checks) for (const file of check.accounted) accounted.add(file);
    for (const name of names) {
      const full = path.join(dir, name);
      if (name === '' || accounted.has(full)) continue;
      const isFolder = [...accounted].some((file) => file.startsWith(`${full}${path.sep}`));
      if (!isFolder) result.findings.push({ subject: name, message: 'in the archive but in no manifest' });
    }
    for (const check of result.checks) check.file = show(check.file);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
