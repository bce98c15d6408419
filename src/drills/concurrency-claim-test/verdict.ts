// The race's verdict, from what the steps observed: on the reference Worker side
// from the claims' own lock times, on the operator's from the database, the journal
// and the processes' logs.
import type { DrillContext, VerdictResult } from '../types.js';
import { ms, type OperatorRace, type State, type TheirClaim } from './state.js';

/** Whether a transaction was claimed twice, from the claimed ids. */
export function duplicateProcessing(ids: string[]): string {
  const twice = ids.length - new Set(ids).size;
  return twice === 0 ? 'No duplicate processing' : `${twice} transaction${twice === 1 ? '' : 's'} processed twice`;
}

/** The lock errors the claims raised, from their SQLSTATEs (55P03 lock not available, 40P01 deadlock, ...). */
export function lockErrors(codes: string[]): string {
  return codes.length === 0 ? 'No lock errors raised' : `Lock errors raised (${codes.join(', ')})`;
}

export function referenceVerdict({ claims, workerNames: names, lockWaits }: State): VerdictResult {
  // "A" is the first Worker (worker-a), started alone; "B" (worker-b) was started once A held its row.
  const [a, b] = names.map((name) => claims.find((claim) => claim.worker === name));
  const reasons: string[] = [];
  const errors = claims.filter((claim) => claim.error_code);
  for (const claim of errors) reasons.push(`a claim failed with ${claim.error_code}: ${claim.error ?? ''}`);
  if (!a?.transaction_id || !b?.transaction_id) reasons.push(`A claimed ${a?.transaction_id ?? 'nothing'}, B claimed ${b?.transaction_id ?? 'nothing'}`);
  else if (a.transaction_id === b.transaction_id) reasons.push(`both Workers claimed ${a.transaction_id}: duplicate processing`);
  const waited = b && a ? ms(b.locked_at) - ms(b.started_at) : Number.NaN;
  const overlapped = a && b ? ms(b.locked_at) < ms(a.released_at) : false;
  // B asking only after A had let go is no race at all: nothing to blame on the claim.
  const askedAfterRelease = a && b ? ms(b.started_at) >= ms(a.released_at) : false;
  let unobserved: string | undefined;
  if (a?.transaction_id && b?.transaction_id && ms(b.locked_at) < ms(a.locked_at)) {
    // B was started only once A held its row: a lock of B's before A's means the start was not what it seemed.
    unobserved = `B locked ${b.transaction_id} before A locked ${a.transaction_id}, though B was started only after A held its row`;
  } else if (a?.transaction_id && b?.transaction_id && !overlapped) {
    if (askedAfterRelease) {
      unobserved = `B asked for a row only after A had released ${a.transaction_id}: the claims never overlapped, so the race was not observed`;
    } else if (b.started_at === null) {
      // When B asked is not journaled: a late lock may be a wait or no race at all.
      unobserved = `B got its lock only after A released ${a.transaction_id}, and when B asked is not recorded (tool_calls.started_at is not in the profile)`;
    } else reasons.push(`B got its lock only after A released ${a.transaction_id} (B waited ${Math.round(waited)} ms)`);
  }
  if (lockWaits > 0) reasons.push(`Postgres showed ${lockWaits} session(s) waiting on a lock during the race`);
  if (reasons.length > 0) {
    const reason = reasons.join('; ');
    return { verdict: 'fail', evidence: reason, reason };
  }
  if (unobserved) {
    const reason = `could not determine: ${unobserved}`;
    return { verdict: 'could-not-determine', evidence: reason, reason };
  }
  return {
    verdict: 'pass',
    evidence:
      `Worker A claimed pending_transaction ${a!.transaction_id}. Worker B skipped ${a!.transaction_id} and claimed ${b!.transaction_id}. ` +
      `${duplicateProcessing([a!.transaction_id!, b!.transaction_id!])}. ${lockErrors(errors.map((claim) => claim.error_code!))} ` +
      `(Worker A is ${a!.worker}, Worker B ${b!.worker}; ` +
      `B locked its row ${Number.isNaN(waited) ? '' : `${Math.max(0, Math.round(waited))} ms after asking, `}while A held ${a!.transaction_id}; ${lockWaits} lock waits seen).`,
  };
}

