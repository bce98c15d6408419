// Drill 5, outbox_relay_retry_test (Lesson 5, outbox). An email queued in the
// outbox (through the tool server's `queue` tool, as the Worker would) is sent by
// the relay, a separate process, to the email service:
//   - the first send hits a network blip: the row must stay pending with attempts 1,
//     last_error and a later next_attempt_at, read by query;
//   - the retry reaches the email service, and the relay is SIGKILLed after that
//     send and before its commit: the row must still read pending (a relay that
//     marks dispatched before it sends shows up here);
//   - the restarted relay sends it again and commits: the row ends dispatched, and
//     the email service (whose idempotency key is the row's dedup_key) counts one
//     delivery for the dedup_key however many requests it took.
// The oracle snapshots the row before the first send and after the dispatch.
// Every relay it starts claims only the drill tenant's rows: the target's own pending
// emails are never sent to the loopback email service nor marked dispatched, and no
// row left due by an earlier run can take the blip meant for the drill's row.
// When the profile declares the operator's own relay (processes.relay), the blip,
// kill and restart steps drill theirs instead (operator-relay.ts), watched from the
// database and the email stand-in only, and judged by operator-verdict.ts.
import { randomUUID } from 'node:crypto';
import { startRelay } from '../../reconciler/launch.js';
import { drillTenantStep } from '../common-steps.js';
import { oracleSatisfied } from '../evidence.js';
import { callTool, journalArgs, withToolsClient } from '../mcp.js';
import { hasOperator } from '../operator-side.js';
import { CouldNotDetermine } from '../runner.js';
import { shownSql } from '../sql.js';
import type { ProfileNames } from '../../postgres/profile/index.js';
import { need, type Drill } from '../types.js';
import { emailCountsFor } from './email-deliveries.js';
import { openRelayEpisode } from './episode.js';
import { operatorBlip, operatorKill, operatorRestart } from './operator-relay.js';
import { operatorOutboxVerdict } from './operator-verdict.js';
import { readRow, rowSql, showRow } from './outbox-row.js';
import { claimSql, dispatchedSql, failedSql, queueSql, sessionsSql } from './shown-sql.js';
import { killWindowMs, relay, relayCounts, relayLines, relayOptions, waitRelay } from './relay.js';
import type { State } from './state.js';
import { outboxVerdict } from './verdict.js';

/** Whether the drill runs the operator's relay: the profile declares one (processes.relay). */
const operatorRelay = (n: ProfileNames) => Boolean(n.profile.processes?.relay);

