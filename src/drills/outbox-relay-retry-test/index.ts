// Drill 5, outbox_relay_retry_test: the drill (drill.ts) with its verdict and helpers beside it.
export { outboxRelayRetryTest } from './drill.js';
