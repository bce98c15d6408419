// The example outbox relay. Loop: claim one due pending outbox_messages row of
// USER_ID (available_at <= now()) BY STATUS with FOR UPDATE SKIP LOCKED (never an
// `id > last_seen` cursor: ids commit out of order), send it, settle it, commit;
// one row per transaction.
//   sent (2xx): status 'sent', sent_at, attempt_count + 1, in the claim's transaction.
//   failed:     attempt_count + 1, last_error, available_at = now() + BACKOFF_MS; stays 'pending'.
// The send happens inside the claiming transaction: a relay killed after the send
// and before the commit leaves the row pending, the next relay sends it again, and
// the Idempotency-Key (the dedup_key) keeps that one delivery.
//
// Environment (declared in profile.json's processes.relay.env):
//   DATABASE_URL   how to connect, as the profile's worker role (application_name kept)
//   EMAIL_API_URL  the email service; each message is POSTed to <EMAIL_API_URL>/send
//   USER_ID        the one user whose messages it relays: a target may be someone's
//                  staging database, whose own pending emails must never go to a stand-in
//   POLL_MS        sleep when nothing is due (default 100)
//   BACKOFF_MS     retry delay after a failed send (default 200)
//   EXAMPLE_BUG    dispatch-before-send: mark 'sent' and commit, then send (the outbox
//                  drill must catch it)
// SIGTERM (or SIGINT) stops it after the row in hand, exit 0.
//
// stdout, one JSON line each: relay_started {user_id, email_url, poll_ms, backoff_ms, bug};
// sending {outbox_id, dedup_key, attempt}; dispatched {outbox_id, dedup_key, attempts,
// delivery_id}; send_failed {outbox_id, dedup_key, attempts, error, next_attempt_at};
// relay_error {error, error_code}; stopping {signal}.
import pg from 'pg';
import { exampleBug } from './bugs.mjs';

const status = { pending: 'pending', sent: 'sent' };
const topic = 'email';
const sendTimeoutMs = 5_000;

const emit = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: declare it in the profile's processes.relay.env`);
  return value;
}

function count(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return value;
}

const iso = (value) => (value instanceof Date ? value.toISOString() : (value ?? null));

/** The next due pending message of the user, locked; other relays skip it. */
async function claimDue(client, userId) {
  const { rows } = await client.query(
    `select id::text as id, dedup_key, payload ->> $4::text as "to", payload ->> $5::text as subject,
            payload ->> $6::text as body, attempt_count
       from outbox_messages
      where user_id = $1::uuid and status = $2::text and topic = $3::text and available_at <= now()
      order by available_at, created_at, id
      limit 1
      for update skip locked`,
    [userId, status.pending, topic, 'to', 'subject', 'body'],
  );
  return rows[0];
}

async function markSent(client, id) {
  const { rows } = await client.query(
    `update outbox_messages
        set status = $2::text, sent_at = clock_timestamp(), attempt_count = attempt_count + 1, last_error = null
      where id = $1::uuid
      returning attempt_count`,
    [id, status.sent],
  );
  return rows[0].attempt_count;
}

async function markFailed(client, id, error, backoffMs) {
  const { rows } = await client.query(
    `update outbox_messages
        set attempt_count = attempt_count + 1, last_error = $2::text,
            available_at = now() + $3::int * interval '1 millisecond'
      where id = $1::uuid
      returning attempt_count, available_at`,
    [id, error, backoffMs],
  );
  return { attempts: rows[0].attempt_count, nextAttemptAt: iso(rows[0].available_at) };
}

/** One line for a failed send: the HTTP status and body, or the network error and its cause. */
function describeSendError(error) {
  const cause = error?.cause;
  if (cause && (cause.code || cause.message)) return `${error.message}: ${cause.message ?? ''}${cause.code ? ` (${cause.code})` : ''}`;
  return error instanceof Error ? error.message : String(error);
}

