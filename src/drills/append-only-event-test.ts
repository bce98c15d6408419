// Drill 6, append_only_event_test (Lesson 6, events). The events table (the
// profile's events: agent_events on the reference) must refuse UPDATE, DELETE and
// TRUNCATE: for the Worker's role by its grants (42501), and for everyone, the owner
// included, by triggers (P0001). Each attempt targets a row that exists (an UPDATE
// matching no row raises nothing and proves nothing) and is rolled back. Then one
// run is rebuilt from its event rows alone and narrated: a finished run the target
// already holds, or, when the table holds no row or no finished run has events, one
// the reference Worker makes first in a drill tenant of its own, whose event rows
// the attempts then aim at. Without an event row (the Worker side cannot start, or
// its run wrote none) the drill cannot look: could-not-determine, saying which.
// Any other SQLSTATE (a lock timeout, a cancelled statement, a serialization
// failure) stopped the statement before either layer answered: the drill could not
// look: could-not-determine naming the SQLSTATE, unless another statement proved
// the table writable (a fail). The catalog is read too, because an attempt on one row as
// two roles cannot see a grant or a trigger condition that spares other roles, rows or
// columns: the Worker role must hold none of UPDATE (a column grant counts), DELETE and
// TRUNCATE, and each of them must meet an enabled BEFORE trigger with no WHEN condition
// (and, for UPDATE, no column list).
import { errorMessage } from '../postgres/errors.js';
import type { ProfileNames } from '../postgres/profile/index.js';
import { empty, identifier, join, raw, sql, type Sql } from '../postgres/sql.js';
import { withEvidence } from './evidence.js';
import { narrate, type EventRow } from './append-only-narrative.js';
import { runWorkerToExit } from './forensics-drill/index.js';
import { createDrillTenant, insertPending, sampleTransactions } from './inputs.js';
import { CouldNotDetermine } from './runner.js';
import { attemptAs, countWord, query, shownSql, type Attempt, type Statement } from './sql.js';
import { need, type Drill, type DrillContext } from './types.js';

/**
 * The reference seed's finished run (fixtures/seed.sql), which the drill replays on
 * the built-in reference profile whenever the target holds its runs row: its six
 * events are what the seed's evidence counts.
 */
export const seedReplayRun = 'R-44';
const operations = ['update', 'delete', 'truncate'] as const;
type Operation = (typeof operations)[number];

/**
 * The attempt on the target row. The UPDATE sets every assignable column to itself, so a
 * trigger written `before update of <column>` fires whichever column it names.
 */
function statement(n: ProfileNames, operation: Operation, id: string, columns: string[]): Sql {
  const e = n.events;
  switch (operation) {
    case 'update': {
      const assignments = join(columns.map((column) => sql`${identifier(column)} = ${identifier(column)}`));
      return sql`update ${e.table} set ${assignments} where ${e.key} = ${id}`;
    }
    case 'delete':
      return sql`delete from ${e.table} where ${e.key} = ${id}`;
    case 'truncate':
      return sql`truncate ${e.table}`;
  }
}

/** The events table as a regclass: its quoted, schema-qualified name, bound and cast. */
const eventsClass = (n: ProfileNames) => sql`${n.events.table.toString()}::regclass`;

/**
 * How long an attempt waits for a lock another session holds on the events table. Without it
 * a long transaction elsewhere would hang the drill; with it the attempt ends in 55P03,
 * which says the drill could not look, not that the table is writable.
 */
export const lockTimeout = '2s';

/**
 * What runs before each attempt, as the connecting role, inside the rolled-back
 * transaction: the lock timeout, and the deliberate break (UPDATE/DELETE/TRUNCATE
 * granted and the triggers dropped) when the drill is broken.
 */
function prelude(ctx: DrillContext, triggers: string[]): Statement[] {
  const limit = [`set local lock_timeout = '${lockTimeout}'`];
  if (!ctx.broken) return limit;
  const e = ctx.profile.names.events;
  return [
    ...limit,
    sql`grant update, delete, truncate on ${e.table} to ${identifier(ctx.roles.worker)}`,
    ...triggers.map((name) => sql`drop trigger ${identifier(name)} on ${e.table}`),
  ];
}

