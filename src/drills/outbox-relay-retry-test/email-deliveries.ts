// What the email service counted for the drill's dedup_key: the drill's proof
// of "one delivery however many requests" comes from the receiving side, not
// from the relay's own account.
import type { EmailService } from '../../reconciler/launch.js';

export interface EmailCounts {
  /** POST /send requests whose body carried the dedup_key, failed ones included. */
  requests: number;
  /** Deliveries made for it: a request repeating a known idempotency key makes none. */
  deliveries: number;
  /** Requests that carried the dedup_key as their Idempotency-Key header. */
  withHeader: number;
}

/** Reads the email service's report once, for one dedup_key (zeros when it saw none). */
export async function emailCountsFor(email: EmailService, dedupKey: string): Promise<EmailCounts> {
  const report = await email.report();
  const forKey = report.by_dedup_key[dedupKey] ?? { requests: 0, deliveries: 0 };
  const withHeader = report.by_idempotency_key[dedupKey]?.requests ?? 0;
  return { requests: forKey.requests, deliveries: forKey.deliveries, withHeader };
}
