// Drill 5 on the operator's own relay (the profile's processes.relay): the same
// episode as on the reference relay, watched only from the database and the email
// stand-in; their relay's output is its own and is never read.
//   - blip: the stand-in answers the first send with a 503 and holds its answer to
//     the next delivered one. Both are armed before the relay starts, so a relay with
//     a short backoff cannot send its retry before the hold is in place. The row is
//     read once it shows the failure (the retry fields the profile maps) or is no
//     longer pending;
//   - kill: once the stand-in holds the retry's answer, the relay's process group is
//     SIGKILLed; its tagged sessions end; the row must still read pending (the commit
//     never happened); the held answer is released (its socket went with the relay);
//   - restart: the same command and environment; the row must end dispatched, and the
//     stand-in count one delivery for the dedup key.
// What the relay did not let the drill see (it would not start, it exited, it sent
// nothing, its backoff outlasts the drill's wait) is could-not-determine, never a fail.
import { errorMessage } from '../../postgres/errors.js';
import { sql } from '../../postgres/sql.js';
import { withPgClient } from '../../postgres/pg.js';
import { jsonLines, type EmailService } from '../../reconciler/launch.js';
import type { JsonLine } from '../../reconciler/json-lines.js';
import { waitFor, WaitTimeout } from '../../util/wait.js';
import { oracleSatisfied } from '../evidence.js';
import { operatorCommand, sessionTag, startOperatorRelay, whose } from '../operator-side.js';
import { CouldNotDetermine } from '../runner.js';
import { shownSql } from '../sql.js';
import { need, type DrillContext } from '../types.js';
import { emailCountsFor } from './email-deliveries.js';
import { openRelayEpisode } from './episode.js';
import { readRow, showRow, type OutboxRow, watchRow } from './outbox-row.js';
import { relay } from './relay.js';
import type { OperatorRelayRun, State } from './state.js';
import { movedLater } from './verdict.js';

/** How long the drill waits for each thing the relay should do once it is due. */
const waitMs = 15_000;
/** The longest backoff the drill waits out: a retry due later is could-not-determine. */
const maxAheadMs = 60_000;

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/** The evidence's name for the relay: "the operator's relay `node relay.mjs`". */
export function operatorRelayName(ctx: DrillContext): string {
  return whose('relay', operatorCommand(ctx.profile, 'relay'));
}

/** Where the relay must put the dedup key, as the evidence says it. */
export function dedupKeyPlace(ctx: DrillContext): string {
  const place = ctx.profile.profile.processes?.relay?.dedup_key ?? { header: 'Idempotency-Key' };
  return 'header' in place ? `its ${place.header} header` : `its body's ${place.body} field`;
}

/** Could-not-determine when the relay no longer runs: how it ended, its last line and its log. */
function stillRunning(ctx: DrillContext, before: string): void {
  const info = ctx.system.supervisor().get(relay);
  if (!info || info.state === 'running' || info.state === 'starting') return;
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  throw new CouldNotDetermine(
    `${operatorRelayName(ctx)} ${how} before ${before}: ${info.recentLines.at(-1) ?? 'no output'} (its log: ${info.logFile})`,
  );
}

/** The stand-in's JSON lines of one event about the dedup key. */
function standInLines(ctx: DrillContext, email: EmailService, event: string, dedupKey: string): JsonLine[] {
  return jsonLines(ctx.system.supervisor(), email.name).filter((line) => line.event === event && line.dedup_key === dedupKey);
}

/** The stand-in's first `event` line about the dedup key, or undefined at the deadline; the relay must keep running. */
async function waitStandIn(
  ctx: DrillContext,
  email: EmailService,
  event: string,
  dedupKey: string,
  before: string,
  timeoutMs: number,
): Promise<JsonLine | undefined> {
  try {
    return await waitFor(
      `the email stand-in's ${event} line for ${dedupKey}`,
      () => {
        const line = standInLines(ctx, email, event, dedupKey)[0];
        if (!line) stillRunning(ctx, before);
        return line;
      },
      { timeoutMs, intervalMs: 25, signal: ctx.signal },
    );
  } catch (error) {
    if (error instanceof WaitTimeout) return undefined;
    throw error;
  }
}

/**
 * How long to wait for a send the row says is due at its next_attempt_at: the drill's
 * wait past that time. A backoff beyond maxAheadMs is could-not-determine.
 */