export type Layer = 'grant' | 'trigger' | 'landed' | 'swallowed' | 'other';

/** Which layer answered an attempt on an existing row. */
export function layerOf(attempt: Attempt): Layer {
  if (attempt.code === '42501') return 'grant';
  if (attempt.code === 'P0001') return 'trigger';
  if (attempt.code) return 'other';
  // No error: either the change landed, or something (a rule, a trigger returning NULL) hid it.
  if (attempt.command === 'TRUNCATE') return 'landed';
  return (attempt.rowCount ?? 0) > 0 ? 'landed' : 'swallowed';
}

function describe(attempt: Attempt): string {
  const layer = layerOf(attempt);
  switch (layer) {
    case 'grant':
      return 'refused by the grant (42501)';
    case 'trigger':
      return 'refused by the trigger (P0001)';
    case 'landed':
      return attempt.command === 'TRUNCATE'
        ? 'LANDED (table truncated)'
        : `LANDED (${attempt.rowCount} row${attempt.rowCount === 1 ? '' : 's'})`;
    case 'swallowed':
      return 'no error and no row changed (silently swallowed)';
    default:
      return `failed with ${attempt.code}: ${attempt.message ?? ''}`;
  }
}

/** What pg_trigger says of one trigger on the events table. */
interface TriggerRow {
  name: string;
  /** tgtype bits: 1 row, 2 before, 8 delete, 16 update, 32 truncate. */
  type: number;
  /** tgenabled: O origin, A always, R replica, D disabled. */
  enabled: string;
  hasWhen: boolean;
  /** The columns of `update of ...` (tgattr), empty when there is no column list. */
  columns: string[];
}

/** The Worker role's privileges on the events table, as has_table_privilege and has_column_privilege say. */
interface Privileges {
  update: boolean;
  delete: boolean;
  truncate: boolean;
  anyColumnUpdate: boolean;
  updateColumns: string[];
}

const tgBit = { row: 1, before: 2, delete: 8, update: 16, truncate: 32 } as const;

/** Why a trigger that fires before `operation` still lets some change through; empty when it does not. */
function gaps(operation: Operation, trigger: TriggerRow): string[] {
  const why: string[] = [];
  if (trigger.enabled === 'D') why.push('is disabled');
  if (trigger.hasWhen) why.push('has a WHEN condition');
  // A column list narrows only the UPDATE event of a trigger: DELETE fires it whatever the list.
  if (operation === 'update' && trigger.columns.length > 0) why.push(`has a column list (${trigger.columns.join(', ')})`);
  return why;
}

/** Why no trigger refuses `operation` for every role, row and column of `table`; undefined when one does. */
function uncovered(table: string, operation: Operation, triggers: TriggerRow[]): string | undefined {
  const perRow = operation !== 'truncate';
  const firing = triggers.filter(
    (trigger) =>
      (trigger.type & tgBit[operation]) !== 0 &&
      (trigger.type & tgBit.before) !== 0 &&
      ((trigger.type & tgBit.row) !== 0) === perRow,
  );
  if (firing.some((trigger) => gaps(operation, trigger).length === 0)) return undefined;
  const missing = `no unconditional BEFORE ${perRow ? 'ROW' : 'STATEMENT'} trigger covers ${operation.toUpperCase()} on ${table}`;
  if (firing.length === 0) return missing;
  return `${missing} (${firing.map((trigger) => `${trigger.name} ${gaps(operation, trigger).join(' and ')}`).join('; ')})`;
}

/** What the Worker role may do to the events table that an append-only table forbids. */
function heldPrivileges(table: string, worker: string, privileges: Privileges): string[] {
  const held = operations.filter((operation) => privileges[operation]).map((operation) => operation.toUpperCase());
  const reasons = held.length > 0 ? [`${worker} holds ${held.join(', ')} on ${table}`] : [];
  // A column grant lets the Worker rewrite those columns though the table grant is absent.
  if (!privileges.update && privileges.anyColumnUpdate) {
    reasons.push(`${worker} holds UPDATE on ${table} (${privileges.updateColumns.join(', ')})`);
  }
  return reasons;
}

