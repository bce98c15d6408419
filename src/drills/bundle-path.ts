// Where bundles go: apart from bundle.ts so that the headless run can check its --out
// path before the bundle's renderer (and the profile module under it) has loaded.
import path from 'node:path';

/** Where a bundle goes unless the operator says: evidence/bundle-<UTC stamp>.md in the current directory. */
export function defaultBundlePath(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..+$/, '');
  return path.join('evidence', `bundle-${stamp}.md`);
}

/** The mastery gate's second bundle goes beside the first: bundle.md -> bundle.mastery.md. */
export function masteryBundlePath(file: string): string {
  const parsed = path.parse(file);
  return path.join(parsed.dir, `${parsed.name}.mastery${parsed.ext || '.md'}`);
}
