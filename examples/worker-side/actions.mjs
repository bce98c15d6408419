// What each tool does to fixtures/other-reconciler's tables: one SQL operation per
// function, every value a bind parameter (status words too). Each runs on the
// call's transaction, app.current_user_id already set (journal.mjs), so row-level
// security sees only the caller's user.
import { lockWorkerForRead, setTenant } from './journal.mjs';

const pending = { pending: 'pending', claimed: 'claimed', done: 'done' };

const iso = (value) => (value instanceof Date ? value.toISOString() : (value ?? null));

async function now(client) {
  const { rows } = await client.query('select clock_timestamp() as at');
  return iso(rows[0].at);
}

/**
 * The user's next pending transaction (or one whose claim lease ran out), locked
 * FOR UPDATE SKIP LOCKED so that a second Worker takes the next row at once instead
 * of waiting for this one. Plain FOR UPDATE under the no-skip-locked bug.
 */
async function lockNextPending(client, userId, skipLocked) {
  const { rows } = await client.query(
    `select p.id::text as transaction_id, p.external_ref, p.amount::text as amount,
            round(p.amount * 100)::int as amount_cents, p.memo, u.email as user_email
       from pending_transactions p
       join users u on u.id = p.user_id
      where p.user_id = $1::uuid
        and (p.status = $2::text or (p.status = $3::text and p.lease_expires_at < now()))
      order by p.created_at, p.id
      limit 1
      for update of p${skipLocked ? ' skip locked' : ''}`,
    [userId, pending.pending, pending.claimed],
  );
  return rows[0];
}

async function markClaimed(client, transactionId, workerId, leaseMs) {
  const { rows } = await client.query(
    `update pending_transactions
        set status = $2::text, claimed_by = $3::text,
            lease_expires_at = now() + $4::int * interval '1 millisecond'
      where id = $1::uuid
      returning lease_expires_at, clock_timestamp() as locked_at`,
    [transactionId, pending.claimed, workerId, leaseMs],
  );
  return rows[0];
}

/**
 * claim_transaction. Holds the row lock holdMs before the transaction commits (the
 * race drill's visible overlap); `hold` ends early on SIGUSR2. Nothing found ends the run.
 */
export async function claimTransaction(client, { userId, workerId, leaseMs, holdMs, skipLocked, hold, onLocked }) {
  const row = await lockNextPending(client, userId, skipLocked);
  if (!row) {
    const nothing = {
      transaction_id: null,
      external_ref: null,
      amount: null,
      amount_cents: null,
      memo: null,
      user_email: null,
      lease_expires_at: null,
      locked_at: null,
      released_at: await now(client),
    };
    return { result: nothing, endsRun: true };
  }
  const claimed = await markClaimed(client, row.transaction_id, workerId, leaseMs);
  onLocked(row.transaction_id);
  if (holdMs > 0) await hold(holdMs);
  const result = {
    ...row,
    lease_expires_at: iso(claimed.lease_expires_at),
    locked_at: iso(claimed.locked_at),
    released_at: await now(client),
  };
  return { result };
}

async function insertExpense(client, { userId, idempotencyKey, transactionId, amount, memo }) {
  const { rows } = await client.query(
    `insert into expenses (user_id, idempotency_key, bank_txn_id, amount, memo)
     values ($1::uuid, $2::text, $3::uuid, $4::numeric, $5::text)
     on conflict (idempotency_key) do nothing
     returning id::text as id`,
    [userId, idempotencyKey, transactionId, amount, memo],
  );
  return rows[0]?.id ?? null;
}

/** The expense a repeated write found (null when the key is another user's: RLS hides it). */
async function expenseByKey(client, idempotencyKey) {
  const { rows } = await client.query(
    `select id::text as id
       from expenses
      where idempotency_key = $1::text`,
    [idempotencyKey],
  );
  return rows[0]?.id ?? null;
}

async function markDone(client, transactionId) {
  const { rowCount } = await client.query(
    `update pending_transactions
        set status = $2::text, done_at = now(), lease_expires_at = null
      where id = $1::uuid and status <> $2::text`,
    [transactionId, pending.done],
  );
  return rowCount === 1;
}