/** Where the replayed run came from: the reference seed's, one the target holds, or one the drill made with the reference Worker. */
type ReplaySource = 'seed' | 'target' | 'worker';

/** How the observation and the evidence name where the replayed run came from. */
const sourceWords: Record<ReplaySource, string> = {
  seed: "the reference seed's run",
  target: 'a finished run of the target',
  worker: 'made by the drill with the reference Worker',
};

interface State {
  /** The run replayed, and where it came from. */
  replayRun?: string;
  replaySource?: ReplaySource;
  /** The event row every UPDATE and DELETE aims at: one that exists (of the replayed run when it has one). */
  targetId?: string;
  /** The table's own triggers, which the break drops inside its rolled-back transaction. */
  triggers: string[];
  /** The columns an UPDATE can set to themselves (not generated, not identity ALWAYS). */
  columns: string[];
  /** The Worker role's privileges from the catalog; undefined when the role does not exist. */
  privileges?: Privileges;
  /** Every non-internal trigger of the events table from pg_trigger. */
  triggerCatalog: TriggerRow[];
  /** The role that owns the events table, as pg_class says (grants do not bind it). */
  ownerRole?: string;
  /** Each attempt as the Worker role, in the order of `operations`. */
  workerAttempts: Array<readonly [Operation, Attempt]>;
  /** Each attempt as the owner, in the order of `operations`. */
  ownerAttempts: Array<readonly [Operation, Attempt]>;
  /** Event rows of the replayed run. */
  replayEvents: number;
}

/** The events of one run in their order, as the narrative reads them. */
function eventsOf(n: ProfileNames, run: unknown): Sql {
  const e = n.events;
  const turn = e.turn_number ? sql`e.${e.turn_number}` : sql`null::int`;
  // Qualified: a bare key in ORDER BY would name the text alias `id`, and order 10 before 9.
  return sql`select e.${e.key}::text as id, ${turn} as turn_no, e.${e.type} as event_type, e.${e.payload} as detail
               from ${e.table} e where e.${e.run} = ${run} order by e.${e.key}`;
}

/** The first event row of the run, or of the table when the run has none. */
function firstEventRow(n: ProfileNames, run: unknown): Sql {
  const e = n.events;
  return sql`select coalesce((select ${e.key}::text from ${e.table} where ${e.run} = ${run} order by ${e.key} limit 1),
                             (select ${e.key}::text from ${e.table} order by ${e.key} limit 1))`;
}

/**
 * The target's finished run with the most event rows, the latest of those first
 * (by its newest event, or its start, when the profile names when).
 */
function finishedRunWithEvents(n: ProfileNames): Sql {
  const e = n.events;
  const r = n.runs;
  const latest = [
    e.created_at ? sql`max(e.${e.created_at}) desc` : undefined,
    r.started_at ? sql`max(r.${r.started_at}) desc` : undefined,
  ].filter((part): part is Sql => part !== undefined);
  return sql`select e.${e.run}::text as id, count(*)::int as events
               from ${e.table} e join ${r.table} r on r.${r.key} = e.${e.run}
              where r.${r.status} = ${r.values.finished}
              group by e.${e.run}
              order by count(*) desc, ${latest.length > 0 ? sql`${join(latest)}, ` : empty}e.${e.run}::text desc
              limit 1`;
}

/**
 * The run to replay: on the built-in reference profile the seed's R-44 whenever its
 * runs row is there (its events gone is data missing, said so by the verdict); else
 * the target's finished run with the most events; else none (undefined).
 */
async function findReplayRun(ctx: DrillContext): Promise<{ id: string; source: ReplaySource } | undefined> {
  const n = ctx.profile.names;
  if (!ctx.profile.given) {
    const seed = await query<{ id: string }>(
      ctx,
      sql`select ${n.runs.key}::text as id from ${n.runs.table} where ${n.runs.key}::text = ${seedReplayRun}`,
    );
    if (seed[0]) return { id: seed[0].id, source: 'seed' };
  }
  const [found] = await query<{ id: string; events: number }>(ctx, finishedRunWithEvents(n));
  return found ? { id: found.id, source: 'target' } : undefined;
}

