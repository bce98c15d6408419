// The pgbench script of the fleet drill's baseline: one turn (claim, write, queue)
// as the tool server's journaled() runs it on the reference schema, statement for
// statement (baseline.ts says how it was traced and where it must differ).

export interface ScriptOptions {
  skipLocked: boolean;
}

/**
 * The pgbench script of one turn. Variables (-D): tag, tenants, per (turns a run),
 * t (transactions a client), lease_ms, k (the client's turn counter, from 0).
 * Variables persist across a client's transactions, so k counts its turns.
 */
export function baselineScript(options: ScriptOptions): string {
  const lock = options.skipLocked ? 'for update skip locked' : 'for update';
  const openCall = (call: number, tool: string, args: string) => `-- journal.ts openCall: BEGIN
begin;
-- openCall: the run inserted ON CONFLICT DO NOTHING (a CTE: pgbench's way to read the row count)
with created as (
  insert into "public"."runs" ("id", "tenant_id", "worker", "status", "total_turns", "started_at")
  values (:run_id, :tenant, :worker, 'running', :of, now())
  on conflict ("id") do nothing returning "id"::text as id
) select count(*) as run_created from created \\gset
\\if :run_created = 1
-- openCall: run_started event (insertEvent), only when the run is new
insert into "public"."agent_events" ("run_id", "tenant_id", "turn_no", "event_type", "detail", "created_at")
values (:run_id, :tenant, null, 'run_started',
        jsonb_build_object('tenant_id', :tenant::text, 'worker', :worker::text, 'total_turns', :of::int, 'status', 'running'), now());
\\endif
-- openCall: the run read back (status, tenant, worker, total_turns checked by the tool server)
select "status"::text as status, "tenant_id"::text as tenant_id, "tenant_id" = :tenant as same_tenant,
       "worker"::text as worker, "total_turns"::int as total_turns
  from "public"."runs" where "id" = :run_id;
${
  call === 1
    ? `-- openTurn: the turn read first (absent on the turn's first call) ...
select "id"::text as id from "public"."turns" where "run_id" = :run_id and "turn_no" = :turn;
-- openTurn: ... and inserted
insert into "public"."turns" ("run_id", "turn_no", "status", "started_at")
values (:run_id, :turn, 'running', now()) returning "id"::text as id \\gset turn_`
    : `-- openTurn: the turn read (found: call 1 inserted it)
select "id"::text as id from "public"."turns" where "run_id" = :run_id and "turn_no" = :turn \\gset turn_`
}
-- openCall: the tool_calls row, status 'started'
insert into "public"."tool_calls" ("run_id", "turn_id", "turn_no", "call_no", "tool", "arguments", "status", "started_at")
values (:run_id, :turn_id, :turn, ${call}, '${tool}', ${args}, 'started', clock_timestamp())
returning "id"::text as id \\gset call_
-- openCall: COMMIT (the in-flight call is visible)
commit;
-- journaled(): the action's transaction, the tenant set for row-level security
begin;
select set_config('app.tenant_id', :tenant, true);
savepoint action;`;

  const completeCall = (tool: string, result: string, detail: string) => `-- journaled(): the action succeeded
release savepoint action;
-- completeCall -> finishCall: the call completed with its result
update "public"."tool_calls" tc
   set "status" = 'completed', "result" = ${result}, "error" = null, "error_code" = null, "finished_at" = clock.now,
       "duration_ms" = round(extract(epoch from (clock.now - tc."started_at")) * 1000)::int
  from (select clock_timestamp() as now) clock
 where tc."id" = :call_id;
-- completeCall: tool_called event
insert into "public"."agent_events" ("run_id", "tenant_id", "turn_no", "event_type", "detail", "created_at")
values (:run_id, :tenant, :turn, 'tool_called', jsonb_build_object('tool', '${tool}'::text, ${detail}), now());`;

  const lockWorker = `-- journaled() step 1: lockWorker (journal.ts), the Worker's session-level advisory lock
select pg_advisory_lock(hashtextextended(:lock_key, 0));`;
  const unlockWorker = `-- journaled() finally: unlockWorker
select pg_advisory_unlock(hashtextextended(:lock_key, 0));`;

  const dedupKey = `'expense-recorded:' || :tenant::text || ':' || :claimed_id::text`;
  const subject = `'Expense recorded: ' || :claimed_id::text`;
  const body =
    `'Transaction ' || :claimed_id::text || ' (' || to_char(:claimed_amount_cents::int / 100.0, 'FM999999999990.00') || ` +
    `') was recorded as expense ' || :expense_id::text || '.'`;

  return `-- sor-drills fleet --baseline: one reconciled pending transaction as the tool server runs it
-- (src/reconciler/tools.ts journaled() for claim, write and queue; journal.ts; actions.ts).
-- Claims ${options.skipLocked ? 'FOR UPDATE SKIP LOCKED' : 'with plain FOR UPDATE (the --no-skip-locked side)'}.
\\set k :k + 1
\\set run 1 + (:k - 1) / :per
\\set turn 1 + (:k - 1) % :per
\\set of least(:per, :t - (:run - 1) * :per)
\\if :k = 1
-- pgbench bookkeeping, not a tool server statement: the client's Worker name, lock key and tenant
select :tag::text || '-w' || :client_id::text as worker,
       'sor-worker:' || :tag::text || '-w' || :client_id::text as lock_key,
       :tag::text || '-t' || (:client_id::int % :tenants::int)::text as tenant \\gset
\\endif
\\if :turn = 1
-- pgbench bookkeeping, not a tool server statement: the run id of the client's next run
select :tag::text || '-c' || :client_id::text || '-r' || :run::text as run_id \\gset
\\endif

-- ===== call 1: claim =====
${lockWorker}
${openCall(1, 'claim', `jsonb_build_object('tenant_id', :tenant::text)`)}
-- actions.ts claim: the next pending row of the tenant (or one whose lease expired), locked
select "id"::text as id, "amount_cents"::int as amount_cents, "description"::text as description
  from "public"."pending_transactions"
 where "tenant_id" = :tenant
   and ("status" = 'pending' or ("status" = 'claimed' and "locked_until" < clock_timestamp()))
 order by "public"."pending_transactions"."id"
 limit 1
 ${lock} \\gset claimed_
-- actions.ts claim: marked claimed with the lease
update "public"."pending_transactions"
   set "status" = 'claimed', "claimed_by" = :worker, "locked_until" = clock_timestamp() + :lease_ms * interval '1 millisecond'
 where "id" = :claimed_id
returning clock_timestamp() as locked_at, "locked_until"::timestamptz as locked_until \\gset claimed_
-- actions.ts claim: released_at (no hold: the fleet's claims hold 0 ms)
select clock_timestamp() as released_at \\gset claimed_
${completeCall(
  'claim',
  `jsonb_build_object('transaction_id', :claimed_id::text, 'amount_cents', :claimed_amount_cents::int,
         'description', :claimed_description::text, 'locked_at', :claimed_locked_at::timestamptz,
         'released_at', :claimed_released_at::timestamptz, 'locked_until', :claimed_locked_until::timestamptz)`,
  `'call_no', 1, 'status', 'completed', 'transaction_id', :claimed_id::text,
         'amount_cents', :claimed_amount_cents::int, 'description', :claimed_description::text`,
)}
-- journaled(): COMMIT (the claim does not end the turn: it found a row)
commit;
${unlockWorker}

-- ===== call 2: write =====
${lockWorker}
${openCall(
  2,
  'write',
  `jsonb_build_object('tenant_id', :tenant::text, 'idempotency_key', :tenant::text || ':' || :claimed_id::text,
         'transaction_id', :claimed_id::text, 'amount_cents', :claimed_amount_cents::int, 'description', :claimed_description::text)`,
)}
-- actions.ts write: the expense, ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
-- (no row back means a second write of the same key: pgbench stops there, the baseline fails)
insert into "public"."expenses" ("tenant_id", "idempotency_key", "transaction_id", "amount_cents", "description")
values (:tenant, :tenant::text || ':' || :claimed_id::text, :claimed_id, :claimed_amount_cents, :claimed_description)
on conflict ("tenant_id", "idempotency_key") do nothing
returning "id"::text as id \\gset expense_
-- actions.ts write: the pending row processed (RETURNING: pgbench's way to read the row count)
update "public"."pending_transactions"
   set "status" = 'processed', "processed_by" = :worker, "processed_at" = clock_timestamp(), "locked_until" = null
 where "id" = :claimed_id and "status" <> 'processed'
returning true as processed \\gset write_
${completeCall(
  'write',
  `jsonb_build_object('inserted', true, 'expense_id', :expense_id::text, 'idempotency_key', :tenant::text || ':' || :claimed_id::text,
         'transaction_id', :claimed_id::text, 'processed', :write_processed::boolean)`,
  `'call_no', 2, 'status', 'completed', 'transaction_id', :claimed_id::text, 'amount_cents', :claimed_amount_cents::int,
         'idempotency_key', :tenant::text || ':' || :claimed_id::text, 'inserted', true, 'expense_id', :expense_id::text`,
)}
commit;
${unlockWorker}

-- ===== call 3: queue (ends_turn) =====
${lockWorker}
${openCall(
  3,
  'queue',
  `jsonb_build_object('tenant_id', :tenant::text, 'dedup_key', ${dedupKey},
         'recipient', 'finance@' || :tenant::text || '.example', 'subject', ${subject},
         'body', ${body}, 'transaction_id', :claimed_id::text)`,
)}
-- actions.ts queue: the outbox row, ON CONFLICT (dedup_key) DO NOTHING
insert into "public"."outbox" ("tenant_id", "run_id", "dedup_key", "recipient", "subject", "body")
values (:tenant, :run_id, ${dedupKey}, 'finance@' || :tenant::text || '.example', ${subject}, ${body})
on conflict ("dedup_key") do nothing
returning "id"::text as id \\gset outbox_
${completeCall(
  'queue',
  `jsonb_build_object('outbox_id', :outbox_id::text, 'queued', true, 'dedup_key', ${dedupKey})`,
  `'call_no', 3, 'status', 'completed', 'transaction_id', :claimed_id::text, 'outbox_id', :outbox_id::text,
         'dedup_key', ${dedupKey}, 'recipient', 'finance@' || :tenant::text || '.example',
         'subject', ${subject}, 'queued', true`,
)}
-- completeCall -> endTurn: the turn completed
update "public"."turns" set "status" = 'completed', "finished_at" = clock_timestamp() where "id" = :turn_id;
-- completeCall: the turn's completed calls counted
select count(*)::int as tool_calls from "public"."tool_calls" where "turn_id" = :turn_id and "status" = 'completed' \\gset turn_
-- completeCall: turn_completed event
insert into "public"."agent_events" ("run_id", "tenant_id", "turn_no", "event_type", "detail", "created_at")
values (:run_id, :tenant, :turn, 'turn_completed',
        jsonb_build_object('turn_no', :turn::int, 'status', 'completed', 'tool_calls', :turn_tool_calls::int), now());
\\if :turn = :of
-- completeCall, the run's last turn: the run finished
update "public"."runs" set "status" = 'finished', "finished_at" = clock_timestamp()
 where "id" = :run_id and "status" = 'running';
-- completeCall: the run's totals from its calls' results
select count(*) filter (where c."tool" = 'write'::text and (c."result" ->> 'processed'::text)::boolean)::int as transactions_processed,
       count(*) filter (where c."tool" = 'write'::text and (c."result" ->> 'inserted'::text)::boolean)::int as expenses_written,
       count(*) filter (where c."tool" = 'queue'::text and (c."result" ->> 'queued'::text)::boolean)::int as emails_queued
  from "public"."tool_calls" c join "public"."turns" t on t."id" = c."turn_id"
 where t."run_id" = :run_id and c."status" = 'completed' \\gset totals_
-- completeCall: run_finished event
insert into "public"."agent_events" ("run_id", "tenant_id", "turn_no", "event_type", "detail", "created_at")
values (:run_id, :tenant, :turn, 'run_finished',
        jsonb_build_object('status', 'finished', 'total_turns', :of::int, 'last_turn_no', :turn::int, 'last_turn_status', 'completed',
                           'transactions_processed', :totals_transactions_processed::int,
                           'expenses_written', :totals_expenses_written::int, 'emails_queued', :totals_emails_queued::int), now());
\\endif
commit;
${unlockWorker}
`;
}