function dueWaitMs(ctx: DrillContext, row: OutboxRow): number {
  const column = ctx.profile.names.outbox.next_attempt_at;
  const due = Date.parse(row.next_attempt_at ?? '');
  const ahead = Number.isFinite(due) ? Math.max(0, due - Date.now()) : 0;
  if (ahead > maxAheadMs) {
    throw new CouldNotDetermine(
      `${operatorRelayName(ctx)} set ${row.id}'s ${column?.name ?? 'next attempt'} ${seconds(ahead)} ahead, past the drill's ` +
        `${seconds(maxAheadMs)}: give it a shorter first backoff (a variable in processes.relay.env) so the retry comes within the drill`,
    );
  }
  return ahead + waitMs;
}

/** Whether the row shows the relay's answer to the failed send: each mapped retry field set, or no longer pending. */
function showsFailure(ctx: DrillContext, queued: OutboxRow, row: OutboxRow | undefined): boolean {
  const o = ctx.profile.names.outbox;
  if (!row || row.status !== o.values.pending) return true;
  return (
    (!o.attempts || (row.attempts ?? 0) > (queued.attempts ?? 0)) &&
    (!o.last_error || row.last_error !== null) &&
    (!o.next_attempt_at || movedLater(queued, row))
  );
}

/** The retry fields of a reading, to tell whether the relay committed anything between two readings. */
const retryFields = (row: OutboxRow) => JSON.stringify([row.status, row.attempts, row.last_error, row.next_attempt_at, row.dispatched_at]);

function present(row: OutboxRow | undefined, id: string, ctx: DrillContext): OutboxRow {
  if (!row) throw new Error(`${id} is no longer in ${ctx.profile.names.outbox.tableName}: ${operatorRelayName(ctx)} deleted it`);
  return row;
}

/** The blip step: the stand-in fails the first send; the row must stay pending with the relay's retry fields. */
export async function operatorBlip(ctx: DrillContext, state: State): Promise<void> {
  const { id, dedupKey } = need(state.queued, 'the queued outbox row');
  const tenant = need(state.tenant, 'the drill tenant');
  const email = need(state.email, 'the email service');
  const queued = need(state.rowQueued, 'the row as queued');
  const sup = ctx.system.supervisor();
  const n = ctx.profile.names;
  const o = n.outbox;
  const name = operatorRelayName(ctx);
  const run: OperatorRelayRun = { whose: name, retryHeld: false };
  state.operatorRelay = run;
  if (ctx.broken) ctx.notes.push(`the deliberate break (no idempotency key) is the reference relay's: ${name} ran as it is`);
  const episode = await openRelayEpisode(ctx, id, dedupKey);
  state.episode = episode;
  await email.failNext(1, 'status503');
  await email.holdNext(1);
  episode.log('email stand-in: the next send answers 503 (a blip); the next delivered one has its answer held');
  try {
    await startOperatorRelay(sup, ctx.profile, { databaseUrl: await ctx.system.workerUrl(), emailUrl: email.url, tenant: tenant.id, processName: relay });
  } catch (error) {
    if (error instanceof CouldNotDetermine) throw error;
    throw new CouldNotDetermine(`${name} could not be started in ${ctx.profile.baseDir}: ${errorMessage(error)} (processes.relay.command)`, { cause: error });
  }
  ctx.defer(() => ctx.system.stop(relay));
  ctx.observe('relay_started', `${name}, pid ${String(sup.get(relay)?.pid)}`);

  const failed = await waitStandIn(ctx, email, 'failed_on_purpose', dedupKey, `it sent ${id}`, waitMs);
  if (!failed) {
    const report = await email.report();
    throw new CouldNotDetermine(
      `${name} sent nothing with dedup_key ${dedupKey} in ${seconds(waitMs)} (the stand-in had ${report.requests} requests in all): ` +
        `it must claim the pending rows of {tenant} ${tenant.id} and POST each to {email_url}/send with a JSON body {dedup_key, to, subject, body}`,
    );
  }
  episode.log(`email stand-in: ${JSON.stringify(failed)}`);
  ctx.observe('send_failed', `the stand-in answered the first send of ${id} with a 503`);
  const settled = await watchRow(
    ctx,
    dedupKey,
    `${name} to record the failed send of ${id}`,
    (row) => {
      stillRunning(ctx, `it recorded the failed send of ${id}`);
      return standInLines(ctx, email, 'held', dedupKey).length > 0 || showsFailure(ctx, queued, row);
    },
    waitMs,
  );
  const row = present(settled.row, id, ctx);
  state.rowAfterBlip = row;
  ctx.observe(
    'after_blip',
    showRow(row, n),
    row.status === o.values.pending &&
      (!o.attempts || row.attempts === (queued.attempts ?? 0) + 1) &&
      (!o.last_error || row.last_error !== null) &&
      (!o.next_attempt_at || movedLater(queued, row)),
  );
  if (!settled.met) ctx.observe('blip_settled', `${seconds(waitMs)} after the failed send ${id} did not yet show every mapped retry field`, false);
}