/**
 * A run of the reference Worker on a tenant of the drill's own: one turn (claim,
 * write, queue) through the tool server, which journals its events. Returns its run
 * id. `why` says why the drill needs it; whatever stops the Worker side (no login to
 * act as the worker role, a process that does not start or exit) is could-not-determine:
 * without a run there is nothing to aim at or replay, which says nothing of the habit.
 */
async function makeReplayRun(ctx: DrillContext, why: string): Promise<string> {
  const cannot = (error: unknown) =>
    new CouldNotDetermine(`${why}, and the reference Worker could not make a run: ${errorMessage(error)}`, { cause: error });
  // The tool server first (the session's shared one): when the Worker side cannot start, the drill writes no tenant.
  const tools = await ctx.system.sharedToolServer().catch((error: unknown) => {
    throw cannot(error);
  });
  const tenant = await createDrillTenant(ctx, 'append');
  const pending = await insertPending(ctx, tenant.id, sampleTransactions.slice(0, 1));
  ctx.observe('pending', pending);
  const outcome = await runWorkerToExit(ctx, tenant, tools, (line) => ctx.emit({ type: 'log', message: line })).catch(
    (error: unknown) => {
      throw cannot(error);
    },
  );
  ctx.observe('worker_exit', outcome.signal ?? outcome.exitCode, outcome.exitCode === 0);
  if (!outcome.runId) {
    throw new CouldNotDetermine(
      `${why}, and the reference Worker started no run ` +
        `(exit ${String(outcome.signal ?? outcome.exitCode)}${outcome.failed ? `: ${String(outcome.failed.error)}` : ''}), so no run could be replayed`,
    );
  }
  return outcome.runId;
}

