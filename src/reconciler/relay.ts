// Process entry: the outbox relay. Claims pending outbox rows of one tenant whose
// next_attempt_at has come, BY STATUS with FOR UPDATE SKIP LOCKED (never an
// `id > last_seen` cursor: ids commit out of order), one row per transaction,
// and sends each to the email service with its dedup_key as the Idempotency-Key.
//   success: status dispatched, attempts + 1, dispatched_at; committed.
//   failure: attempts + 1, last_error, next_attempt_at = now() + backoff * 2^(attempts - 1);
//            the row stays pending; committed.
// The send happens inside the claiming transaction, so a relay killed after the
// send and before the commit leaves the row pending: the next relay sends it
// again and the email service's idempotency key keeps it one delivery.
//
// Environment (set by startRelay in launch.ts; nothing is inherited):
//   SOR_RELAY_DATABASE_URL, SOR_WORKER_ROLE (default worker_write)
//   SOR_TENANT           the one tenant whose rows it relays (required): a target is
//                        someone's staging database, and its own pending emails must
//                        never be sent to the loopback stand-in and marked dispatched
//   SOR_EMAIL_URL        base URL of the email service (POST <url>/send)
//   SOR_POLL_MS          sleep when nothing is due (default 200)
//   SOR_BACKOFF_MS       first retry delay (default 1000)
//   SOR_PAUSE_AFTER_SEND_MS  sleep after a successful send, before the commit (the kill point)
//   SOR_CLAIM_HOLD_MS    hold each claimed row this long before sending it (0: no hold), so a
//                        second relay arrives while the row is locked; SIGUSR2 ends the hold
//   SOR_NO_KEY=1         the deliberate break: send without the Idempotency-Key header
//   SOR_PROFILE          the target's profile as JSON (absent: the reference profile with
//                        SOR_WORKER_ROLE as its worker role); checked at start, a misfit ends
//                        the relay with one line naming the first problem
//
// Tables and columns come from the profile. A target without next_attempt_at has every
// pending row due (the relay then waits the backoff itself after a failed send); attempts,
// last_error and dispatched_at are set only where the target has them; recipient, subject
// and body are read from their columns, or from the payload's to, subject and body.
//
// stdout, one JSON line each: relay_started {tenant, email_url, poll_ms, backoff_ms, claim_hold_ms, no_key};
// claim_held {outbox_id, dedup_key, hold_ms} and claim_hold_ended {outbox_id, how};
// sending {outbox_id, dedup_key, attempt}; send_failed {outbox_id, dedup_key, attempts,
// error, next_attempt_at}; sent_pausing {outbox_id, dedup_key, pause_ms, delivery_id};
// dispatched {outbox_id, dedup_key, attempts, delivery_id}; holds_released {count} (on
// SIGUSR2); stopping {signal}.
import { request as httpRequest } from 'node:http';
import type pg from 'pg';
import { fitProfile, orNull, profileSetting } from './actions.js';
import { openWorkerClient } from './db.js';
import { holdsReleasedBySignal, type Holds } from './holds.js';
import { emit, intSetting, requiredSetting } from './json-lines.js';
import { errorMessage } from '../postgres/pg.js';
import { delay } from '../util/wait.js';
import { type ProfileNames, setList } from '../postgres/profile/index.js';
import { empty, type Identifier, type Sql, sql } from '../postgres/sql.js';

interface OutboxRow {
  id: string;
  dedup_key: string;
  recipient: string | null;
  subject: string | null;
  body: string | null;
  /** Null when the target does not count attempts (outbox.attempts). */
  attempts: number | null;
}

const sendTimeoutMs = 5_000;

/** The email service answered, with a status other than 2xx. */
class HttpStatusError extends Error {}

/** One line for a failed send: the HTTP status, or the network error and its code. */
function describeSendError(error: unknown): string {
  if (error instanceof HttpStatusError) return error.message;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `send failed: ${error.message}${code ? ` (${code})` : ''}`;
  }
  return `send failed: ${String(error)}`;
}

