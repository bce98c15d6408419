// The capstone's saved state, so a learner who stops half-way carries on where they
// stopped: per target, in `.sor-drills/<target>/capstone.json` of the working directory.
// Pure files (no Ink, no database): the controller decides when to load, save and remove.
//
// - The directory is named for the target without its secrets: `embedded`, or a slug
//   of the masked URL (host-port-database) with a hash of the masked URL and the
//   profile, so two targets on one host, or one target under two profiles, never share one.
// - The file holds only finished drills, in drill order: a drill that was interrupted
//   is not in it, and starts again from its first step.
// - Written atomically, mode 0600, in a 0700 directory: evidence lines name rows of the
//   learner's database. An unreadable or invalid file is ignored, with the reason why.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { bundleKeys, type BundleKey, type DrillResult } from '../drills/types.js';
import { maskUrl } from '../postgres/url.js';
import { writeFileAtomic } from '../util/fs.js';

/** The directory in the working directory that holds every target's capstone (in .gitignore). */
export const capstoneRoot = '.sor-drills';
export const capstoneFile = 'capstone.json';

export interface CapstoneTarget {
  kind: 'embedded' | 'url';
  /** The target as shown: masked (no password). */
  display: string;
}

export interface CapstoneState {
  version: 1;
  /** The target, masked, as it was shown when the capstone was saved. */
  target: string;
  /** The profile's source (its path), when the capstone runs under one. */
  profile?: string;
  startedAt: string;
  updatedAt: string;
  /** The drills run with their deliberate break. */
  breaks: string[];
  /** Finished drills only, in drill order. */
  results: DrillResult[];
}

export interface LoadedCapstone {
  /** The saved capstone; undefined when there is none or it was ignored. */
  state?: CapstoneState;
  /** Why a file that is there was ignored (unreadable, not JSON, not a capstone), one line. */
  ignored?: string;
}

const resultSchema = z.object({
  key: z.enum(bundleKeys),
  verdict: z.enum(['pass', 'fail', 'could-not-determine']),
  evidence: z.string(),
  reason: z.string().optional(),
  evidenceDirs: z.array(z.string()),
  broken: z.boolean(),
  notes: z.array(z.string()),
  durationMs: z.number().nonnegative(),
  // The drill's record and log parts: a resumed capstone's bundle cites them (sor-drills verify).
  record: z.string().optional(),
  logs: z.array(z.string()).optional(),
});

const stateSchema = z
  .object({
    version: z.literal(1),
    target: z.string().min(1),
    profile: z.string().optional(),
    startedAt: z.string().min(1),
    updatedAt: z.string().min(1),
    breaks: z.array(z.string()),
    results: z.array(resultSchema),
  })
  .superRefine((state, context) => {
    const order = state.results.map((result) => bundleKeys.indexOf(result.key));
    if (order.some((at, index) => index > 0 && at <= order[index - 1]!)) {
      context.addIssue({ code: 'custom', path: ['results'], message: 'the drills are not in drill order, or one is there twice' });
    }
  });

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A readable, path-safe piece: lower case letters, digits, dots and dashes. */
function slugPart(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 40);
}

function urlSlug(masked: string): string {
  try {
    const url = new URL(masked);
    const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    const parts = [url.hostname.replace(/^\[|\]$/g, ''), url.port || '5432', database].map(slugPart).filter(Boolean);
    return parts.length > 0 ? parts.join('-') : 'target';
  } catch {
    // Not a URL (it should be, the target's display is one): nothing of it goes into the name.
    return 'target';
  }
}

/**
 * The capstone's directory for a target: `<cwd>/.sor-drills/embedded` for the embedded
 * target (with a hash of the profile when there is one: the port changes every start,
 * the target does not), else `<cwd>/.sor-drills/<host>-<port>-<database>-<8 hex>`, the hex
 * of sha256 over the masked URL and the profile's source. The URL is masked again here,
 * so no password reaches a path even if an unmasked one is passed.
 */
export function capstoneDir(cwd: string, target: CapstoneTarget, profileSource?: string): string {
  const root = path.join(path.resolve(cwd), capstoneRoot);
  if (target.kind === 'embedded') {
    if (profileSource === undefined) return path.join(root, 'embedded');
    return path.join(root, `embedded-${sha256(`embedded\n${profileSource}`).slice(0, 8)}`);
  }
  const masked = maskUrl(target.display);
  const hash = sha256(`${masked}\n${profileSource ?? ''}`).slice(0, 8);
  return path.join(root, `${urlSlug(masked)}-${hash}`);
}

/** Where the embedded cluster of a capstone is kept while the capstone is unfinished (StartOptions.home). */
export function capstoneClusterHome(dir: string): string {
  return path.join(dir, 'cluster');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The saved capstone in dir; a missing file is no capstone, an unreadable or invalid one is ignored with its reason. */
export async function loadCapstone(dir: string): Promise<LoadedCapstone> {
  const file = path.join(dir, capstoneFile);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return {};
    return { ignored: `${file} could not be read (${code ?? oneLine(String(error))})` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ignored: `${file} is not JSON (${oneLine((error as Error).message)})` };
  }
  const parsed = stateSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    return { ignored: `${file} is not a capstone this console can resume (${where}${oneLine(issue?.message ?? 'invalid')})` };
  }
  return { state: parsed.data as CapstoneState };
}

/** Saves the capstone atomically: the file 0600, its directories (when made here) 0700. Refuses a state it could not load back. */
export async function saveCapstone(dir: string, state: CapstoneState): Promise<void> {
  const parsed = stateSchema.safeParse(state);
  if (!parsed.success) {
    throw new Error(`refusing to save an invalid capstone: ${oneLine(parsed.error.issues[0]?.message ?? 'invalid')}`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(dir, capstoneFile), `${JSON.stringify(parsed.data, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Removes the saved capstone, and its directory if nothing else is left in it. The
 * embedded cluster's home inside it is not touched here: the cluster's own stop()
 * removes it (retain(false)), and a directory still holding it stays.
 */
export async function removeCapstone(dir: string): Promise<void> {
  await rm(path.join(dir, capstoneFile), { force: true });
  await tidyCapstone(dir);
}

/** Removes the capstone's directory if nothing is left in it (once the cluster in its home is removed). */
export async function tidyCapstone(dir: string): Promise<void> {
  await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT' && error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
  });
}

/** How many drills of the capstone are done (finished, whatever their verdict). */
export function doneCount(state: CapstoneState): number {
  return state.results.length;
}

/** The state with a drill's result recorded: replacing an earlier one of the same drill, kept in drill order. */
export function withResult(state: CapstoneState, result: DrillResult, now: string = new Date().toISOString()): CapstoneState {
  const rank = (key: BundleKey) => bundleKeys.indexOf(key);
  const results = [...state.results.filter((kept) => kept.key !== result.key), result].sort((a, b) => rank(a.key) - rank(b.key));
  return { ...state, updatedAt: now, results };
}