export const appendOnlyEventTest: Drill<State> = {
  number: 6,
  key: 'append_only_event_test',
  title: 'Append-only events',
  lesson: 6,
  habit: 'append-only agent_events',
  tables: ['agent_events'],
  needs: [{ table: 'agent_events', columns: ['id', 'run_id', 'turn_no', 'event_type', 'detail'] }],
  breakDescription: 'UPDATE, DELETE and TRUNCATE granted to the Worker role and the triggers dropped (inside a rolled-back transaction): the update lands',
  fix: (n) =>
    `revoke UPDATE, DELETE and TRUNCATE on ${n.events.tableName} from the Worker role and add BEFORE UPDATE OR DELETE (row) ` +
    'and BEFORE TRUNCATE (statement) triggers that raise',
  init: () => ({ triggers: [], columns: [], triggerCatalog: [], workerAttempts: [], ownerAttempts: [], replayEvents: 0 }),
  steps: [
    {
      id: 'find-run',
      title: 'Find the run to replay, or make one with the reference Worker',
      why:
        'The attempts need an event row that exists, and the replay a run told by its events. ' +
        'The run is one the target holds (the finished run with the most events); when the table holds no row, ' +
        'or no finished run has events, the drill first makes one with the reference Worker in a tenant of its own.',
      hint: {
        look: "replay_run names the run to rebuild and where it came from: the seed's R-44, a finished run already in the target, or one the drill just made with the reference Worker (then pending and worker_exit show it).",
        mistake: 'Replaying a run that is still running or was cut short. Its events stop half-way, so a gap in the story says nothing about the log; a finished run should be told from its start to its end.',
      },
      sql: (n) => [shownSql(finishedRunWithEvents(n))],
      async run(ctx, state) {
        const e = ctx.profile.names.events;
        const [table] = await query<{ held: boolean }>(ctx, sql`select exists (select from ${e.table}) as held`);
        const found = table?.held ? await findReplayRun(ctx) : undefined;
        const why = table?.held
          ? `the target holds no finished run with ${e.tableName} rows`
          : `${e.tableName} holds no row to attempt a change on or replay`;
        const run = found ?? { id: await makeReplayRun(ctx, why), source: 'worker' as const };
        state.replayRun = run.id;
        state.replaySource = run.source;
        ctx.observe('replay_run', `${run.id} (${sourceWords[run.source]})`);
      },
    },
    {
      id: 'target-row',
      title: 'Pick an event row that exists',
      why: 'An UPDATE that matches no row raises nothing even on a writable table, so the attempt must aim at a real row: one of the run to replay when it has one.',
      hint: {
        look: 'target_id is a real event row that every UPDATE and DELETE will aim at, and triggers lists the triggers on the events table: expect one for UPDATE and DELETE and a separate one for TRUNCATE.',
        mistake: 'Testing on an empty table or with WHERE id = -1. An UPDATE that matches no row succeeds with 0 rows even on a fully writable table, so it looks refused when nothing was tried.',
      },
      sql: (n) => [shownSql(firstEventRow(n, raw('$1')))],
      async run(ctx, state) {
        const n = ctx.profile.names;
        const e = n.events;
        const run = need(state.replayRun, 'the run to replay');
        const rows = await query<{ id: string | null; triggers: string[]; columns: string[] }>(
          ctx,
          sql`select (${firstEventRow(n, run)}) as id,
                     array(select tgname::text from pg_trigger
                            where tgrelid = ${eventsClass(n)} and not tgisinternal order by tgname) as triggers,
                     array(select attname::text from pg_attribute
                            where attrelid = ${eventsClass(n)} and attnum > 0 and not attisdropped
                              and attgenerated = '' and attidentity <> 'a' order by attnum) as columns`,
        );
        const id = rows[0]?.id;
        // An empty table cannot show a refusal (an UPDATE of no row raises nothing): the data is missing, not the habit.
        if (!id) {
          throw new CouldNotDetermine(
            state.replaySource === 'worker'
              ? `${e.tableName} holds no row to attempt a change on: the reference Worker's run ${run}, which the drill made, wrote no event row (see the tool server's log)`
              : `${e.tableName} holds no row to attempt a change on; let a Worker journal a run first, or drill a target set up by \`sor-drills setup\``,
          );
        }
        state.targetId = id;
        state.triggers = rows[0]?.triggers ?? [];
        state.columns = rows[0]?.columns ?? [];
        ctx.observe('target_id', id);
        ctx.observe('triggers', state.triggers);
      },
    },
    {
      id: 'catalog',
      title: "Read the Worker role's privileges and the triggers of the events table",
      why: 'One row tried as two roles cannot show a column grant, or a trigger whose WHEN condition or column list spares other roles, rows or columns.',
      hint: {
        look: 'worker_privileges must show update, delete and truncate false and no updateColumns. trigger_covers_update, _delete and _truncate must each say yes: an enabled BEFORE trigger with no WHEN condition and no column list.',
        mistake: 'Counting on a row trigger to stop TRUNCATE. TRUNCATE fires no row-level triggers, so a BEFORE UPDATE OR DELETE FOR EACH ROW trigger lets it empty the table; it needs its own BEFORE TRUNCATE statement trigger.',
      },
      async run(ctx, state) {
        const n = ctx.profile.names;
        const table = n.events.tableName;
        const worker = ctx.roles.worker;
        const rel = eventsClass(n);
        const role = sql`${worker}::name`;
        const privileges = await query<Privileges>(
          ctx,
          sql`select has_table_privilege(${role}, ${rel}, 'UPDATE') as "update",
                     has_table_privilege(${role}, ${rel}, 'DELETE') as "delete",
                     has_table_privilege(${role}, ${rel}, 'TRUNCATE') as "truncate",
                     has_any_column_privilege(${role}, ${rel}, 'UPDATE') as "anyColumnUpdate",
                     array(select attname::text from pg_attribute
                            where attrelid = ${rel} and attnum > 0 and not attisdropped
                              and has_column_privilege(${role}, ${rel}, attnum, 'UPDATE') order by attnum) as "updateColumns"
                from pg_roles where rolname = ${role}`,
        );
        // No such role: the attempts as it end in an error and say could-not-determine.
        state.privileges = privileges[0];
        const held = state.privileges && heldPrivileges(table, worker, state.privileges);
        ctx.observe('worker_privileges', state.privileges ?? `role ${worker} not found`, held && held.length === 0);
        state.triggerCatalog = await query<TriggerRow>(
          ctx,
          sql`select t.tgname::text as name, t.tgtype::int as type, t.tgenabled::text as enabled,
                     t.tgqual is not null as "hasWhen",
                     array(select a.attname::text from pg_attribute a
                            where a.attrelid = t.tgrelid and a.attnum = any(t.tgattr) order by a.attnum) as columns
                from pg_trigger t
               where t.tgrelid = ${rel} and not t.tgisinternal
               order by t.tgname`,
        );
        ctx.observe('trigger_catalog', state.triggerCatalog);
        for (const operation of operations) {
          const gap = uncovered(table, operation, state.triggerCatalog);
          ctx.observe(`trigger_covers_${operation}`, gap ?? 'yes', gap === undefined);
        }
      },
    },
    {
      id: 'as-worker',
      title: 'Try UPDATE, DELETE and TRUNCATE as the Worker role',
      why: 'The Worker role must be refused by its grants: it was never given UPDATE, DELETE or TRUNCATE on the events table.',
      hint: {
        look: "worker_update, worker_delete and worker_truncate should each fail with 42501, permission denied: the grant refuses before any trigger runs. The oracle's diff of the events table must show no change.",
        mistake: 'Revoking UPDATE and DELETE but leaving TRUNCATE, or granting ALL to the Worker role out of habit. TRUNCATE is a privilege of its own and must be withheld too; so must a column-level UPDATE grant.',
      },
      async run(ctx, state) {
        const n = ctx.profile.names;
        const e = n.events;
        const id = need(state.targetId, 'the target event row');
        // The oracle confirms from committed state that no attempt changed a row.
        await withEvidence(
          ctx,
          {
            label: `UPDATE, DELETE and TRUNCATE on ${e.tableName} as ${ctx.roles.worker}, each rolled back`,
            tables: [{ name: e.tableName, key: [e.key.name] }],
            expect: [`${e.tableName}:=`],
            volatiles: [`!${e.key.name}`],
          },
          async (log) => {
            for (const operation of operations) {
              const attempt = await attemptAs(ctx, ctx.roles.worker, statement(n, operation, id, state.columns), {
                prelude: prelude(ctx, state.triggers),
              });
              log(`${operation}: ${describe(attempt)}`);
              state.workerAttempts.push([operation, attempt]);
              ctx.observe(`worker_${operation}`, attempt, layerOf(attempt) === 'grant');
            }
          },
        );
      },
    },
    {
      id: 'as-owner',
      title: 'Try the same as the table owner',
      why: 'Grants do not bind the owner; only a trigger refuses the owner too (TRUNCATE needs its own statement trigger).',
      hint: {
        look: 'owner_role names who owns the table. Each attempt here should fail with P0001, the exception the trigger raises, since grants never bind the owner; TRUNCATE must fail too, from its statement trigger.',
        mistake: 'Stopping at the grant test. Grants never bind the table owner, which migrations and admin scripts often run as; only the triggers refuse it. A superuser can still skip ordinary triggers with session_replication_role = replica.',
      },
      async run(ctx, state) {
        const n = ctx.profile.names;
        const id = need(state.targetId, 'the target event row');
        const owner = await query<{ owner: string }>(
          ctx,
          sql`select pg_get_userbyid(relowner) as owner from pg_class where oid = ${eventsClass(n)}`,
        );
        const ownerRole = owner[0]?.owner ?? ctx.roles.owner;
        state.ownerRole = ownerRole;
        ctx.observe('owner_role', ownerRole);
        for (const operation of operations) {
          const attempt = await attemptAs(ctx, ownerRole, statement(n, operation, id, state.columns), {
            prelude: prelude(ctx, state.triggers),
          });
          state.ownerAttempts.push([operation, attempt]);
          ctx.observe(`owner_${operation}`, attempt, layerOf(attempt) === 'trigger');
        }
      },
    },
    {
      id: 'replay',
      title: 'Replay a run from its events alone',
      why:
        'An append-only log is only worth keeping if a run can be told from it, in order, without any other table. ' +
        'The run is the one the first step found in the target or made with the reference Worker.',
      hint: {
        look: "replay_events counts the run's event rows (six for the seed's R-44), and narrative tells the run in plain English, in id order. Every sentence must come from an event row: its type, turn and detail.",
        mistake: 'Ordering events by created_at: a default of now() is the same for every row of one transaction, so ties come back in any order; order by the id. And never fill a gap in the story from another table: the gap is the finding.',
      },
      sql: (n) => [shownSql(eventsOf(n, raw('$1')))],
      async run(ctx, state) {
        const n = ctx.profile.names;
        const run = need(state.replayRun, 'the run to replay');
        const events = await query<EventRow>(ctx, eventsOf(n, run));
        state.replayEvents = events.length;
        ctx.observe('replay_events', events.length, events.length > 0);
        const story = narrate(run, events);
        ctx.observe('narrative', story.join(' '));
        for (const sentence of story) ctx.notes.push(sentence);
      },
    },
  ],
  verdict(ctx, state) {
    const table = ctx.profile.names.events.tableName;
    const worker = state.workerAttempts;
    const owner = state.ownerAttempts;
    const events = state.replayEvents;
    const replayRun = state.replayRun ?? seedReplayRun;
    const workerBad = worker.filter(([, attempt]) => layerOf(attempt) !== 'grant');
    const ownerBad = owner.filter(([, attempt]) => layerOf(attempt) !== 'trigger');
    const summary = (list: typeof worker) =>
      list.map(([operation, attempt]) => `${operation.toUpperCase()} ${describe(attempt)}`).join(', ');
    // A statement that ended in another SQLSTATE (a lock or statement timeout, a
    // serialization failure) was stopped before either layer answered: it proves nothing.
    const proven = (list: typeof worker) => list.filter(([, attempt]) => layerOf(attempt) !== 'other');
    const workerWrong = proven(workerBad);
    const ownerWrong = proven(ownerBad);
    // What the catalog proves whatever the attempts on one row showed.
    const catalogWrong = [
      ...(state.privileges ? heldPrivileges(table, ctx.roles.worker, state.privileges) : []),
      ...operations.flatMap((operation) => uncovered(table, operation, state.triggerCatalog) ?? []),
    ];
    if (workerWrong.length > 0 || ownerWrong.length > 0 || catalogWrong.length > 0) {
      const reasons: string[] = [];
      if (workerBad.length > 0) reasons.push(`as ${ctx.roles.worker}: ${summary(workerBad)}`);
      if (ownerBad.length > 0) reasons.push(`as owner ${String(state.ownerRole)}: ${summary(ownerBad)}`);
      reasons.push(...catalogWrong);
      if (events === 0) reasons.push(`run ${replayRun} has no ${table} rows to replay`);
      const reason = `${table} is not append-only: ${reasons.join('; ')}`;
      return { verdict: 'fail', evidence: reason, reason };
    }
    // Every change was refused, but there is no run to replay: the target lacks the data the
    // replay half needs, which says nothing about the habit.
    if (events === 0 && workerBad.length === 0 && ownerBad.length === 0) {
      const where =
        state.replaySource === 'worker'
          ? "(the drill made it with the reference Worker, and the Worker's run wrote no event row: see the tool server's log)"
          : state.replaySource === 'target'
            ? '(the target changed while the drill ran: run it again)'
            : "(the reference seed's finished run; install it with `sor-drills setup` into an empty database)";
      const reason = `could not determine: run ${replayRun} has no ${table} rows in the target, so no run could be replayed ${where}`;
      return { verdict: 'could-not-determine', evidence: reason, reason };
    }
    if (workerBad.length > 0 || ownerBad.length > 0) {
      const reason = couldNotLook(table, [
        ...workerBad.map(([operation, attempt]) => ({ who: ctx.roles.worker, operation, attempt })),
        ...ownerBad.map(([operation, attempt]) => ({ who: `owner ${String(state.ownerRole)}`, operation, attempt })),
      ]);
      return { verdict: 'could-not-determine', evidence: reason, reason };
    }
    const [update, ...others] = operations.map((operation, index) => ({
      operation,
      worker: worker[index]![1],
      owner: owner[index]![1],
    }));
    return {
      verdict: 'pass',
      evidence:
        `UPDATE on ${table} raised ${refusalWords(update!.worker)} as ${ctx.roles.worker} and ${refusalWords(update!.owner)} ` +
        `as owner ${String(state.ownerRole)}; ${sameWay(update!, others)}. ` +
        `Replayed run ${replayRun}${state.replaySource === 'worker' ? ' that the drill made with the reference Worker,' : ''} ` +
        `from ${countWord(events)} event rows. Narrative reconstructed without consulting the snapshot.`,
    };
  },
};

