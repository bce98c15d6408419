// The email service's report (GET /report), shared by the service and its callers.
export type FailMode = 'status503' | 'reset';

export interface EmailReport {
  /** Every POST /send, failed ones included. */
  requests: number;
  /** Deliveries made: a repeated idempotency key makes none. */
  deliveries: number;
  /** Requests answered with a simulated failure (503 or reset). */
  failed: number;
  /** By the dedup_key in the request body. */
  by_dedup_key: Record<string, { requests: number; deliveries: number }>;
  /** By the Idempotency-Key header (requests without one are not here). */
  by_idempotency_key: Record<string, { requests: number; deliveries: number; delivery_id: string | null }>;
}

export function emptyReport(): EmailReport {
  return { requests: 0, deliveries: 0, failed: 0, by_dedup_key: {}, by_idempotency_key: {} };
}
