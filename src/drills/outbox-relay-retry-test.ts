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
import { randomUUID } from 'node:crypto';
import type { OracleResult } from '../oracle/index.js';
import { jsonLines, startRelay, type EmailReport, type EmailService, type RelayOptions } from '../reconciler/launch.js';
import type { JsonLine } from '../reconciler/json-lines.js';
import { waitFor } from '../util/wait.js';
import { oracleSatisfied, withEvidence, type EvidenceSpec } from './evidence.js';
import { createDrillTenant, type DrillTenant } from './inputs.js';
import { callTool, journalArgs, withToolsClient } from './mcp.js';
import { CouldNotDetermine } from './runner.js';
import { countWord, query } from './sql.js';
import type { Drill, DrillContext } from './types.js';

const relay = 'relay';
/** Polling and the first retry delay of the drill's relay: small, so the drill takes a couple of seconds. */
const pollMs = 50;
const backoffMs = 200;
/**
 * How long the relay waits between a successful send and its commit: the window in
 * which the operator kills it. Headless the kill comes at once; in the console a
 * person has this long to press k. The restarted relay has no pause.
 */
const killWindowMs = 120_000;
const waitMs = 15_000;
const backlogWaitMs = 30_000;

interface OutboxRow {
  id: string;
  status: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: string;
  dispatched_at: string | null;
}

interface Queued {
  id: string;
  dedupKey: string;
}

interface Episode {
  log(text: string): void;
  /** Lets the oracle take its after-snapshot; resolves with its result. */
  finish(exitCode: number): Promise<OracleResult>;
}

const rowSql =
  'select id, status, attempts, last_error, next_attempt_at, dispatched_at from outbox where dedup_key = $1';

async function readRow(ctx: DrillContext, dedupKey: string): Promise<OutboxRow | undefined> {
  const rows = await query<OutboxRow>(
    ctx,
    `select id, status, attempts, last_error,
            to_char(next_attempt_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as next_attempt_at,
            to_char(dispatched_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as dispatched_at
       from outbox where dedup_key = $1`,
    [dedupKey],
  );
  return rows[0];
}

function showRow(row: OutboxRow | undefined): string {
  if (!row) return 'no row';
  return (
    `${row.id} status=${row.status} attempts=${row.attempts} ` +
    `last_error=${row.last_error === null ? 'null' : JSON.stringify(row.last_error)} ` +
    `next_attempt_at=${row.next_attempt_at} dispatched_at=${row.dispatched_at ?? 'null'}`
  );
}

function times(count: number): string {
  if (count === 1) return 'once';
  if (count === 2) return 'twice';
  return `${countWord(count)} times`;
}

/** The relay's JSON lines (every start of it) about one outbox row. */
function relayLines(ctx: DrillContext, outboxId: string, event: string): JsonLine[] {
  return jsonLines(ctx.system.supervisor(), relay).filter((line) => line.event === event && line.outbox_id === outboxId);
}

async function relayOptions(ctx: DrillContext, email: EmailService, pauseAfterSendMs: number): Promise<RelayOptions> {
  return {
    databaseUrl: await ctx.system.workerUrl(),
    emailUrl: email.url,
    pollMs,
    backoffMs,
    pauseAfterSendMs,
    noKey: ctx.broken,
    role: ctx.roles.worker,
    processName: relay,
  };
}

/**
 * Opens the oracle around an episode that spans several steps: the before-snapshot
 * is taken now, the after-snapshot when finish() is called. If a step fails first,
 * the drill's cleanup finishes it with exit code 1, so the evidence is written anyway.
 */
async function openEpisode(ctx: DrillContext, spec: EvidenceSpec): Promise<Episode> {
  let release!: (exitCode: number) => void;
  const gate = new Promise<number>((resolve) => {
    release = resolve;
  });
  let opened!: (log: (text: string) => void) => void;
  const ready = new Promise<(text: string) => void>((resolve) => {
    opened = resolve;
  });
  const oracle = withEvidence(ctx, spec, async (log) => {
    opened(log);
    return gate;
  });
  ctx.defer(async () => {
    release(1);
    await oracle.catch(() => undefined);
  });
  const log = await Promise.race([
    ready,
    oracle.then(() => {
      throw new Error('the oracle finished before the relay episode began');
    }),
  ]);
  return {
    log,
    finish: (exitCode) => {
      release(exitCode);
      return oracle;
    },
  };
}

