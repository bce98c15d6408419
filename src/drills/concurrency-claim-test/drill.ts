// Drill 4, concurrency_claim_test (Lesson 4, claims). Two Worker processes race
// for the same pending transactions. Worker A claims first and holds its row lock;
// while A still holds it, Worker B claims: with FOR UPDATE SKIP LOCKED, B must
// skip A's row and take the next one at once. Observed: who claimed what, when
// each got its lock (clock_timestamp inside the claim transaction), the lock waits
// Postgres itself reported while the race ran, and any 55P03 / 40P01 errors.
//
// Each Worker has one name: Worker A is the process worker-a, and worker-a is also
// its run's worker and what its claim writes into claimed_by (B likewise). On the one
// start key A starts alone; B starts once the database shows A's claim holding its
// row (pg_locks: the tool server's session, by application_name, holding a lock on
// the table in a transaction that has locked a row), so A is first by construction.
//
// Each Worker's claim asks the tool server to hold its row (hold_ms, a bound for a
// stuck race only), and the drill releases the holds (SIGUSR2, launch.ts releaseHolds)
// only once it has seen B lock a row of its own or wait for one (and, in the console,
// at least the visible claim hold has passed): A holds its row until B's claim is
// seen, however slowly the second Worker starts; nothing waits on a timer. The tool
// server is the session's shared one unless the drill runs broken (no SKIP LOCKED).
//
// When the profile declares the operator's own Worker (processes.worker), two of
// theirs race instead, through their tool server when declared (else the reference
// one), which is asked for a visible hold ({claim_hold_ms}): their code has no
// release signal, so each claim holds its row lock that long. Observed: the tool
// server's sessions waiting on a lock another of its sessions holds (pg_stat_activity
// and pg_blocking_pids, sampled while they run), each pending row processed once
// (its status, one expense per transaction), 55P03 / 40P01 in the journal or in the
// processes' logs, and whether the two Workers' claims overlapped (the journal's
// call timing through runs.worker): claims that never overlapped raced nothing.
import { sql } from '../../postgres/sql.js';
import { createDrillTenant, insertPending, sampleTransactions } from '../inputs.js';
import { query, shownSql } from '../sql.js';
import type { Drill } from '../types.js';
import { requireClaimColumns } from './claims.js';
import { rowLockHolders } from './locks.js';
import { checkTheirRows, operatorRace, raceTheirWorkers, startRaceToolServer } from './operator-race.js';
import { raceReferenceWorkers, referenceToolServer } from './reference-race.js';
import type { State } from './state.js';
import { referenceVerdict, theirVerdict } from './verdict.js';

