// Drill 4, concurrency_claim_test: the drill (drill.ts) with its verdict and helpers beside it.
export { concurrencyClaimTest } from './drill.js';
export { duplicateProcessing, lockErrors } from './verdict.js';