export const outboxRelayRetryTest: Drill<State> = {
  number: 5,
  key: 'outbox_relay_retry_test',
  title: 'Outbox relay retry',
  lesson: 5,
  habit: 'outbox',
  tables: ['outbox'],
  needs: ['tenants', 'outbox', 'runs', 'turns', 'tool_calls', 'agent_events'],
  breakDescription: 'the relay sends without the dedup_key as the idempotency key: the re-send after the kill is a second delivery',
  fix:
    'queue side effects in an outbox row with a unique dedup_key; let the relay claim pending rows with FOR UPDATE SKIP LOCKED, ' +
    'record attempts, last_error and next_attempt_at on failure, mark dispatched only in the commit after the send, and send ' +
    'the dedup_key as the idempotency key so a re-send after a crash is not a second delivery',
  init: () => ({ oracleOk: false }),
  steps: [
    drillTenantStep(
      'outbox',
      'The drill queues its own outbox row in a tenant of its own, and its relay claims only that tenant\'s rows: ' +
        'the outbox rows already in the target are never sent or marked, and the drill can run again.',
      {
        look: 'tenant is a fresh drill-outbox tenant with no outbox rows, so the only row the relay can claim is the one the drill queues next.',
        mistake: "Pointing a test relay at a real outbox. It would claim other tenants' pending emails, send them to a stand-in service and mark them dispatched, and those emails would never reach anyone.",
      },
    ),
    {
      id: 'email-service',
      title: 'Start the email service',
      why: 'A transactional email API on loopback: one delivery per idempotency key, and it can be told to drop the next request (a network blip).',
      hint: {
        look: 'email_service is a loopback URL shaped like a transactional email API. It makes one delivery per Idempotency-Key however often it is asked, and counts requests and deliveries per key for the last step.',
        mistake: 'Assuming the email provider deduplicates by itself. Most APIs deduplicate only requests that carry an idempotency key, and only for a while; without the header every retry is another email.',
      },
      async run(ctx, state) {
        // The operator's relay puts the dedup key where its profile says; the reference relay sends the header.
        const relaySpec = ctx.profile.profile.processes?.relay;
        const email = relaySpec ? await ctx.system.emailService({ dedupKey: relaySpec.dedup_key }) : await ctx.system.emailService();
        ctx.defer(() => ctx.system.stop(email.name));
        state.email = email;
        ctx.observe('email_service', email.url);
      },
    },
    {
      id: 'queue',
      title: 'Queue an email through the tool server',
      why: 'The Worker never sends email itself: its `queue` call writes an outbox row, in the same transaction as its journal, for the relay to send.',
      hint: {
        look: 'queued_row should read pending with attempts 0, and outbox_id must match the row found by its dedup_key. The Worker only wrote a row: no email has been sent yet.',
        mistake: 'Sending the email from the Worker during its turn. If the turn then rolls back, the email went out for work that never happened. An outbox row written in the same transaction as the work commits with it, or not at all.',
      },
      sql: (n) => [queueSql(n), rowSql(n)].map(shownSql),
      async run(ctx, state) {
        const tenant = need(state.tenant, 'the drill tenant');
        // The session's shared tool server: the queue call is the Worker's, unbroken in every run of this drill.
        const server = await ctx.system.sharedToolServer();
        const dedupKey = `expense-recorded:${tenant.id}:outbox-drill`;
        const answer = await withToolsClient(server, (client) =>
          callTool(client, 'queue', {
            journal: journalArgs(tenant.id, tenant.worker, 1, 1, 1, true, randomUUID()),
            dedup_key: dedupKey,
            recipient: `finance@${tenant.id}.example`,
            subject: 'Expense recorded (outbox drill)',
            body: `An expense was recorded for ${tenant.id}; this email is sent by the outbox relay.`,
          }),
        );
        ctx.observe('queue_call', answer.isError ? `error: ${answer.text}` : answer.text, !answer.isError);
        if (answer.isError) throw new Error(`the queue tool failed: ${answer.text}`);
        const n = ctx.profile.names;
        const row = await readRow(ctx, dedupKey);
        ctx.observe('queued_row', showRow(row, n), row?.status === n.outbox.values.pending && (row.attempts ?? 0) === 0);
        if (!row) throw new Error(`the queue tool answered ${answer.text} but no outbox row has dedup_key ${dedupKey}`);
        if (answer.value?.outbox_id !== row.id) {
          throw new Error(`the queue tool answered outbox_id ${String(answer.value?.outbox_id)} but the row is ${row.id}`);
        }
        ctx.observe('outbox_id', row.id);
        ctx.observe('dedup_key', dedupKey);
        state.queued = { id: row.id, dedupKey };
        state.rowQueued = row;
      },
    },
    {
      id: 'blip',
      title: 'Start the relay; its first send hits a network blip',
      why:
        'The email service drops the connection of the next request. The relay must record the failure (attempts, last_error, ' +
        'next_attempt_at) and leave the row pending for a retry, never drop it or mark it sent.',
      hint: {
        look: 'send_failed shows attempts=1 and the network error. after_blip must still read pending, with attempts 1, last_error set and next_attempt_at later than when it was queued, so the retry waits.',
        mistake: 'Marking the row failed, or deleting it, on the first error. A blip is transient: the row stays pending with retry bookkeeping. Retrying at once in a tight loop, with no next_attempt_at, hammers a struggling provider.',
      },
      sql: (n) => (operatorRelay(n) ? [rowSql(n)] : [claimSql(n), failedSql(n), rowSql(n)]).map(shownSql),
      async run(ctx, state) {
        if (hasOperator(ctx.profile, 'relay')) return operatorBlip(ctx, state);
        const { id, dedupKey } = need(state.queued, 'the queued outbox row');
        const tenant = need(state.tenant, 'the drill tenant');
        const email = need(state.email, 'the email service');
        const sup = ctx.system.supervisor();
        const n = ctx.profile.names;
        const o = n.outbox;
        const episode = await openRelayEpisode(ctx, id, dedupKey);
        state.episode = episode;
        await email.failNext(1, 'reset');
        episode.log('email service: the next request will have its connection reset');
        await startRelay(sup, await relayOptions(ctx, email, tenant.id, killWindowMs));
        ctx.defer(() => ctx.system.stop(relay));
        const failed = await waitRelay(ctx, 'send_failed', id);
        episode.log(`relay: ${JSON.stringify(failed)}`);
        ctx.observe('send_failed', `attempts=${String(failed.attempts)} error=${String(failed.error)}`);
        const row = await readRow(ctx, dedupKey);
        const queued = need(state.rowQueued, 'the row as queued');
        state.rowAfterBlip = row;
        ctx.observe(
          'after_blip',
          showRow(row, n),
          row?.status === o.values.pending &&
            (!o.attempts || row.attempts === 1) &&
            (!o.last_error || row.last_error !== null) &&
            (!o.next_attempt_at || Date.parse(row.next_attempt_at ?? '') > Date.parse(queued.next_attempt_at ?? '')),
        );
      },
    },
    {
      id: 'kill',
      title: 'The retry is sent: kill the relay before it commits',
      why:
        'A relay can die after the email went out and before it recorded that: the row must still read pending (a relay that ' +
        'marks dispatched before it sends would lose the email on a crash), so the next relay sends it again.',
      hint: {
        look: 'retry_sent shows a delivery_id: the email left. relay_killed must say SIGKILL, after_kill must still read pending with dispatched_at null, and email_at_kill counts one delivery for the dedup_key.',
        mistake: 'Marking the row dispatched before the send. If the relay dies in between, the row says sent and the email never went out: a silent loss. Commit dispatched only after the provider answered; a crash then means a re-send.',
      },
      operator: 'kill',
      sql: (n) => [shownSql(rowSql(n)), ...(operatorRelay(n) ? [shownSql(sessionsSql)] : [])],
      async run(ctx, state) {
        if (hasOperator(ctx.profile, 'relay')) return operatorKill(ctx, state);
        const { id, dedupKey } = need(state.queued, 'the queued outbox row');
        const email = need(state.email, 'the email service');
        const episode = need(state.episode, 'the relay episode');
        const sup = ctx.system.supervisor();
        const sent = await waitRelay(ctx, 'sent_pausing', id);
        episode.log(`relay: ${JSON.stringify(sent)}`);
        ctx.observe('retry_sent', `delivery_id=${String(sent.delivery_id)}, not yet committed`);
        const pid = sup.get(relay)?.pid;
        await ctx.operator.request(
          {
            kind: 'kill',
            process: relay,
            prompt: `The relay sent ${id} and has not committed yet: kill it (SIGKILL)`,
          },
          () => ctx.system.kill(relay, 'SIGKILL'),
        );
        const info = sup.get(relay);
        episode.log(`relay pid ${String(pid)} ended: ${info?.signal ?? `exit ${String(info?.exitCode)}`}`);
        state.relayKilled = `pid ${String(pid)} by ${info?.signal ?? `exit ${String(info?.exitCode)}`}`;
        ctx.observe('relay_killed', state.relayKilled, info?.signal === 'SIGKILL');
        const committed = relayLines(ctx, id, 'dispatched');
        if (committed.length > 0) {
          throw new CouldNotDetermine(
            `the relay committed ${id} before it was killed: the kill must come within the ${killWindowMs} ms between its send and its commit`,
          );
        }
        const n = ctx.profile.names;
        const row = await readRow(ctx, dedupKey);
        state.rowAfterKill = row;
        ctx.observe('after_kill', showRow(row, n), row?.status === n.outbox.values.pending && row.dispatched_at === null);
        const forKey = await emailCountsFor(email, dedupKey);
        state.emailAtKill = forKey;
        ctx.observe('email_at_kill', `${forKey.requests} requests, ${forKey.deliveries} deliveries for ${dedupKey}`);
      },
    },
    {
      id: 'restart',
      title: 'Restart the relay',
      why:
        'The new relay finds the row pending and sends it again. The email service already delivered it once; the dedup_key, ' +
        'sent as the idempotency key, must keep that re-send from being a second email.',
      hint: {
        look: 'resent_after_restart shows the new relay sent again; final_row must read dispatched with dispatched_at set; email_deliveries must say 1 delivery in several requests, with the dedup_key carried as the Idempotency-Key.',
        mistake: 'Treating the re-send as a relay bug to remove. After a crash between send and commit a re-send is unavoidable; the dedup_key sent as the idempotency key makes it harmless. Without it, as in the break, two emails go out.',
      },
      operator: 'restart',
      sql: (n) => (operatorRelay(n) ? [rowSql(n)] : [dispatchedSql(n), rowSql(n)]).map(shownSql),
      async run(ctx, state) {
        if (hasOperator(ctx.profile, 'relay')) return operatorRestart(ctx, state);
        const { id, dedupKey } = need(state.queued, 'the queued outbox row');
        const tenant = need(state.tenant, 'the drill tenant');
        const email = need(state.email, 'the email service');
        const episode = need(state.episode, 'the relay episode');
        const sup = ctx.system.supervisor();
        await ctx.operator.request(
          { kind: 'restart', process: relay, prompt: `${id} still reads pending after the kill: restart the relay` },
          async () => {
            await startRelay(sup, await relayOptions(ctx, email, tenant.id, 0));
          },
        );
        ctx.observe('relay_restarted', `pid ${String(sup.get(relay)?.pid)}`);
        const resent = await waitRelay(ctx, 'sending', id);
        episode.log(`restarted relay: ${JSON.stringify(resent)}`);
        const dispatched = await waitRelay(ctx, 'dispatched', id);
        episode.log(`restarted relay: ${JSON.stringify(dispatched)}`);
        ctx.observe('resent_after_restart', `attempt ${String(resent.attempt)}`);
        ctx.observe('dispatched', `attempts=${String(dispatched.attempts)} delivery_id=${String(dispatched.delivery_id)}`);
        const result = await episode.finish(0);
        state.oracleOk = oracleSatisfied(result);
        state.oracleEvidence = result.expectations.map((expectation) => `${expectation.predicate}: ${expectation.verdict}`).join('; ');
        await ctx.system.stop(relay);

        const n = ctx.profile.names;
        const row = await readRow(ctx, dedupKey);
        state.rowFinal = row;
        ctx.observe(
          'final_row',
          showRow(row, n),
          row?.status === n.outbox.values.dispatched && (!n.outbox.dispatched_at || row.dispatched_at !== null),
        );
        const forKey = await emailCountsFor(email, dedupKey);
        state.emailFinal = forKey;
        ctx.observe(
          'email_deliveries',
          `${forKey.deliveries} deliveries in ${forKey.requests} requests for ${dedupKey} (${forKey.withHeader} carried it as the Idempotency-Key)`,
          forKey.deliveries === 1,
        );
        state.counts = relayCounts(ctx, id);
      },
    },
  ],
  verdict: (ctx, state) => (hasOperator(ctx.profile, 'relay') ? operatorOutboxVerdict(ctx, state) : outboxVerdict(ctx, state)),
};