function processGone(ctx: DrillContext): string | undefined {
  const info = ctx.system.supervisor().get(relay);
  if (!info || info.state === 'running' || info.state === 'starting') return undefined;
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  return `the relay ${how}: ${info.recentLines.at(-1) ?? 'no output'}`;
}

/** The relay's next `event` line about the row; when the relay dies first, says so with its last line. */
async function waitRelay(ctx: DrillContext, event: string, outboxId: string): Promise<JsonLine> {
  try {
    return await ctx.system.supervisor().waitForEvent(relay, event, { timeoutMs: waitMs, match: (line) => line.outbox_id === outboxId });
  } catch (error) {
    const gone = processGone(ctx);
    if (gone) throw new Error(`${gone} (before it reported ${event} for ${outboxId})`, { cause: error });
    throw error;
  }
}

export const outboxRelayRetryTest: Drill = {
  number: 5,
  key: 'outbox_relay_retry_test',
  title: 'Outbox relay retry',
  lesson: 5,
  habit: 'outbox',
  tables: ['outbox'],
  breakDescription: 'the relay sends without the dedup_key as the idempotency key: the re-send after the kill is a second delivery',
  fix:
    'queue side effects in an outbox row with a unique dedup_key; let the relay claim pending rows with FOR UPDATE SKIP LOCKED, ' +
    'record attempts, last_error and next_attempt_at on failure, mark dispatched only in the commit after the send, and send ' +
    'the dedup_key as the idempotency key so a re-send after a crash is not a second delivery',
  steps: [
    {
      id: 'tenant',
      title: 'Make a tenant for this drill',
      why: 'The drill queues its own outbox row, so it can run again and never disturbs the rows other drills count.',
      async run(ctx) {
        ctx.observations.set('drill_tenant', await createDrillTenant(ctx, 'outbox'));
      },
    },
    {
      id: 'email-service',
      title: 'Start the email service',
      why: 'A transactional email API on loopback: one delivery per idempotency key, and it can be told to drop the next request (a network blip).',
      async run(ctx) {
        const email = await ctx.system.emailService();
        ctx.defer(() => ctx.system.stop(email.name));
        ctx.observations.set('email', email);
        ctx.observe('email_service', email.url);
      },
    },
    {
      id: 'backlog',
      title: 'Let the relay send what is already due',
      why:
        'The relay takes the oldest due row first: rows earlier runs queued would take the blip meant for this drill\'s row. ' +
        'A relay with no pause sends them before the drill queues its own.',
      sql: ["select count(*) from outbox where status = 'pending' and next_attempt_at <= now()"],
      async run(ctx) {
        const dueSql = `select count(*)::int as n from outbox where status = 'pending' and next_attempt_at <= now()`;
        const [due] = await query<{ n: number }>(ctx, dueSql);
        const backlog = due?.n ?? 0;
        ctx.observe('backlog_due', backlog);
        if (backlog === 0) return;
        const email = ctx.observations.get('email') as EmailService;
        const sup = ctx.system.supervisor();
        await startRelay(sup, { ...(await relayOptions(ctx, email, 0)), noKey: false });
        ctx.defer(() => ctx.system.stop(relay));
        await waitFor(
          'the relay to send the rows already due',
          async () => {
            const gone = processGone(ctx);
            if (gone) throw new Error(`while sending the ${backlog} rows already due, ${gone}`);
            const rows = await query<{ n: number }>(ctx, dueSql);
            return rows[0]?.n === 0;
          },
          { timeoutMs: backlogWaitMs, intervalMs: pollMs, signal: ctx.signal },
        );
        await ctx.system.stop(relay);
        ctx.observe('backlog_sent', backlog, true);
      },
    },
    {
      id: 'queue',
      title: 'Queue an email through the tool server',
      why: 'The Worker never sends email itself: its `queue` call writes an outbox row, in the same transaction as its journal, for the relay to send.',
      sql: [
        'insert into outbox (tenant_id, run_id, dedup_key, recipient, subject, body) values ($1, $2, $3, $4, $5, $6) on conflict (dedup_key) do nothing returning id',
        rowSql,
      ],
      async run(ctx) {
        const tenant = ctx.observations.get('drill_tenant') as DrillTenant;
        const server = await ctx.system.toolServer();
        ctx.defer(() => ctx.system.stop(server.name));
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
        await ctx.system.stop(server.name);
        ctx.observe('queue_call', answer.isError ? `error: ${answer.text}` : answer.text, !answer.isError);
        if (answer.isError) throw new Error(`the queue tool failed: ${answer.text}`);
        const row = await readRow(ctx, dedupKey);
        ctx.observe('queued_row', showRow(row), row?.status === 'pending' && row.attempts === 0);
        if (!row) throw new Error(`the queue tool answered ${answer.text} but no outbox row has dedup_key ${dedupKey}`);
        if (answer.value?.outbox_id !== row.id) {
          throw new Error(`the queue tool answered outbox_id ${String(answer.value?.outbox_id)} but the row is ${row.id}`);
        }
        ctx.observe('outbox_id', row.id);
        ctx.observe('dedup_key', dedupKey);
        ctx.observations.set('queued', { id: row.id, dedupKey } satisfies Queued);
        ctx.observations.set('row_queued', row);
      },
    },
    {
      id: 'blip',
      title: 'Start the relay; its first send hits a network blip',
      why:
        'The email service drops the connection of the next request. The relay must record the failure (attempts, last_error, ' +
        'next_attempt_at) and leave the row pending for a retry, never drop it or mark it sent.',
      sql: [
        "select id, dedup_key, recipient, subject, body, attempts from outbox where status = 'pending' and next_attempt_at <= now() order by next_attempt_at, id limit 1 for update skip locked",
        "update outbox set attempts = attempts + 1, last_error = $2, next_attempt_at = now() + $3 * power(2, attempts) * interval '1 millisecond' where id = $1",
        rowSql,
      ],
      async run(ctx) {
        const { id, dedupKey } = ctx.observations.get('queued') as Queued;
        const email = ctx.observations.get('email') as EmailService;
        const sup = ctx.system.supervisor();
        const episode = await openEpisode(ctx, {
          label: `relay outbox row ${id} through a blip, a kill between send and commit, and a restart`,
          tables: [{ name: 'outbox', filter: { dedup_key: dedupKey }, key: ['dedup_key'] }],
          expect: [`outbox:~{dedup_key="${dedupKey}",status="pending"}->{status="dispatched"}`, 'outbox:+0'],
          volatiles: ['next_attempt_at', 'dispatched_at'],
        });
        ctx.observations.set('episode', episode);
        await email.failNext(1, 'reset');
        episode.log('email service: the next request will have its connection reset');
        await startRelay(sup, await relayOptions(ctx, email, killWindowMs));
        ctx.defer(() => ctx.system.stop(relay));
        const failed = await waitRelay(ctx, 'send_failed', id);
        episode.log(`relay: ${JSON.stringify(failed)}`);
        ctx.observe('send_failed', `attempts=${String(failed.attempts)} error=${String(failed.error)}`);
        const row = await readRow(ctx, dedupKey);
        const queued = ctx.observations.get('row_queued') as OutboxRow;
        ctx.observations.set('row_after_blip', row);
        ctx.observe(
          'after_blip',
          showRow(row),
          row?.status === 'pending' &&
            row.attempts === 1 &&
            row.last_error !== null &&
            Date.parse(row.next_attempt_at) > Date.parse(queued.next_attempt_at),
        );
      },
    },
    {
      id: 'kill',
      title: 'The retry is sent: kill the relay before it commits',
      why:
        'A relay can die after the email went out and before it recorded that: the row must still read pending (a relay that ' +
        'marks dispatched before it sends would lose the email on a crash), so the next relay sends it again.',
      operator: 'kill',
      sql: [rowSql],
      async run(ctx) {
        const { id, dedupKey } = ctx.observations.get('queued') as Queued;
        const email = ctx.observations.get('email') as EmailService;
        const episode = ctx.observations.get('episode') as Episode;
        const sup = ctx.system.supervisor();
        const sent = await waitRelay(ctx, 'sent_pausing', id);
        episode.log(`relay: ${JSON.stringify(sent)}`);
        ctx.observe('retry_sent', `delivery_id=${String(sent.delivery_id)}, not yet committed`);
        ctx.observations.set('retry_delivery', String(sent.delivery_id));
        const pid = sup.get(relay)?.pid;
        await ctx.operator.request(
          {
            kind: 'kill',
            process: relay,
            prompt: `The relay sent ${id} and has not committed yet: press k to kill it (SIGKILL)`,
          },
          () => ctx.system.kill(relay, 'SIGKILL'),
        );
        const info = sup.get(relay);
        episode.log(`relay pid ${String(pid)} ended: ${info?.signal ?? `exit ${String(info?.exitCode)}`}`);
        ctx.observe('relay_killed', `pid ${String(pid)} by ${info?.signal ?? `exit ${String(info?.exitCode)}`}`, info?.signal === 'SIGKILL');
        const committed = relayLines(ctx, id, 'dispatched');
        if (committed.length > 0) {
          throw new CouldNotDetermine(
            `the relay committed ${id} before it was killed: the kill must come within the ${killWindowMs} ms between its send and its commit`,
          );
        }
        const row = await readRow(ctx, dedupKey);
        ctx.observations.set('row_after_kill', row);
        ctx.observe('after_kill', showRow(row), row?.status === 'pending' && row.dispatched_at === null);
        const report = await email.report();
        const forKey = report.by_dedup_key[dedupKey] ?? { requests: 0, deliveries: 0 };
        ctx.observations.set('email_before_restart', forKey);
        ctx.observe('email_at_kill', `${forKey.requests} requests, ${forKey.deliveries} deliveries for ${dedupKey}`);
      },
    },
    {
      id: 'restart',
      title: 'Restart the relay',
      why:
        'The new relay finds the row pending and sends it again. The email service already delivered it once; the dedup_key, ' +
        'sent as the idempotency key, must keep that re-send from being a second email.',
      operator: 'restart',
      sql: [
        "update outbox set status = 'dispatched', attempts = attempts + 1, dispatched_at = clock_timestamp() where id = $1",
        rowSql,
      ],
      async run(ctx) {
        const { id, dedupKey } = ctx.observations.get('queued') as Queued;
        const email = ctx.observations.get('email') as EmailService;
        const episode = ctx.observations.get('episode') as Episode;
        const sup = ctx.system.supervisor();
        await ctx.operator.request(
          { kind: 'restart', process: relay, prompt: `${id} still reads pending after the kill: press r to restart the relay` },
          async () => {
            await startRelay(sup, await relayOptions(ctx, email, 0));
          },
        );
        ctx.observe('relay_restarted', `pid ${String(sup.get(relay)?.pid)}`);
        const resent = await waitRelay(ctx, 'sending', id);
        episode.log(`restarted relay: ${JSON.stringify(resent)}`);
        const dispatched = await waitRelay(ctx, 'dispatched', id);
        episode.log(`restarted relay: ${JSON.stringify(dispatched)}`);
        ctx.observe('resent_after_restart', `attempt ${String(resent.attempt)}`);
        ctx.observe('dispatched', `attempts=${String(dispatched.attempts)} delivery_id=${String(dispatched.delivery_id)}`);
        ctx.observations.set('resend_delivery', String(dispatched.delivery_id));
        const result = await episode.finish(0);
        ctx.observations.set('oracle_ok', oracleSatisfied(result));
        ctx.observations.set(
          'oracle_evidence',
          result.expectations.map((expectation) => `${expectation.predicate}: ${expectation.verdict}`).join('; '),
        );
        await ctx.system.stop(relay);

        const row = await readRow(ctx, dedupKey);
        ctx.observations.set('row_final', row);
        ctx.observe('final_row', showRow(row), row?.status === 'dispatched' && row.dispatched_at !== null);
        const report: EmailReport = await email.report();
        const forKey = report.by_dedup_key[dedupKey] ?? { requests: 0, deliveries: 0 };
        const withHeader = report.by_idempotency_key[dedupKey]?.requests ?? 0;
        ctx.observations.set('email_for_key', { ...forKey, withHeader });
        ctx.observe(
          'email_deliveries',
          `${forKey.deliveries} deliveries in ${forKey.requests} requests for ${dedupKey} (${withHeader} carried it as the Idempotency-Key)`,
          forKey.deliveries === 1,
        );
        ctx.observations.set('counts', {
          failed: relayLines(ctx, id, 'send_failed').length,
          retried: relayLines(ctx, id, 'sent_pausing').length,
          sends: relayLines(ctx, id, 'sending').length,
          dispatched: relayLines(ctx, id, 'dispatched').length,
        });
      },
    },
  ],
  verdict(ctx) {
    const queued = ctx.observations.get('queued') as Queued | undefined;
    const before = ctx.observations.get('row_queued') as OutboxRow | undefined;
    const blip = ctx.observations.get('row_after_blip') as OutboxRow | undefined;
    const killed = ctx.observations.get('row_after_kill') as OutboxRow | undefined;
    const final = ctx.observations.get('row_final') as OutboxRow | undefined;
    const emailBefore = ctx.observations.get('email_before_restart') as { requests: number; deliveries: number } | undefined;
    const email = ctx.observations.get('email_for_key') as { requests: number; deliveries: number; withHeader: number } | undefined;
    const counts = ctx.observations.get('counts') as { failed: number; retried: number; sends: number; dispatched: number } | undefined;
    const killedBy = String(ctx.observations.get('relay_killed') ?? '');
    const oracleOk = ctx.observations.get('oracle_ok') === true;
    const oracleEvidence = String(ctx.observations.get('oracle_evidence') ?? 'no oracle result');
    if (!queued || !before || !blip || !killed || !final || !emailBefore || !email || !counts) {
      const reason = 'the relay episode did not complete, so nothing can be concluded';
      return { verdict: 'could-not-determine', evidence: reason, reason };
    }
    const { id, dedupKey } = queued;
    const problems: string[] = [];
    if (email.deliveries !== 1) {
      problems.push(
        `email service received ${email.deliveries} deliveries for dedup_key ${dedupKey} in ${email.requests} requests ` +
          `(${email.withHeader} of them carried the dedup_key as the Idempotency-Key): the re-send after the kill ` +
          `${email.deliveries > 1 ? 'was delivered again' : 'was never delivered'}`,
      );
    }
    if (blip.status !== 'pending' || blip.attempts !== 1) {
      problems.push(`after the failed first send ${id} read status ${blip.status} with attempts ${blip.attempts}, not pending with attempts 1`);
    }
    if (blip.last_error === null) problems.push(`after the failed first send ${id} had no last_error`);
    if (Date.parse(blip.next_attempt_at) <= Date.parse(before.next_attempt_at)) {
      problems.push(`after the failed first send ${id}'s next_attempt_at stayed ${blip.next_attempt_at} (not moved later)`);
    }
    if (counts.failed !== 1) problems.push(`the relay reported ${counts.failed} failed sends of ${id} for one blip`);
    if (killed.status !== 'pending' || killed.dispatched_at !== null) {
      problems.push(
        `after the relay was killed between the send and its commit ${id} read status ${killed.status}` +
          ` (dispatched_at ${killed.dispatched_at ?? 'null'}): it was marked dispatched before its send was committed`,
      );
    }
    if (emailBefore.deliveries !== 1) {
      problems.push(`when the relay was killed the email service had ${emailBefore.deliveries} deliveries for ${dedupKey}, not the one just sent`);
    }
    if (email.requests <= emailBefore.requests) problems.push(`the restarted relay did not send ${id} again`);
    if (final.status !== 'dispatched' || final.dispatched_at === null) {
      problems.push(`${id} ended in status ${final.status} (dispatched_at ${final.dispatched_at ?? 'null'}), not dispatched`);
    }
    if (counts.dispatched !== 1) problems.push(`the relay reported ${id} dispatched ${times(counts.dispatched)}`);
    if (!oracleOk) problems.push(`the oracle did not confirm the change (${oracleEvidence})`);
    if (problems.length > 0) {
      const reason = problems.join('; ');
      return { verdict: 'fail', evidence: reason, reason };
    }
    const resends = counts.sends - 1 - counts.retried;
    return {
      verdict: 'pass',
      evidence:
        `Relay failed ${times(counts.failed)}, retried ${times(counts.retried)}, dispatched ${times(counts.dispatched)}: ` +
        `the blip left ${id} pending with attempts ${blip.attempts}, last_error and next_attempt_at set; ` +
        `the relay was killed (${killedBy}) after the retry's send and before its commit, the row still read ${killed.status}, ` +
        `and the restarted relay re-sent it ${times(resends)}. ` +
        `Outbox row ${id} ended in ${final.status} (attempts ${final.attempts}). ` +
        `Email service received exactly ${countWord(email.deliveries)} delivery for this dedup_key (${email.requests} requests).`,
    };
  },
};
