// The drill's outbox relay process: its timings, how it is started, and how the
// drill reads what it did from its JSON lines (every start of it, under one name).
import { jsonLines, type EmailService, type RelayOptions } from '../../reconciler/launch.js';
import type { JsonLine } from '../../reconciler/json-lines.js';
import type { DrillContext } from '../types.js';

export const relay = 'relay';
/**
 * Polling and the first retry delay of the drill's relay: as small as keeps them observable
 * (next_attempt_at still lands after the failed send, and the row still reads pending with
 * attempts 1 while the retry's transaction is open), since the drill waits for the retry to
 * happen, not for a time: each is a clock the drill would otherwise sit out.
 */
const pollMs = 20;
const backoffMs = 25;
/**
 * How long the relay waits between a successful send and its commit: the window in
 * which the operator kills it. Headless the kill comes at once; in the console a
 * person has this long to kill it. The restarted relay has no pause.
 */
export const killWindowMs = 120_000;
const waitMs = 15_000;

/** The relay's JSON lines (every start of it) about one outbox row. */
export function relayLines(ctx: DrillContext, outboxId: string, event: string): JsonLine[] {
  return jsonLines(ctx.system.supervisor(), relay).filter((line) => line.event === event && line.outbox_id === outboxId);
}

/** How often the relay reported each event about the row, over all its starts. */
export interface RelayCounts {
  /** `send_failed`: sends that failed (the blip). */
  failed: number;
  /** `sent_pausing`: sends that succeeded and then paused before the commit (the retry). */
  retried: number;
  /** `sending`: every send begun. */
  sends: number;
  /** `dispatched`: commits of the row as dispatched. */
  dispatched: number;
}

export function relayCounts(ctx: DrillContext, outboxId: string): RelayCounts {
  return {
    failed: relayLines(ctx, outboxId, 'send_failed').length,
    retried: relayLines(ctx, outboxId, 'sent_pausing').length,
    sends: relayLines(ctx, outboxId, 'sending').length,
    dispatched: relayLines(ctx, outboxId, 'dispatched').length,
  };
}

/**
 * Every start of the drill's relay: scoped to the drill's own tenant, so it never claims
 * a row of the target's own (its pending emails stay pending) and its first claim is the
 * drill's row, whatever earlier runs or the target left due.
 */
export async function relayOptions(
  ctx: DrillContext,
  email: EmailService,
  tenant: string,
  pauseAfterSendMs: number,
): Promise<RelayOptions> {
  return {
    databaseUrl: await ctx.system.workerUrl(),
    tenant,
    emailUrl: email.url,
    pollMs,
    backoffMs,
    pauseAfterSendMs,
    noKey: ctx.broken,
    role: ctx.roles.worker,
    processName: relay,
    profile: ctx.profile.profile,
  };
}

/** Says how the relay ended, with its last line; undefined while it runs. */
export function processGone(ctx: DrillContext): string | undefined {
  const info = ctx.system.supervisor().get(relay);
  if (!info || info.state === 'running' || info.state === 'starting') return undefined;
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  return `the relay ${how}: ${info.recentLines.at(-1) ?? 'no output'}`;
}

/** The relay's next `event` line about the row; when the relay dies first, says so with its last line. */
export async function waitRelay(ctx: DrillContext, event: string, outboxId: string): Promise<JsonLine> {
  try {
    return await ctx.system.supervisor().waitForEvent(relay, event, { timeoutMs: waitMs, match: (line) => line.outbox_id === outboxId });
  } catch (error) {
    const gone = processGone(ctx);
    if (gone) throw new Error(`${gone} (before it reported ${event} for ${outboxId})`, { cause: error });
    throw error;
  }
}
