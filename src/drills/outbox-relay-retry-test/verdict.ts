// The outbox drill's verdict, from what its steps left in the state: the row at
// each point (after the blip, after the kill, at the end), the email service's
// counts for the dedup_key, the relay's own reports and the oracle's result.
// Status words are the target's own (profile outbox.status.values); the retry
// bookkeeping (attempts, last_error, next_attempt_at, dispatched_at) is judged only
// where the profile maps it, and the evidence names what was not recorded.
// The operator's relay is judged in operator-verdict.ts, with the words below.
import type { ProfileNames } from '../../postgres/profile/index.js';
import { countWord } from '../sql.js';
import type { DrillContext, VerdictResult } from '../types.js';
import type { OutboxRow } from './outbox-row.js';
import type { RelayCounts } from './relay.js';
import type { State } from './state.js';

export function times(count: number): string {
  if (count === 1) return 'once';
  if (count === 2) return 'twice';
  return `${countWord(count)} times`;
}

/** Whether the failed send moved next_attempt_at later (false when the profile does not map it). */
export function movedLater(before: OutboxRow, blip: OutboxRow): boolean {
  return Date.parse(blip.next_attempt_at ?? '') > Date.parse(before.next_attempt_at ?? '');
}

/** Which retry fields the failed send left set, read from the row before and after it. */
export function retryFieldsSet(o: ProfileNames['outbox'], before: OutboxRow, blip: OutboxRow): string {
  if (!o.last_error && !o.next_attempt_at) return 'retry fields not recorded';
  const set = [
    ...(o.last_error && blip.last_error !== null ? [o.last_error.name] : []),
    ...(o.next_attempt_at && movedLater(before, blip) ? [o.next_attempt_at.name] : []),
  ];
  return set.length > 0 ? `${set.join(' and ')} set` : 'no retry field set';
}

/** `with attempts 1`, or that the target does not count attempts. */
export function attemptsOf(o: ProfileNames['outbox'], row: OutboxRow): string {
  return o.attempts ? `${o.attempts.name} ${row.attempts}` : 'attempts not recorded';
}

/** Where the kill landed, from what the relay reported and the row read after it. */
function killPoint(o: ProfileNames['outbox'], counts: RelayCounts, killed: OutboxRow): string {
  const sent = counts.retried > 0 ? "after the retry's send" : 'before any send completed';
  const committed = killed.status === o.values.pending && killed.dispatched_at === null ? 'before its commit' : 'after its commit';
  return `${sent} and ${committed}`;
}

export function outboxVerdict(ctx: DrillContext, state: State): VerdictResult {
  const o = ctx.profile.names.outbox;
  const { pending, dispatched } = o.values;
  const status = o.status.name;
  const { queued, rowQueued: before, rowAfterBlip: blip, rowAfterKill: killed, rowFinal: final, counts } = state;
  const emailBefore = state.emailAtKill;
  const email = state.emailFinal;
  const killedBy = state.relayKilled ?? '';
  const oracleOk = state.oracleOk;
  const oracleEvidence = state.oracleEvidence ?? 'no oracle result';
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
  if (blip.status !== pending || (o.attempts && blip.attempts !== 1)) {
    problems.push(
      o.attempts
        ? `after the failed first send ${id} read ${status} ${blip.status} with ${o.attempts.name} ${blip.attempts}, not ${pending} with ${o.attempts.name} 1`
        : `after the failed first send ${id} read ${status} ${blip.status}, not ${pending}`,
    );
  }
  if (o.last_error && blip.last_error === null) problems.push(`after the failed first send ${id} had no ${o.last_error.name}`);
  if (o.next_attempt_at && !movedLater(before, blip)) {
    problems.push(`after the failed first send ${id}'s ${o.next_attempt_at.name} stayed ${blip.next_attempt_at} (not moved later)`);
  }
  if (counts.failed !== 1) problems.push(`the relay reported ${counts.failed} failed sends of ${id} for one blip`);
  if (killed.status !== pending || killed.dispatched_at !== null) {
    problems.push(
      `after the relay was killed between the send and its commit ${id} read ${status} ${killed.status}` +
        `${o.dispatched_at ? ` (${o.dispatched_at.name} ${killed.dispatched_at ?? 'null'})` : ''}: it was marked dispatched before its send was committed`,
    );
  }
  if (emailBefore.deliveries !== 1) {
    problems.push(`when the relay was killed the email service had ${emailBefore.deliveries} deliveries for ${dedupKey}, not the one just sent`);
  }
  if (email.requests <= emailBefore.requests) problems.push(`the restarted relay did not send ${id} again`);
  if (final.status !== dispatched || (o.dispatched_at && final.dispatched_at === null)) {
    problems.push(
      `${id} ended in ${status} ${final.status}${o.dispatched_at ? ` (${o.dispatched_at.name} ${final.dispatched_at ?? 'null'})` : ''}, not ${dispatched}`,
    );
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
      `the blip left ${id} ${blip.status} ${o.attempts ? 'with ' : ''}${attemptsOf(o, blip)}, ${retryFieldsSet(o, before, blip)}; ` +
      `the relay was killed (${killedBy}) ${killPoint(o, counts, killed)}, the row still read ${killed.status}, ` +
      `and the restarted relay re-sent it ${times(resends)}. ` +
      `Outbox row ${id} ended in ${final.status} (${attemptsOf(o, final)}). ` +
      `Email service received exactly ${countWord(email.deliveries)} delivery for this dedup_key (${email.requests} requests).`,
  };
}
