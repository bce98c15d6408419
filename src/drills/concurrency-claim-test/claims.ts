// What the race reads from the target: the rows a claim may take, and the claim
// calls each Worker journaled (through its run's worker name, in the drill's own
// tenant: the Worker names are the same in every drill run).
import { empty, identifier, type Identifier, type Sql, sql } from '../../postgres/sql.js';
import { CouldNotDetermine } from '../runner.js';
import { query } from '../sql.js';
import { need, type DrillContext } from '../types.js';
import type { ClaimRow, State, TheirClaim } from './state.js';

/** A column of tool_calls `c` read as text, or null when the profile does not map it. */
function callColumn(column: Identifier | undefined, alias: string): Sql {
  return column ? sql`c.${column}::text as ${identifier(alias)}` : sql`null::text as ${identifier(alias)}`;
}

/**
 * The claim calls of the drill's Workers, through their runs' worker names and the drill
 * tenant. tool_calls reaches its run through its turn; the claim's answer (transaction_id,
 * locked_at, released_at) is read from the call's result.
 */
export async function claimsOf(ctx: DrillContext, tenant: string, names: string[]): Promise<ClaimRow[]> {
  const n = ctx.profile.names;
  const c = n.tool_calls;
  const t = n.turns;
  const r = n.runs;
  const worker = need(r.worker, 'runs.worker (checked before the race)');
  const result = need(c.result, 'tool_calls.result (checked before the race)');
  const q = sql`select r.${worker}::text as worker, c.${c.status}::text as status,
            ${callColumn(c.error_code, 'error_code')}, ${callColumn(c.error, 'error')},
            c.${result} ->> ${'transaction_id'}::text as transaction_id,
            ${callColumn(c.started_at, 'started_at')}, ${callColumn(c.finished_at, 'finished_at')},
            c.${result} ->> ${'locked_at'}::text as locked_at, c.${result} ->> ${'released_at'}::text as released_at
       from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} join ${r.table} r on r.${r.key} = t.${t.run}
      where r.${r.tenant}::text = ${tenant} and r.${worker}::text = any(${names}::text[]) and c.${c.tool} = ${'claim'}
      order by c.${c.key}`;
  return query<ClaimRow>(ctx, q);
}

/**
 * What the race needs the profile to name: whose claim is whose (runs.worker) and
 * what each claim answered (tool_calls.result). Without them the claims cannot be
 * told apart or read, so the drill says so instead of guessing.
 */
export function requireClaimColumns(ctx: DrillContext): void {
  const n = ctx.profile.names;
  const missing = [
    ...(n.runs.worker ? [] : ['runs.worker (the run\u2019s Worker name: which claim is A\u2019s and which B\u2019s)']),
    ...(n.tool_calls.result ? [] : ['tool_calls.result (the claim\u2019s answer: which row it locked, and when)']),
  ];
  if (missing.length > 0) {
    throw new CouldNotDetermine(`the race cannot be read without ${missing.join(' and ')}: add it to the profile`);
  }
}

/** The drill tenant's rows a claim may take now: two are needed, or there is nothing to race over. */
export async function checkClaimable(ctx: DrillContext, state: State): Promise<void> {
  const tenant = need(state.tenant, 'the drill tenant').id;
  if (state.operator) ctx.observe('claim_hold_ms', state.operator.holdMs);
  else {
    const least = ctx.options.claimHoldMs > 0 ? `, and at least ${ctx.options.claimHoldMs} ms so it can be watched` : '';
    ctx.observe('claim_hold', `until the drill has seen worker-b lock a row or wait for one${least}`);
  }
  const p = ctx.profile.names.pending_transactions;
  // A claim whose lease ran out is claimable again; without a lease column a claimed row never is.
  const expired = p.lease_until
    ? sql` or (${p.status} = ${p.values.claimed} and ${p.lease_until} < clock_timestamp())`
    : empty;
  const claimable = sql`select ${p.key}::text as id from ${p.table}
      where ${p.tenant} = ${tenant} and (${p.status} = ${p.values.pending}${expired})
      order by ${p.table}.${p.key} limit 2`;
  const pending = await query<{ id: string }>(ctx, claimable);
  // Too few rows is the target's data, not the claim's habit: nothing to race over.
  if (pending.length < 2) {
    throw new CouldNotDetermine(
      `${tenant} has ${pending.length} claimable pending transactions and the race needs two; add pending rows for ${tenant}, or drill a fresh target`,
    );
  }
  ctx.observe('claimable', pending.map((row) => row.id));
}

/** The claim calls of their Workers, through their runs' worker names and the drill tenant. */
export async function theirClaims(ctx: DrillContext, tenant: string, names: string[], tool: string): Promise<TheirClaim[]> {
  const n = ctx.profile.names;
  const c = n.tool_calls;
  const t = n.turns;
  const r = n.runs;
  const worker = need(r.worker, 'runs.worker (checked before the race)');
  const taken = c.result ? sql`c.${c.result} ->> ${'transaction_id'}::text` : sql`null::text`;
  const started = c.started_at ? sql`c.${c.started_at}, ` : empty;
  return query<TheirClaim>(
    ctx,
    sql`select r.${worker}::text as worker, c.${c.status}::text as status,
               ${callColumn(c.error_code, 'error_code')}, ${callColumn(c.error, 'error')}, ${taken} as transaction_id,
               ${callColumn(c.started_at, 'started_at')}, ${callColumn(c.finished_at, 'finished_at')}
          from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} join ${r.table} r on r.${r.key} = t.${t.run}
         where r.${r.tenant}::text = ${tenant} and r.${worker}::text = any(${names}::text[]) and c.${c.tool} = ${tool}
         order by ${started}c.${c.key}`,
  );
}

