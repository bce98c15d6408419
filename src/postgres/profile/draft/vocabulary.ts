// The vocabulary: the drills' words and the names a schema gives them (status values,
// column and table names), matched by synonyms; and the column types and the value
// template each gives a NOT NULL column no key fills.
import type { CatalogColumn } from './pg-catalog.js';

/** The target's values a drill word may be written as, the word itself first. */
export const statusSynonyms = {
  pending: ['pending', 'queued', 'new'],
  claimed: ['claimed', 'locked', 'in_progress', 'processing', 'leased'],
  processed: ['processed', 'done', 'completed', 'reconciled'],
  running: ['running', 'started', 'in_progress'],
  finished: ['finished', 'completed', 'succeeded', 'done'],
  completed: ['completed', 'finished', 'succeeded', 'done'],
  started: ['started', 'running', 'in_progress'],
  dispatched: ['dispatched', 'sent', 'delivered', 'published'],
  failed: ['failed', 'dead', 'error', 'errored', 'failure'],
} as const satisfies Record<string, readonly string[]>;

export type StatusWord = keyof typeof statusSynonyms;

/** The column names each profile key may be written as, the profile's own word first. */
export const columnSynonyms = {
  tenantName: ['name', 'display_name', 'full_name', 'title', 'label'],
  amount: ['amount_cents', 'amount', 'amount_minor', 'amount_in_cents', 'cents', 'total_cents'],
  description: ['description', 'memo', 'note', 'notes', 'narrative', 'details'],
  status: ['status', 'state'],
  claimedBy: ['claimed_by', 'locked_by', 'leased_by', 'claimed_by_worker'],
  leaseUntil: ['lease_until', 'locked_until', 'lease_expires_at', 'claimed_until', 'lease_expiry'],
  processedBy: ['processed_by', 'done_by', 'completed_by', 'reconciled_by'],
  processedAt: ['processed_at', 'done_at', 'completed_at', 'reconciled_at'],
  worker: ['worker', 'worker_id', 'worker_name', 'agent_id'],
  totalTurns: ['total_turns', 'turn_count', 'turns_total', 'num_turns'],
  error: ['error', 'error_message', 'error_text', 'failure_reason'],
  startedAt: ['started_at', 'start_time', 'began_at'],
  finishedAt: ['finished_at', 'ended_at', 'completed_at', 'end_time'],
  turnNumber: ['turn_no', 'turn_index', 'turn_number', 'number', 'idx'],
  callTurnNumber: ['turn_no', 'turn_index', 'turn_number'],
  callNumber: ['call_no', 'seq', 'call_index', 'position', 'call_number'],
  tool: ['tool', 'tool_name', 'name'],
  arguments: ['arguments', 'input', 'args', 'params', 'parameters'],
  result: ['result', 'output'],
  errorCode: ['error_code', 'sqlstate', 'code'],
  durationMs: ['duration_ms', 'elapsed_ms', 'latency_ms'],
  dedupKey: ['dedup_key', 'dedupe_key', 'dedup_id', 'dedupe_id', 'deduplication_key'],
  recipient: ['recipient', 'to_address', 'recipient_email', 'email', 'to'],
  subject: ['subject', 'title'],
  body: ['body', 'text', 'content'],
  payload: ['payload', 'message', 'data', 'body'],
  attempts: ['attempts', 'attempt_count', 'tries', 'retry_count'],
  lastError: ['last_error', 'error', 'error_message'],
  nextAttemptAt: ['next_attempt_at', 'available_at', 'retry_at', 'not_before', 'scheduled_at', 'run_at'],
  dispatchedAt: ['dispatched_at', 'sent_at', 'delivered_at', 'published_at'],
  eventType: ['event_type', 'type', 'kind', 'event'],
  eventPayload: ['detail', 'payload', 'data', 'details', 'body'],
  createdAt: ['created_at', 'occurred_at', 'recorded_at', 'inserted_at', 'at'],
} as const satisfies Record<string, readonly string[]>;

/** Table names, as a tie-breaker between candidates that the structure alone does not tell apart. */
export const tableSynonyms = {
  tenants: ['tenants', 'users', 'accounts', 'organizations', 'orgs', 'workspaces'],
  expenses: ['expenses'],
  pending_transactions: ['pending_transactions', 'transactions', 'bank_transactions'],
  runs: ['runs', 'agent_runs'],
  turns: ['turns', 'agent_turns', 'steps'],
  tool_calls: ['tool_calls', 'tool_invocations'],
  outbox: ['outbox', 'outbox_messages', 'outbox_events'],
  events: ['agent_events', 'events', 'run_events'],
} as const;

export const idempotencyColumn = /idempot/;
export const transactionColumn = /(^|_)(transaction|txn)(_id|_ref)?$/;
const emailColumn = /email/;

/** What the drafter found for one choice: one candidate, none, or several. */
export type Found<T> = { kind: 'one'; value: T } | { kind: 'none' } | { kind: 'many'; values: T[] };

export function found<T>(values: T[]): Found<T> {
  if (values.length === 1) return { kind: 'one', value: values[0]! };
  return values.length === 0 ? { kind: 'none' } : { kind: 'many', values };
}

/**
 * The value of a CHECK (or enum) that means a drill word: the word itself, else its one
 * synonym among the values. Two synonyms and no word itself: many (undecided).
 */
export function statusValueFor(word: StatusWord, allowed: readonly string[]): Found<string> {
  if (allowed.includes(word)) return { kind: 'one', value: word };
  return found(statusSynonyms[word].filter((synonym) => allowed.includes(synonym)));
}

export const integerType = /^(smallint|integer|bigint)$/;
export const textType = /^(text|character varying(\(\d+\))?|citext|name)$/;
export const jsonType = /^jsonb?$/;
export const timeType = /^(timestamp|date)/;

/**
 * The value template of a NOT NULL column no key fills, by its type (a token unique to
 * the row for text, an email for a column named like one), or why there is none.
 */
export function templateFor(
  column: Pick<CatalogColumn, 'name' | 'type' | 'enumValues'>,
  context: { unique?: boolean; references?: string | null; tenantTable?: string } = {},
): { template: string } | { why: string } {
  if (context.references) {
    if (context.references === context.tenantTable) return { template: '{tenant}' };
    return { why: `references ${context.references}, whose rows sor-drills does not make` };
  }
  if (column.enumValues) return { why: `is the enum ${column.type}: write one of ${column.enumValues.map((value) => `'${value}'`).join(', ')}` };
  const type = column.type;
  if (textType.test(type)) {
    const length = /\((\d+)\)/.exec(type)?.[1];
    if (length && Number(length) < 40) return { why: `is ${type}, too short for the row token sor-drills writes ({key})` };
    return { template: emailColumn.test(column.name) ? '{key}@sor-drills.invalid' : '{key}' };
  }
  if (type === 'uuid') return { template: '{uuid}' };
  const constant = integerType.test(type) || /^numeric/.test(type) ? '0' : type === 'boolean' ? 'false' : jsonType.test(type) ? '{}' : timeType.test(type) ? 'now' : undefined;
  if (constant === undefined) return { why: `is ${type}, which no template fills` };
  if (context.unique) return { why: `is ${type} and unique: the one value a template gives (${constant}) would conflict on the second row` };
  return { template: constant };
}
