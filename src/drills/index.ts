// The nine drills, in the capstone's order. Drills run in this order and none
// can be skipped.
import { appendOnlyEventTest } from './append-only-event-test.js';
import { concurrencyClaimTest } from './concurrency-claim-test/index.js';
import { forensicsDrill } from './forensics-drill/index.js';
import { idempotencyRetryTest } from './idempotency-retry-test.js';
import { mcpBoundaryTest } from './mcp-boundary-test/index.js';
import { migrationReview } from './migration-review.js';
import { outboxRelayRetryTest } from './outbox-relay-retry-test/index.js';
import { rlsIdentityFlipTest } from './rls-identity-flip-test.js';
import { runJournalResumeDrill } from './run-journal-resume-drill.js';
import type { Drill } from './types.js';

export const drills: readonly Drill[] = [
  migrationReview,
  runJournalResumeDrill,
  idempotencyRetryTest,
  concurrencyClaimTest,
  outboxRelayRetryTest,
  appendOnlyEventTest,
  rlsIdentityFlipTest,
  mcpBoundaryTest,
  forensicsDrill,
];