export const concurrencyClaimTest: Drill<State> = {
  number: 4,
  key: 'concurrency_claim_test',
  title: 'SKIP LOCKED claims',
  lesson: 4,
  habit: 'claims with FOR UPDATE SKIP LOCKED',
  tables: ['pending_transactions', 'tool_calls'],
  needs: ['tenants', 'pending_transactions', 'runs', 'turns', 'tool_calls', 'agent_events'],
  breakDescription: 'claims without SKIP LOCKED (plain FOR UPDATE): B waits for A\u2019s lock',
  fix: 'claim with SELECT ... FOR UPDATE SKIP LOCKED (with a lease) so a second Worker skips a locked row instead of waiting for it',
  init: () => ({ pending: [], workerNames: [], claims: [], lockWaits: 0 }),
  steps: [
    {
      id: 'inputs',
      title: 'Make a tenant with two pending transactions',
      why: 'The race needs two rows of its own: a tenant no other drill touches, so the target\u2019s own rows are never claimed.',
      hint: {
        look: 'tenant is a fresh drill-race tenant and pending lists its two transaction ids in claim order. Two rows are the least that can show a skip: one for A to hold, one for B to take instead.',
        mistake: 'Racing over a single row. The loser then finds nothing either way, so SKIP LOCKED (moves on) cannot be told from plain FOR UPDATE (waits, then finds the row taken). Two rows show B skipping to the second.',
      },
      async run(ctx, state) {
        state.operator = operatorRace(ctx);
        if (!state.operator) requireClaimColumns(ctx);
        state.tenant = await createDrillTenant(ctx, 'race');
        state.pending = await insertPending(ctx, state.tenant.id, sampleTransactions.slice(0, 2));
        ctx.observe('pending', state.pending);
      },
    },
    {
      ...referenceToolServer,
      async run(ctx, state) {
        if (state.operator) return startRaceToolServer(ctx, state, state.operator);
        return referenceToolServer.run(ctx, state);
      },
    },
    {
      id: 'race',
      title: 'Start Worker A, then Worker B while A holds its row',
      why: 'A (worker-a) claims first and holds its row; once Postgres shows that lock, B (worker-b) claims while A still holds it. SKIP LOCKED lets B take the next row without waiting.',
      hint: {
        look: 'lock_waits_seen must be 0: Postgres saw no tool-server session waiting for a lock. The two claim lines must name different rows, each completed, with no 55P03 or 40P01 error code.',
        mistake: 'FOR UPDATE without SKIP LOCKED. The second Worker blocks until the first commits, and a fleet of Workers forms a queue. NOWAIT is no fix either: it raises 55P03 instead of moving on to the next row.',
      },
      operator: 'start',
      sql: (n) => {
        const p = n.pending_transactions;
        return [
          // As the tool server claims (actions.ts claim): a pending row, or a claimed one whose lease ran out.
          shownSql(
            `select ${p.key} from ${p.table} where ${p.tenant} = $1 and (${p.status} = $2${p.lease_until ? ` or (${p.status} = $3 and ${p.lease_until} < clock_timestamp())` : ''}) order by ${p.key} limit 1 for update skip locked`,
          ),
          shownSql(rowLockHolders.replace(/\s+/g, ' ').replace('$1', `'sor-tool-server'`).replace('$2::regclass', `'${p.table}'::regclass`)),
          `select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database() and application_name = 'sor-tool-server'`,
        ];
      },
      async run(ctx, state) {
        if (state.operator) return raceTheirWorkers(ctx, state, state.operator);
        return raceReferenceWorkers(ctx, state);
      },
    },
    {
      id: 'processed-once',
      title: 'Check each row was claimed once',
      why: 'The whole point: no transaction is processed by two Workers.',
      hint: {
        look: 'claimed_by shows each row beside the Worker that took it, and the two names must differ. distinct_rows must equal the number of claims; fewer means one transaction was processed twice.',
        mistake: 'Picking the row with a plain SELECT and marking it claimed in a second statement. Both Workers can read the same pending row before either updates it; the SELECT itself must lock the row, inside one transaction.',
      },
      sql: (n) => {
        const p = n.pending_transactions;
        return [shownSql(`select ${p.key}${p.claimed_by ? `, ${p.claimed_by}` : ''} from ${p.table} where ${p.key}::text = any($1::text[])`)];
      },
      async run(ctx, state) {
        if (state.operator) return checkTheirRows(ctx, state, state.operator);
        const p = ctx.profile.names.pending_transactions;
        const claims = state.claims;
        const ids = claims.map((claim) => claim.transaction_id).filter((id): id is string => id !== null);
        if (p.claimed_by) {
          const q = sql`select ${p.key}::text as id, ${p.claimed_by}::text as claimed_by from ${p.table}
                         where ${p.key}::text = any(${ids}::text[]) order by ${p.table}.${p.key}`;
          const rows = await query<{ id: string; claimed_by: string | null }>(ctx, q);
          ctx.observe('claimed_by', rows.map((row) => `${row.id}: ${row.claimed_by ?? 'nobody'}`));
        } else {
          ctx.observe('claimed_by', 'not recorded (pending_transactions.claimed_by is not in the profile)');
        }
        ctx.observe('distinct_rows', new Set(ids).size, new Set(ids).size === ids.length);
      },
    },
  ],
  verdict(ctx, state) {
    if (state.operator) return theirVerdict(ctx, state, state.operator);
    return referenceVerdict(state);
  },
};