/** The seed's words for a refusal, with the SQLSTATE and the layer it came from, as observed. */
function refusalWords(attempt: Attempt): string {
  const layer = layerOf(attempt);
  if (layer === 'grant') return `permission error (${attempt.code}, grant)`;
  if (layer === 'trigger') return `trigger exception (${attempt.code})`;
  return describe(attempt);
}

interface Refusals {
  operation: Operation;
  worker: Attempt;
  owner: Attempt;
}

/** "DELETE and TRUNCATE refused the same way", from each statement's SQLSTATE and layer as both roles saw them. */
function sameWay(update: Refusals, others: Refusals[]): string {
  const signature = (refusals: Refusals) =>
    [refusals.worker, refusals.owner].map((attempt) => `${attempt.code ?? '-'}/${layerOf(attempt)}`).join(' ');
  const names = (list: Refusals[]) => list.map((refusals) => refusals.operation.toUpperCase()).join(' and ');
  const same = others.filter((refusals) => signature(refusals) === signature(update));
  const different = others.filter((refusals) => signature(refusals) !== signature(update));
  const parts = same.length > 0 ? [`${names(same)} refused the same way`] : [];
  for (const refusals of different) {
    parts.push(`${refusals.operation.toUpperCase()} ${refusalWords(refusals.worker)} and ${refusalWords(refusals.owner)}`);
  }
  return parts.join('; ');
}

