// Postgres's own view of the race, on connections of the drill's own: which of the
// tool server's sessions hold a lock on the pending rows' table, and which wait for
// a lock. Sessions are told apart by the tool server's application_name (the
// reference one's `sor-tool-server`, the operator's by the session tag the drill
// put in its URL), so another application's locks on a busy target never count.
import { withPgClient } from '../../postgres/pg.js';
import type { Identifier } from '../../postgres/sql.js';
import { waitFor } from '../../util/wait.js';
import type { DrillContext } from '../types.js';
import { ended } from './state.js';

/**
 * A session of the tool server that holds a claim's row: a granted RowShareLock (SELECT
 * ... FOR UPDATE) or RowExclusiveLock (the UPDATE that marks the row claimed) on the
 * table, inside a transaction that has an xid. A row lock gives the transaction its xid
 * (the lock is written into the row), so a session that merely read the table holds no
 * xid; the row itself is not in pg_locks (Postgres keeps row locks in the row).
 */
export const rowLockHolders = `select a.pid, l.mode from pg_locks l join pg_stat_activity a on a.pid = l.pid
  where l.locktype = 'relation' and l.granted and l.relation = $2::regclass
    and l.mode in ('RowShareLock', 'RowExclusiveLock')
    and a.datname = current_database() and a.application_name = $1 and a.backend_xid is not null
    and a.pid <> pg_backend_pid()
  order by a.pid`;

export type RowLockSeen = { held: true; pid: number; mode: string } | { held: false };

/**
 * Waits until a session of the tool server (by `tag`) holds a claimed row of `table`, or
 * until `process` (the Worker whose claim it would be, started alone) has ended without
 * one being seen: then `{ held: false }`. Polls the database, never sleeps a fixed time;
 * a claim that neither locks nor ends within `timeoutMs` throws WaitTimeout.
 */
export async function waitForRowLock(
  ctx: DrillContext,
  options: { tag: string; table: Identifier; process: string; timeoutMs: number },
): Promise<RowLockSeen> {
  return withPgClient(ctx.url, (client) =>
    waitFor<RowLockSeen>(
      `${options.process}'s claim to hold a row of ${options.table.name}`,
      async () => {
        const { rows } = await client.query<{ pid: number; mode: string }>(rowLockHolders, [options.tag, String(options.table)]);
        const holder = rows[0];
        if (holder) return { held: true, pid: holder.pid, mode: holder.mode };
        return ended(ctx, options.process) ? { held: false } : undefined;
      },
      { timeoutMs: options.timeoutMs, intervalMs: 20, signal: ctx.signal },
    ),
  );
}

/**
 * Samples, every 20 ms until stopped, the most of the tool server's sessions (by `tag`)
 * seen at once waiting on a lock: any lock (`by: 'any'`), or only one another of its own
 * sessions holds (`by: 'its own'`: pg_blocking_pids).
 */
export function sampleLockWaits(ctx: DrillContext, tag: string, by: 'any' | 'its own'): { most: () => number; stop: () => Promise<number> } {
  let most = 0;
  let polling = true;
  const blockedByItsOwn =
    by === 'its own' ? ` and exists (select from pg_stat_activity b where b.pid = any(pg_blocking_pids(a.pid)) and b.application_name = $1)` : '';
  const poll = withPgClient(ctx.url, async (client) => {
    while (polling) {
      const { rows } = await client.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity a
          where a.wait_event_type = 'Lock' and a.datname = current_database() and a.pid <> pg_backend_pid() and a.application_name = $1${blockedByItsOwn}`,
        [tag],
      );
      most = Math.max(most, rows[0]?.n ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  return {
    most: () => most,
    async stop() {
      polling = false;
      await poll;
      return most;
    },
  };
}
