// The db-state oracle's public API (see types.ts for the glossary). The drills and
// `sor-drills oracle` use this; nothing here imports ink or react.
export * from './types.js';
export { readCatalog, readTableCatalog, type Catalog, type TableCatalog, type ColumnState } from './catalog.js';
export { snapshot, releaseSnapshot, scopeTables, chooseKey, defaultStreamThreshold, type SnapshotOptions } from './snapshot.js';
export { normalise } from './normalise.js';
export { diff, schemaChanges, type DiffOptions } from './diff.js';
export { writeSnapshotFiles, writeSnapshotJson, writeNormalisedJson, renderDocument, rawDocument, normalisedDocument } from './render.js';
export {
  parseExpectation,
  evaluate,
  describeExpectation,
  expectationColumns,
  valueMatches,
  rowMatches,
  expectationGrammar,
  type EvaluationInput,
} from './predicates.js';
export { waitForQuiescence, type QuiescenceOptions } from './quiescence.js';
export { runAction, actionLabel, primaryOracle } from './action.js';
export { createEvidenceFolder, folderTimestamp, defaultEvidenceRoot, checkCardId } from './evidence.js';
export { decideVerdict, displayPath, renderVerdictMarkdown } from './verdict.js';
export { runOracle, effectiveScope, scopeForAfter, describeScope, type RunOracleOptions } from './run.js';
export { defaultVolatilePatterns, defaultVolatiles, extendVolatiles, keepColumns, isVolatileColumn } from './volatiles.js';