/** record_expense: INSERT ... ON CONFLICT (idempotency_key) DO NOTHING, and the pending row 'done'. */
export async function recordExpense(client, { userId, idempotencyKey, transactionId, amount, memo }) {
  const inserted = await insertExpense(client, { userId, idempotencyKey, transactionId, amount, memo });
  const expenseId = inserted ?? (await expenseByKey(client, idempotencyKey));
  const processed = transactionId ? await markDone(client, transactionId) : false;
  return {
    result: {
      expense_id: expenseId,
      idempotency_key: idempotencyKey,
      inserted: inserted !== null,
      transaction_id: transactionId,
      processed,
    },
  };
}

async function insertOutbox(client, { userId, runId, dedupKey, payload }) {
  const { rows } = await client.query(
    `insert into outbox_messages (user_id, run_id, dedup_key, topic, payload)
     values ($1::uuid, $2::uuid, $3::text, $4::text, $5::jsonb)
     on conflict (dedup_key) do nothing
     returning id::text as id`,
    [userId, runId, dedupKey, 'email', JSON.stringify(payload)],
  );
  return rows[0]?.id ?? null;
}

async function outboxByKey(client, dedupKey) {
  const { rows } = await client.query(
    `select id::text as id
       from outbox_messages
      where dedup_key = $1::text`,
    [dedupKey],
  );
  return rows[0]?.id ?? null;
}

/** queue_email: an outbox_messages row with payload {to, subject, body}, ON CONFLICT (dedup_key) DO NOTHING. */
export async function queueEmail(client, { userId, runId, dedupKey, to, subject, body }) {
  const inserted = await insertOutbox(client, { userId, runId, dedupKey, payload: { to, subject, body } });
  const outboxId = inserted ?? (await outboxByKey(client, dedupKey));
  return { result: { outbox_id: outboxId, dedup_key: dedupKey, queued: inserted !== null } };
}

/**
 * The run to resume: the given one, or the Worker's latest crashed run (still
 * 'running', ended_at null). Its length is what its run_started event said.
 */
async function findRun(client, { userId, workerId, runId }) {
  const { rows } = await client.query(
    `select r.id::text as id, r.user_id::text as user_id, r.worker_id, r.status, r.started_at,
            coalesce(
              (select (e.payload ->> $5::text)::int
                 from agent_events e
                where e.run_id = r.id and e.event_type = $6::text
                order by e.id
                limit 1),
              (select max(t.turn_index) from turns t where t.run_id = r.id),
              0) as total_turns
       from runs r
      where r.worker_id = $1::text and r.user_id = $2::uuid
        and (case when $3::uuid is null then r.status = $4::text and r.ended_at is null else r.id = $3::uuid end)
      order by r.started_at desc, r.id desc
      limit 1`,
    [workerId, userId, runId ?? null, 'running', 'total_turns', 'run_started'],
  );
  const run = rows[0];
  return run ? { ...run, started_at: iso(run.started_at) } : null;
}

async function turnsOf(client, runId) {
  const { rows } = await client.query(
    `select turn_index as turn, status
       from turns
      where run_id = $1::uuid
      order by turn_index`,
    [runId],
  );
  return rows;
}

async function completedCallsOf(client, runId) {
  const { rows } = await client.query(
    `select t.turn_index as turn, c.seq as call, c.tool_name as tool, c.output as result
       from tool_calls c
       join turns t on t.id = c.turn_id
      where t.run_id = $1::uuid and c.status = $2::text
      order by t.turn_index, c.seq, c.started_at`,
    [runId, 'completed'],
  );
  return rows;
}

/**
 * read_journal, in a transaction of its own: waits for the Worker's call in flight
 * (the advisory lock), then reads the run, its turns and its completed calls.
 */
export async function readJournal(client, { userId, workerId, runId }) {
  await client.query('begin');
  try {
    await lockWorkerForRead(client, workerId);
    await setTenant(client, userId);
    const run = await findRun(client, { userId, workerId, runId });
    const answer = run
      ? { run, turns: await turnsOf(client, run.id), calls: await completedCallsOf(client, run.id) }
      : { run: null, turns: [], calls: [] };
    await client.query('commit');
    return answer;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}