/** The verdict on their Worker side, from the database, the journal and the processes' logs. */
export function theirVerdict(ctx: DrillContext, state: State, side: OperatorRace): VerdictResult {
  const n = ctx.profile.names;
  // A Worker's name is its process's: worker-a (A, started first) and worker-b (B, started while A held its row).
  const names = state.workerNames;
  const reasons: string[] = [];
  if (state.lockWaits > 0) {
    const sessions = state.lockWaits === 1 ? 'session' : 'sessions';
    reasons.push(`Postgres showed ${state.lockWaits} ${sessions} of ${side.toolServer} waiting on a lock another of its sessions held during the race`);
  }
  for (const claim of side.claims.filter((entry) => entry.status === n.tool_calls.values.failed || entry.error_code)) {
    reasons.push(`a claim by ${claim.worker} failed${claim.error_code ? ` with ${claim.error_code}` : ''}: ${claim.error ?? 'no error recorded'}`);
  }
  if (side.journalLockErrors.length > 0) reasons.push(`calls failed with lock errors: ${side.journalLockErrors.join(', ')}`);
  if (side.logLockErrors.length > 0) reasons.push(`lock errors logged: ${side.logLockErrors.join(', ')}`);
  for (const row of side.rows) {
    if (row.status !== n.pending_transactions.values.processed) reasons.push(`${row.id} ended ${row.status}, not ${n.pending_transactions.values.processed}`);
    if (row.expenses !== null && row.expenses !== 1) reasons.push(`${row.id} has ${row.expenses} ${n.expenses.tableName} rows`);
  }
  if (reasons.length > 0) {
    const reason = reasons.join('; ');
    return { verdict: 'fail', evidence: reason, reason };
  }
  const unobserved = (why: string): VerdictResult => {
    const reason = `could not determine: ${why}`;
    return { verdict: 'could-not-determine', evidence: reason, reason };
  };
  const silent = names.filter((name) => !side.claims.some((claim) => claim.worker === name));
  if (silent.length > 0) {
    return unobserved(`${silent.join(' and ')} journaled no claim (${side.exits.join(', ')}): there was no race to look at`);
  }
  if (!n.tool_calls.started_at || !n.tool_calls.finished_at) {
    return unobserved('whether the two Workers\u2019 claims overlapped cannot be read without tool_calls.started_at and tool_calls.finished_at: add them to the profile');
  }
  // The overlap: the longest time both claims were open at once.
  const span = (claim: TheirClaim) => [ms(claim.started_at), ms(claim.finished_at)] as const;
  const [a, b] = names;
  let overlapMs = 0;
  for (const first of side.claims.filter((claim) => claim.worker === a)) {
    for (const second of side.claims.filter((claim) => claim.worker === b)) {
      const [s1, e1] = span(first);
      const [s2, e2] = span(second);
      overlapMs = Math.max(overlapMs, Math.min(e1, e2) - Math.max(s1, s2));
    }
  }
  const claimOf = (name: string) => side.claims.find((claim) => claim.worker === name)!;
  if (!(overlapMs > 0)) {
    const shown = (name: string) => `${name}'s claim from ${claimOf(name).started_at} to ${claimOf(name).finished_at}`;
    return unobserved(
      `the two Workers\u2019 claims never overlapped (${shown(a!)}, ${shown(b!)}), so the race was not observed; ` +
        `have ${side.toolServer} honour {claim_hold_ms} (processes.tool_server.env) so that a claim holds its row lock that long`,
    );
  }
  const took = (name: string) => side.rows.find((row) => row.claimed_by === name)?.id ?? claimOf(name).transaction_id ?? 'a row';
  const counted = side.rows.every((row) => row.expenses !== null)
    ? `, one ${n.expenses.tableName} row each`
    : ` (${n.expenses.tableName} per transaction not counted: expenses.transaction is not in the profile)`;
  return {
    verdict: 'pass',
    evidence:
      `Two runs of ${side.worker} through ${side.toolServer}, A (${a}) first and B (${b}) once A held its row: ` +
      `A claimed ${took(a!)}, B claimed ${took(b!)} while A's claim was open ` +
      `(the claims overlapped ${Math.round(overlapMs)} ms; claim hold ${side.holdMs} ms). ` +
      `No duplicate processing: each of the ${side.rows.length} rows ${n.pending_transactions.values.processed} once${counted}. ` +
      `${lockErrors([])} (${state.lockWaits} lock waits seen).`,
  };
}