/** The kill step: the stand-in holds the retry's answer; SIGKILL the relay; the row must still read pending. */
export async function operatorKill(ctx: DrillContext, state: State): Promise<void> {
  const { id, dedupKey } = need(state.queued, 'the queued outbox row');
  const email = need(state.email, 'the email service');
  const episode = need(state.episode, 'the relay episode');
  const blip = need(state.rowAfterBlip, 'the row after the blip');
  const run = need(state.operatorRelay, "the operator's relay run");
  const sup = ctx.system.supervisor();
  const n = ctx.profile.names;
  const o = n.outbox;
  const name = run.whose;
  if (blip.status !== o.values.pending) run.noRetry = `after the failed send ${id} read ${o.status.name} ${blip.status}: no retry was due`;
  if (run.noRetry) {
    ctx.observe('retry_sent', `no retry: ${run.noRetry}`, false);
    return;
  }
  const timeoutMs = dueWaitMs(ctx, blip);
  const held = await waitStandIn(ctx, email, 'held', dedupKey, `it retried ${id}`, timeoutMs);
  if (!held) {
    if (!o.next_attempt_at) {
      throw new CouldNotDetermine(
        `${name} sent no retry of ${id} in ${seconds(timeoutMs)}, and the profile maps no outbox.next_attempt_at to tell when one is due: map it`,
      );
    }
    run.noRetry = `${name} sent no retry of ${id} in ${seconds(timeoutMs)}, though its ${o.next_attempt_at.name} was ${blip.next_attempt_at}`;
    ctx.observe('retry_sent', `no retry: ${run.noRetry}`, false);
    return;
  }
  run.retryHeld = true;
  episode.log(`email stand-in: ${JSON.stringify(held)}`);
  ctx.observe('retry_sent', `delivery_id=${String(held.delivery_id)} delivered, its answer held: ${id} not yet committed`);
  const rowAtHeld = await readRow(ctx, dedupKey);
  const emailAtHeld = await emailCountsFor(email, dedupKey);
  const pid = sup.get(relay)?.pid;
  await ctx.operator.request(
    { kind: 'kill', process: relay, prompt: `The stand-in holds its answer to ${name}'s retry of ${id}: kill it (SIGKILL)` },
    () => ctx.system.kill(relay, 'SIGKILL'),
  );
  const info = sup.get(relay);
  state.relayKilled = `pid ${String(pid)} by ${info?.signal ?? `exit ${String(info?.exitCode)}`}`;
  episode.log(`${name}: pid ${String(pid)} ended: ${info?.signal ?? `exit ${String(info?.exitCode)}`} (its process group)`);
  ctx.observe('relay_killed', state.relayKilled, info?.signal === 'SIGKILL');
  if (info?.signal !== 'SIGKILL') {
    throw new CouldNotDetermine(`${name} ended (${state.relayKilled}) before the drill's SIGKILL: ${info?.recentLines.at(-1) ?? 'no output'} (its log: ${info?.logFile})`);
  }
  await waitSessionsGone(ctx);
  const row = present(await readRow(ctx, dedupKey), id, ctx);
  state.rowAfterKill = row;
  ctx.observe('after_kill', showRow(row, n), row.status === o.values.pending && row.dispatched_at === null);
  const atKill = await emailCountsFor(email, dedupKey);
  state.emailAtKill = atKill;
  ctx.observe('email_at_kill', `${atKill.requests} requests, ${atKill.deliveries} deliveries for ${dedupKey}`);
  await email.release();
  episode.log('email stand-in: the held answer released (its socket went with the relay)');
  if (atKill.requests > emailAtHeld.requests) {
    throw new CouldNotDetermine(
      `${name} sent ${id} again before the kill landed (its send gave up waiting for the held answer): the kill must come while the stand-in holds it`,
    );
  }
  if (rowAtHeld && row.status === o.values.pending && retryFields(row) !== retryFields(rowAtHeld)) {
    throw new CouldNotDetermine(
      `${name} recorded the held send of ${id} as failed before the kill landed (${showRow(row, n)}): ` +
        'its send gave up waiting for the held answer; the kill must come while the stand-in holds it',
    );
  }
}

