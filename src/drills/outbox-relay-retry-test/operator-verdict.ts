// The outbox drill's verdict on the operator's own relay, from what the database and
// the email stand-in showed (operator-relay.ts): the row after the blip, after the
// kill and at the end, the stand-in's counts for the dedup key and the oracle. Their
// relay's output is never read. Every evidence line names whose relay was drilled.
// A relay that marks the row dispatched before it sends fails on whatever was seen:
// not pending after the blip, no retry, a delivery count other than one.
import type { DrillContext, VerdictResult } from '../types.js';
import { countWord } from '../sql.js';
import { dedupKeyPlace } from './operator-relay.js';
import type { State } from './state.js';
import { attemptsOf, movedLater, retryFieldsSet, times } from './verdict.js';

const capitalised = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

export function operatorOutboxVerdict(ctx: DrillContext, state: State): VerdictResult {
  const o = ctx.profile.names.outbox;
  const { pending, dispatched } = o.values;
  const status = o.status.name;
  const { operatorRelay: run, queued, rowQueued: before, rowAfterBlip: blip, rowAfterKill: killed, rowFinal: final } = state;
  const atKill = state.emailAtKill;
  const email = state.emailFinal;
  if (!run || !queued || !before || !blip || !final || !email || (run.retryHeld && (!killed || !atKill))) {
    const reason = 'the relay episode did not complete, so nothing can be concluded';
    return { verdict: 'could-not-determine', evidence: reason, reason };
  }
  const { id, dedupKey } = queued;
  const problems: string[] = [];
  if (blip.status !== pending) {
    problems.push(
      `after the failed first send ${id} read ${status} ${blip.status}, not ${pending}` +
        (blip.status === dispatched ? ': it was marked dispatched though no send had succeeded' : ''),
    );
  }
  const attemptsAfter = (before.attempts ?? 0) + 1;
  if (o.attempts && blip.attempts !== attemptsAfter) problems.push(`after the failed first send ${id} had ${o.attempts.name} ${blip.attempts}, not ${attemptsAfter}`);
  if (o.last_error && blip.last_error === null) problems.push(`after the failed first send ${id} had no ${o.last_error.name}`);
  if (o.next_attempt_at && !movedLater(before, blip)) {
    problems.push(`after the failed first send ${id}'s ${o.next_attempt_at.name} stayed ${blip.next_attempt_at} (not moved later)`);
  }
  if (!run.retryHeld) {
    problems.push(`no retry reached the stand-in: ${run.noRetry ?? 'none was sent'}`);
  } else {
    if (killed!.status !== pending || killed!.dispatched_at !== null) {
      problems.push(
        `killed while the stand-in held the answer to its retry, before any commit could follow it, ${id} read ${status} ${killed!.status}` +
          `${o.dispatched_at ? ` (${o.dispatched_at.name} ${killed!.dispatched_at ?? 'null'})` : ''}: it was marked dispatched before its send was answered`,
      );
    }
    if (atKill!.deliveries !== 1) problems.push(`when the relay was killed the stand-in had ${atKill!.deliveries} deliveries for ${dedupKey}, not the one it held`);
    if (email.requests <= atKill!.requests) problems.push(`the restarted relay did not send ${id} again`);
    if (run.notDispatched) problems.push(run.notDispatched);
  }
  if (final.status !== dispatched || (o.dispatched_at && final.dispatched_at === null)) {
    problems.push(`${id} ended in ${status} ${final.status}${o.dispatched_at ? ` (${o.dispatched_at.name} ${final.dispatched_at ?? 'null'})` : ''}, not ${dispatched}`);
  }
  if (email.deliveries !== 1) {
    problems.push(
      `the email stand-in made ${email.deliveries} deliveries for dedup_key ${dedupKey} in ${email.requests} requests ` +
        `(${email.withHeader} carried it in ${dedupKeyPlace(ctx)}): ${email.deliveries === 0 ? 'the email was never delivered' : 'a re-send was delivered again'}`,
    );
  }
  if (!state.oracleOk) problems.push(`the oracle did not confirm the change (${state.oracleEvidence ?? 'no oracle result'})`);
  if (problems.length > 0) {
    const reason = `${capitalised(run.whose)}: ${problems.join('; ')}`;
    return { verdict: 'fail', evidence: reason, reason };
  }
  const resends = email.requests - atKill!.requests;
  return {
    verdict: 'pass',
    evidence:
      `${capitalised(run.whose)}: the stand-in failed its first send; the blip left ${id} ${blip.status} ` +
      `${o.attempts ? 'with ' : ''}${attemptsOf(o, blip)}, ${retryFieldsSet(o, before, blip)}; the stand-in held its answer to the retry ` +
      `and the relay was killed (${state.relayKilled ?? ''}, its process group) before its commit, the row still read ${killed!.status}, ` +
      `and the restarted relay re-sent it ${times(resends)}. Outbox row ${id} ended in ${final.status} (${attemptsOf(o, final)}). ` +
      `Email stand-in received exactly ${countWord(email.deliveries)} delivery for this dedup_key (${email.requests} requests).`,
  };
}