/** POST <email url>/send with the dedup key as Idempotency-Key; the delivery id, or a throw for a non-2xx. */
async function send(emailUrl, row) {
  const base = emailUrl.endsWith('/') ? emailUrl : `${emailUrl}/`;
  const response = await fetch(new URL('send', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': row.dedup_key },
    body: JSON.stringify({ dedup_key: row.dedup_key, to: row.to, subject: row.subject, body: row.body }),
    signal: AbortSignal.timeout(sendTimeoutMs),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
  try {
    return JSON.parse(text).delivery_id ?? null;
  } catch {
    return null;
  }
}

/** Claims, sends and settles one due row. False when none was due. */
async function relayOne(client, settings) {
  await client.query('begin');
  try {
    await client.query('select set_config($1::text, $2::text, true)', ['app.current_user_id', settings.userId]);
    const row = await claimDue(client, settings.userId);
    if (!row) {
      await client.query('commit');
      return false;
    }
    emit('sending', { outbox_id: row.id, dedup_key: row.dedup_key, attempt: row.attempt_count + 1 });
    if (settings.bug === 'dispatch-before-send') {
      // The bug: the row is 'sent' before anything was sent. A failed (or killed) send loses the email.
      const attempts = await markSent(client, row.id);
      await client.query('commit');
      try {
        const deliveryId = await send(settings.emailUrl, row);
        emit('dispatched', { outbox_id: row.id, dedup_key: row.dedup_key, attempts, delivery_id: deliveryId });
      } catch (error) {
        emit('send_failed', { outbox_id: row.id, dedup_key: row.dedup_key, attempts, error: describeSendError(error), next_attempt_at: null });
      }
      return true;
    }
    let deliveryId;
    try {
      deliveryId = await send(settings.emailUrl, row);
    } catch (error) {
      const message = describeSendError(error);
      const { attempts, nextAttemptAt } = await markFailed(client, row.id, message, settings.backoffMs);
      await client.query('commit');
      emit('send_failed', { outbox_id: row.id, dedup_key: row.dedup_key, attempts, error: message, next_attempt_at: nextAttemptAt });
      return true;
    }
    const attempts = await markSent(client, row.id);
    await client.query('commit');
    emit('dispatched', { outbox_id: row.id, dedup_key: row.dedup_key, attempts, delivery_id: deliveryId });
    return true;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

async function connect(databaseUrl) {
  // connectionString alone: application_name and the rest come from the URL as given.
  const client = new pg.Client({ connectionString: databaseUrl });
  // Without a listener, a connection whose backend dies crashes the process.
  client.on('error', (error) => process.stderr.write(`relay: connection lost: ${error.message}\n`));
  await client.connect();
  return client;
}

async function main() {
  const bug = exampleBug(process.env);
  const databaseUrl = required('DATABASE_URL');
  const settings = {
    userId: required('USER_ID'),
    emailUrl: required('EMAIL_API_URL'),
    pollMs: count('POLL_MS', 100),
    backoffMs: count('BACKOFF_MS', 200),
    bug,
  };
  let stopping = false;
  let wake = () => {};
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    emit('stopping', { signal });
    wake();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const pause = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  // The first connection must work (bad settings end the relay at once); later ones are retried.
  let client = await connect(databaseUrl);
  emit('relay_started', { user_id: settings.userId, email_url: settings.emailUrl, poll_ms: settings.pollMs, backoff_ms: settings.backoffMs, bug: bug ?? null });
  while (!stopping) {
    try {
      client ??= await connect(databaseUrl);
      const worked = await relayOne(client, settings);
      if (!worked) await pause(settings.pollMs);
    } catch (error) {
      // A lost connection or a refused statement: say so, reconnect after the backoff, go on.
      emit('relay_error', { error: error instanceof Error ? error.message : String(error), error_code: error?.code ?? null });
      await client?.end().catch(() => {});
      client = undefined;
      await pause(settings.backoffMs);
    }
  }
  await client?.end().catch(() => {});
}

main().then(
  () => process.stdout.write('', () => process.exit(0)),
  (error) => {
    process.stderr.write(`relay: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