/** Waits until no session tagged as the relay's is left (when its code keeps the URL's application_name). */
async function waitSessionsGone(ctx: DrillContext): Promise<void> {
  const tag = sessionTag(relay);
  const q = sql`select count(*)::int as sessions from pg_stat_activity where application_name = ${tag}`;
  ctx.showSql(shownSql(q));
  const gone = await withPgClient(ctx.url, (client) =>
    waitFor(`the killed relay's sessions to end`, async () => (await client.query<{ sessions: number }>(q)).rows[0]!.sessions === 0, {
      timeoutMs: waitMs,
      intervalMs: 50,
      signal: ctx.signal,
    }).then(
      () => true,
      (error: unknown) => {
        if (error instanceof WaitTimeout) return false;
        throw error;
      },
    ),
  );
  ctx.observe('relay_sessions', gone ? `no session with application_name ${tag} left` : `a ${tag} session still open ${seconds(waitMs)} after the kill`, gone);
}

/** The restart step: the same command and environment; the row must end dispatched with one delivery. */
export async function operatorRestart(ctx: DrillContext, state: State): Promise<void> {
  const { id, dedupKey } = need(state.queued, 'the queued outbox row');
  const email = need(state.email, 'the email service');
  const episode = need(state.episode, 'the relay episode');
  const run = need(state.operatorRelay, "the operator's relay run");
  const sup = ctx.system.supervisor();
  const n = ctx.profile.names;
  const o = n.outbox;
  const name = run.whose;
  if (!run.retryHeld) {
    ctx.observe('relay_restarted', `not killed, so not restarted: ${run.noRetry ?? 'no retry'}`, false);
  } else {
    const killed = need(state.rowAfterKill, 'the row after the kill');
    await ctx.operator.request(
      { kind: 'restart', process: relay, prompt: `${id} still reads ${killed.status} after the kill: restart ${name}` },
      () => ctx.system.restart(relay),
    );
    ctx.observe('relay_restarted', `pid ${String(sup.get(relay)?.pid)}`);
    const timeoutMs = dueWaitMs(ctx, killed);
    const done = await watchRow(
      ctx,
      dedupKey,
      `${name} to mark ${id} ${o.values.dispatched}`,
      (row) => {
        if (row?.status === o.values.dispatched) return true;
        stillRunning(ctx, `it dispatched ${id} after the restart`);
        return false;
      },
      timeoutMs,
    );
    if (!done.met) run.notDispatched = `the restarted relay had not marked ${id} ${o.values.dispatched} ${seconds(timeoutMs)} after the restart`;
    ctx.observe('dispatched', done.met ? `${id} reads ${o.status.name} ${o.values.dispatched}` : run.notDispatched, done.met);
  }
  const result = await episode.finish(0);
  state.oracleOk = oracleSatisfied(result);
  state.oracleEvidence = result.expectations.map((expectation) => `${expectation.predicate}: ${expectation.verdict}`).join('; ');
  await ctx.system.stop(relay);

  const row = present(await readRow(ctx, dedupKey), id, ctx);
  state.rowFinal = row;
  ctx.observe('final_row', showRow(row, n), row.status === o.values.dispatched && (!o.dispatched_at || row.dispatched_at !== null));
  const forKey = await emailCountsFor(email, dedupKey);
  state.emailFinal = forKey;
  ctx.observe(
    'email_deliveries',
    `${forKey.deliveries} deliveries in ${forKey.requests} requests for ${dedupKey} (${forKey.withHeader} carried it in ${dedupKeyPlace(ctx)})`,
    forKey.deliveries === 1,
  );
}