/**
 * POST <emailUrl>/send. With node:http, not fetch: fetch's HTTP parser is a WebAssembly
 * module whose optimising compile runs on a background thread, and a process that used it
 * waits for that compile when it exits (about 110 ms on a 2-core machine, measured), which
 * every stop of a relay would sit out.
 */
function send(emailUrl: string, row: OutboxRow, withKey: boolean): Promise<string> {
  const body = JSON.stringify({
    dedup_key: row.dedup_key,
    outbox_id: row.id,
    to: row.recipient,
    subject: row.subject,
    body: row.body,
  });
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  if (withKey) headers['idempotency-key'] = row.dedup_key;
  return new Promise((resolve, reject) => {
    const request = httpRequest(new URL('/send', emailUrl), { method: 'POST', headers, signal: AbortSignal.timeout(sendTimeoutMs) }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = response.statusCode ?? 0;
        if (status < 200 || status > 299) return reject(new HttpStatusError(`HTTP ${status}: ${text.slice(0, 200)}`));
        try {
          resolve((JSON.parse(text) as { delivery_id?: string }).delivery_id ?? '');
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}

interface RelaySettings {
  names: ProfileNames;
  /** Only this tenant's rows are claimed. */
  tenant: string;
  emailUrl: string;
  pollMs: number;
  backoffMs: number;
  pauseAfterSendMs: number;
  claimHoldMs: number;
  holds: Holds;
  noKey: boolean;
}

/** A message field: its column, or the payload's key when the target keeps the message as JSON. */
function messageField(column: Identifier | undefined, payload: Identifier | undefined, key: string): Sql {
  if (column) return sql`${column}::text`;
  if (payload) return sql`${payload} ->> ${key}::text`;
  return sql`null::text`;
}

/** Claims, sends and settles one due row. Returns false when none was due. */
async function relayOne(client: pg.Client, settings: RelaySettings): Promise<boolean> {
  const o = settings.names.outbox;
  await client.query('begin');
  try {
    const due = o.next_attempt_at ? sql` and ${o.next_attempt_at} <= now()` : empty;
    // Qualified: a bare key would name the text alias `id` of the select list, and sort as text.
    const order = o.next_attempt_at ? sql`${o.table}.${o.next_attempt_at}, ${o.table}.${o.key}` : sql`${o.table}.${o.key}`;
    const { rows } = await client.query<OutboxRow>(
      sql`select ${o.key}::text as id, ${o.dedup_key}::text as dedup_key,
                 ${messageField(o.recipient, o.payload, 'to')} as recipient,
                 ${messageField(o.subject, o.payload, 'subject')} as subject,
                 ${messageField(o.body, o.payload, 'body')} as body,
                 ${orNull(o.attempts)}::int as attempts
            from ${o.table}
           where ${o.status} = ${o.values.pending}${due} and ${o.tenant} = ${settings.tenant}
           order by ${order}
           limit 1
           for update skip locked`,
    );
    const row = rows[0];
    if (!row) {
      await client.query('commit');
      return false;
    }
    if (settings.claimHoldMs > 0) {
      // The row stays locked (FOR UPDATE) while held: another relay must skip it, not wait for it.
      emit('claim_held', { outbox_id: row.id, dedup_key: row.dedup_key, hold_ms: settings.claimHoldMs });
      const how = await settings.holds.hold(settings.claimHoldMs);
      emit('claim_hold_ended', { outbox_id: row.id, how });
    }
    emit('sending', { outbox_id: row.id, dedup_key: row.dedup_key, attempt: row.attempts === null ? null : row.attempts + 1 });
    let deliveryId: string;
    try {
      deliveryId = await send(settings.emailUrl, row, !settings.noKey);
    } catch (error) {
      const message = describeSendError(error);
      // Backoff doubles per recorded attempt (the old count: SET reads the row as it was).
      const growth = o.attempts ? sql` * power(2, ${o.attempts})` : empty;
      const retry = setList([
        [o.attempts, o.attempts ? sql`${o.attempts} + 1` : undefined],
        [o.last_error, message],
        [o.next_attempt_at, sql`now() + ${settings.backoffMs}${growth} * interval '1 millisecond'`],
      ]);
      let failed: Array<{ attempts: number | null; next_attempt_at: Date | null }> = [];
      if (retry.parts.length > 0) {
        ({ rows: failed } = await client.query<{ attempts: number | null; next_attempt_at: Date | null }>(
          sql`update ${o.table}
                 set ${retry}
               where ${o.key} = ${row.id}
               returning ${orNull(o.attempts)}::int as attempts, ${orNull(o.next_attempt_at)}::timestamptz as next_attempt_at`,
        ));
      }
      await client.query('commit');
      emit('send_failed', {
        outbox_id: row.id,
        dedup_key: row.dedup_key,
        attempts: failed[0]?.attempts ?? undefined,
        error: message,
        next_attempt_at: failed[0]?.next_attempt_at?.toISOString(),
      });
      // No next_attempt_at: the row is due again at once, so the relay itself waits the backoff.
      if (!o.next_attempt_at) await delay(settings.backoffMs);
      return true;
    }
    if (settings.pauseAfterSendMs > 0) {
      // The drill's kill point: sent, not yet committed.
      emit('sent_pausing', { outbox_id: row.id, dedup_key: row.dedup_key, pause_ms: settings.pauseAfterSendMs, delivery_id: deliveryId });
      await delay(settings.pauseAfterSendMs);
    }
    const { rows: sent } = await client.query<{ attempts: number | null }>(
      sql`update ${o.table}
             set ${setList([
               [o.status, o.values.dispatched],
               [o.attempts, o.attempts ? sql`${o.attempts} + 1` : undefined],
               [o.dispatched_at, sql`clock_timestamp()`],
             ])}
           where ${o.key} = ${row.id}
           returning ${orNull(o.attempts)}::int as attempts`,
    );
    await client.query('commit');
    emit('dispatched', { outbox_id: row.id, dedup_key: row.dedup_key, attempts: sent[0]?.attempts ?? undefined, delivery_id: deliveryId });
    return true;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const setting = profileSetting(env, env.SOR_WORKER_ROLE || 'worker_write');
  const base = {
    tenant: requiredSetting(env, 'SOR_TENANT'),
    emailUrl: requiredSetting(env, 'SOR_EMAIL_URL'),
    pollMs: intSetting(env, 'SOR_POLL_MS', 200),
    backoffMs: intSetting(env, 'SOR_BACKOFF_MS', 1_000),
    pauseAfterSendMs: intSetting(env, 'SOR_PAUSE_AFTER_SEND_MS', 0),
    claimHoldMs: intSetting(env, 'SOR_CLAIM_HOLD_MS', 0),
    holds: holdsReleasedBySignal(),
    noKey: env.SOR_NO_KEY === '1',
  };
  const client = await openWorkerClient(
    requiredSetting(env, 'SOR_RELAY_DATABASE_URL'),
    env.SOR_WORKER_ROLE || setting.profile.roles.worker,
    'sor-outbox-relay',
  );
  let settings: RelaySettings;
  try {
    settings = { ...base, names: (await fitProfile(client, setting)).names };
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  let stopping = false;
  const wake = new AbortController();
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    emit('stopping', { signal });
    wake.abort();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  emit('relay_started', {
    tenant: settings.tenant,
    email_url: settings.emailUrl,
    poll_ms: settings.pollMs,
    backoff_ms: settings.backoffMs,
    pause_after_send_ms: settings.pauseAfterSendMs,
    claim_hold_ms: settings.claimHoldMs,
    no_key: settings.noKey,
  });
  try {
    while (!stopping) {
      const worked = await relayOne(client, settings);
      if (!worked) await delay(settings.pollMs, wake.signal).catch(() => {});
    }
  } finally {
    await client.end().catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`relay: ${errorMessage(error)}\n`);
    process.exit(1);
  },
);