/** What to do about a SQLSTATE that stopped a statement before the grant or the trigger answered. */
function adviceFor(table: string, code: string | undefined): string {
  if (code === '55P03') {
    return `another session holds a lock on ${table} (see pg_locks and pg_stat_activity): let it finish, then run the drill again`;
  }
  if (code === '57014') return 'the statement was cancelled (statement_timeout or a cancel request): run the drill again when nothing cancels it';
  if (code === '40001' || code === '40P01') return 'a serialization failure or deadlock with another session: run the drill again';
  if (code?.startsWith('08') || code?.startsWith('57')) return 'the connection or the server went away: check the server, then run the drill again';
  return `look ${code ?? 'the error'} up in the server's log, then run the drill again`;
}

/** The reason of a could-not-determine: which statements ended in which SQLSTATE, and what to do. */
function couldNotLook(table: string, stopped: Array<{ who: string; operation: Operation; attempt: Attempt }>): string {
  const codes = [...new Set(stopped.map(({ attempt }) => attempt.code))];
  const parts = codes.map((code) => {
    const withCode = stopped.filter(({ attempt }) => attempt.code === code);
    const roles = [...new Set(withCode.map(({ who }) => who))];
    const statements = roles.map(
      (who) => `${withCode.filter((item) => item.who === who).map(({ operation }) => operation.toUpperCase()).join(', ')} as ${who}`,
    );
    const message = withCode[0]?.attempt.message;
    return `${statements.join(' and ')} failed with ${code}${message ? ` (${message})` : ''}`;
  });
  const advice = codes.map((code) => adviceFor(table, code)).join('; ');
  return `could not determine: ${parts.join('; ')}, before the grant or the trigger answered; ${advice}`;
}
