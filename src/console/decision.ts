// The decision: the bundle drafted from the drills' results (the seed's JSON
// object and the decision paragraph, via src/drills/bundle.ts), and saving it
// with the paragraph as the operator edited it.
import path from 'node:path';
import type { Drill, DrillResult } from '../drills/types.js';
import type { ProfileNames } from '../postgres/profile/index.js';
import { appendHistory, getState, update, type DecisionDraft } from '../store.js';
import { errorMessage } from '../postgres/errors.js';

export { defaultBundlePath, masteryBundlePath as masteryPath } from '../drills/bundle.js';

/** Drafts a bundle for a list of results (loads the bundle module once). */
export async function decisionDrafts(
  drills: readonly Drill[],
  target: string,
  names?: ProfileNames,
): Promise<(kind: DecisionDraft['kind'], results: DrillResult[], file: string) => DecisionDraft> {
  const bundle = await import('../drills/bundle.js');
  return (kind, results, file) => ({
    kind,
    decision: bundle.decisionOf(results),
    bundle: Object.entries(bundle.assembleBundle(results, drills)),
    passed: results.filter((result) => result.verdict === 'pass').length,
    text: bundle.draftParagraph(results, drills, target, names),
    cursor: 0,
    editing: false,
    path: file,
    saving: false,
    dirty: true,
  });
}

/** Writes decision `index` (JSON, the edited paragraph, evidence, manifest) to its path. */
export async function saveDecision(
  index: number,
  results: DrillResult[] | undefined,
  drills: readonly Drill[],
  target: string,
): Promise<void> {
  const draft = getState().decisions[index];
  if (!draft || !results) return;
  const patch = (change: Partial<DecisionDraft>) =>
    update((state) => ({ decisions: state.decisions.map((d, i) => (i === index ? { ...d, ...change } : d)) }));
  patch({ saving: true, saveError: undefined });
  try {
    const bundle = await import('../drills/bundle.js');
    const doc = await bundle.renderBundle(results, drills, draft.text, process.cwd(), { target, when: new Date(), file: draft.path, kind: draft.kind });
    await bundle.writeBundle(draft.path, doc.text);
    const saved = path.resolve(draft.path);
    // Only what was written is clean: an edit made while writing keeps the draft dirty.
    const now = getState().decisions[index];
    patch({ saving: false, savedPath: saved, dirty: now?.text !== draft.text });
    update({ notice: { text: `saved the ${draft.kind === 'run' ? 'bundle' : 'mastery bundle'} to ${saved}`, tone: 'ok' } });
    appendHistory([{ text: `saved ${draft.decision} bundle: ${saved}`, tone: 'ok' }]);
  } catch (error) {
    patch({ saving: false, saveError: errorMessage(error) });
  }
}

/**
 * Packs the run's saved bundle (and the mastery bundle beside it, when saved) for handing in:
 * `sor-drills pack`'s archive, beside the bundle. Each unsaved draft is saved first.
 */
export async function packDecisions(save: (index: number) => Promise<void>): Promise<void> {
  const decisions = getState().decisions;
  for (const [index, draft] of decisions.entries()) {
    if (draft.dirty || !draft.savedPath) await save(index);
  }
  const run = getState().decisions.find((draft) => draft.kind === 'run');
  if (!run?.savedPath || run.dirty) {
    update({ notice: { text: 'not packed: the bundle could not be saved first', tone: 'bad' } });
    return;
  }
  try {
    const { defaultArchivePath, packBundle } = await import('../drills/pack.js');
    const out = defaultArchivePath(run.savedPath);
    const files = await packBundle(run.savedPath, out);
    update({ notice: { text: `packed ${files.length} files into ${out} (sor-drills verify checks it)`, tone: 'ok' } });
    appendHistory([{ text: `packed the bundle for handing in: ${out}`, tone: 'ok' }]);
  } catch (error) {
    update({ notice: { text: `not packed: ${errorMessage(error)}`, tone: 'bad' } });
  }
}
