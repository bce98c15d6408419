// The journal gate: how the run-journal drill stops an operator's Worker side in the
// middle of turn 3 however fast it is, without a hook in their code. The drill, on
// connections of its own, holds `LOCK TABLE <tool_calls> IN SHARE MODE` from before
// the Worker starts. SHARE conflicts with the ROW EXCLUSIVE every INSERT and UPDATE
// takes (SELECTs still pass), so each write of the Worker side to its tool calls
// waits at the gate. The drill sees the waiter in pg_locks (a lock on that relation,
// not granted, held by a session tagged as its tool server's), reads the journal,
// and either lets exactly that one transaction through or, once the journal shows
// turn 3 started and not finished, keeps it waiting: the Worker side is frozen in
// the database, and the drill kills it there.
//
// Why tool_calls and not turns: the contract has every call write its tool_calls row
// twice (the 'started' row committed before the action, the completion in the
// action's own transaction), so each call stops at the gate twice, whatever the tool
// server does with turns. A tool server that writes turns only when a turn begins
// and ends would pass a turns gate only at turn 3's end.
//
// Letting one through, on two connections that take turns holding the gate: the
// idle one asks for SHARE too. That request conflicts with the writer already
// waiting, so it queues behind it; only once it is seen queued does the holder
// COMMIT. The COMMIT grants the waiting writer its lock, and the queued SHARE is
// granted when that writer's transaction ends: a later writer meets it and waits.
// (COMMIT and then a new LOCK on one connection leaves a window between the two in
// which a fast Worker's next write slips through: seen under load.)
//
// Glossary
//   gate     the drill's SHARE lock on the tool_calls table, the two connections that
//            hand it over (the holders) and the one that watches it (the observer)
//   waiter   a session whose lock on the gate's table is not granted
//   tagged   a session whose application_name is the tool server's sessionTag: the
//            drill's own process, the only sessions the drill ever cancels
//   pass     one transaction of the Worker side let through the gate
//   freeze   the journal shows the turn started and not finished while a tagged
//            writer waits: nothing of the Worker side can commit to tool_calls
import type pg from 'pg';
import { connect, errorMessage, sqlState } from '../postgres/pg.js';
import type { ProfileNames } from '../postgres/profile/index.js';
import { empty, sql } from '../postgres/sql.js';
import type { ProcessInfo, Supervisor } from '../reconciler/supervisor.js';
import { waitFor, WaitTimeout } from '../util/wait.js';
import { CouldNotDetermine } from './runner.js';

/** A run of the drill tenant, as the journal holds it. */
export interface JournalRun {
  id: string;
  status: string;
  /** runs.worker when the profile maps it. */
  worker: string | null;
}

export interface JournalTurn {
  run: string;
  number: number;
  status: string;
}

export interface JournalCall {
  id: string;
  run: string;
  turn: number;
  number: number;
  tool: string;
  status: string;
}

/** The drill tenant's runs, turns and tool calls at one moment. */
export interface Journal {
  runs: JournalRun[];
  turns: JournalTurn[];
  calls: JournalCall[];
}

/** A session waiting on the gate's table. */
export interface GateWaiter {
  pid: number;
  application: string;
  /** The statement it waits in, shortened. */
  query: string;
}

/** Reads the tenant's journal through the profile's names (tool calls reach their run through turns). */
export async function readJournal(client: pg.Client, n: ProfileNames, tenant: string): Promise<Journal> {
  const r = n.runs;
  const t = n.turns;
  const c = n.tool_calls;
  const worker = r.worker ? sql`r.${r.worker}::text` : sql`null::text`;
  const runs = await client.query<JournalRun>(
    sql`select r.${r.key}::text as id, r.${r.status}::text as status, ${worker} as worker
          from ${r.table} r where r.${r.tenant} = ${tenant} order by r.${r.key}`,
  );
  const turns = await client.query<JournalTurn>(
    sql`select t.${t.run}::text as run, t.${t.number}::int as number, t.${t.status}::text as status
          from ${t.table} t join ${r.table} r on r.${r.key} = t.${t.run}
         where r.${r.tenant} = ${tenant} order by 1, 2`,
  );
  const started = c.started_at ? sql`, c.${c.started_at}` : empty;
  const calls = await client.query<JournalCall>(
    sql`select c.${c.key}::text as id, t.${t.run}::text as run, t.${t.number}::int as turn, c.${c.number}::int as number,
               c.${c.tool}::text as tool, c.${c.status}::text as status
          from ${c.table} c join ${t.table} t on t.${t.key} = c.${c.turn} join ${r.table} r on r.${r.key} = t.${t.run}
         where r.${r.tenant} = ${tenant}
         order by t.${t.run}, t.${t.number}, c.${c.number}${started}, c.${c.key}`,
  );
  return { runs: runs.rows, turns: turns.rows, calls: calls.rows };
}

/** Where a run stands against one turn: `mid` is the freeze point (started, not finished, a call of it completed). */
export type TurnState =
  | { kind: 'before' }
  | { kind: 'mid'; run: string; completedCalls: JournalCall[]; last: JournalCall }
  | { kind: 'past'; run: string };

/**
 * The turn's state in the journal. Started: its turns row exists (or a call of it is
 * journaled). The freeze waits for one of its calls to have completed, so that the
 * resume can be checked for not repeating it; a turn whose calls all ran in one
 * transaction goes from `before` to `past` and is never `mid`.
 */
export function turnState(journal: Journal, n: ProfileNames, turn: number): TurnState {
  const completedTurn = n.turns.values.completed;
  const completedCall = n.tool_calls.values.completed;
  for (const run of journal.runs) {
    const row = journal.turns.find((entry) => entry.run === run.id && entry.number === turn);
    const calls = journal.calls.filter((call) => call.run === run.id && call.turn === turn);
    if (!row && calls.length === 0) continue;
    if (row?.status === completedTurn) return { kind: 'past', run: run.id };
    const completed = calls.filter((call) => call.status === completedCall);
    if (completed.length > 0) return { kind: 'mid', run: run.id, completedCalls: completed, last: calls.at(-1)! };
  }
  return { kind: 'before' };
}

/** `turn 3 call 2 (record_expense, started)`. */
export function callPoint(call: JournalCall | undefined): string {
  return call ? `turn ${call.turn} call ${call.number} (${call.tool}, ${call.status})` : 'no call journaled';
}

/** What changed in the run's journal between two readings, one line per change (none: nothing landed). */
export function journalChanges(before: Journal, after: Journal): string[] {
  const changes: string[] = [];
  const runs = new Map(before.runs.map((run) => [run.id, run.status]));
  for (const run of after.runs) {
    const was = runs.get(run.id);
    if (was === undefined) changes.push(`run ${run.id} appeared (${run.status})`);
    else if (was !== run.status) changes.push(`run ${run.id} went ${was} -> ${run.status}`);
  }
  const turns = new Map(before.turns.map((turn) => [`${turn.run}/${turn.number}`, turn.status]));
  for (const turn of after.turns) {
    const was = turns.get(`${turn.run}/${turn.number}`);
    if (was === undefined) changes.push(`turn ${turn.number} appeared (${turn.status})`);
    else if (was !== turn.status) changes.push(`turn ${turn.number} went ${was} -> ${turn.status}`);
  }
  const calls = new Map(before.calls.map((call) => [call.id, call.status]));
  for (const call of after.calls) {
    const was = calls.get(call.id);
    if (was === undefined) changes.push(`${callPoint(call)} appeared`);
    else if (was !== call.status) changes.push(`turn ${call.turn} call ${call.number} (${call.tool}) went ${was} -> ${call.status}`);
  }
  return changes;
}

export interface GateOptions {
  /** The drill's own URL (owner or superuser): it takes the lock and reads the journal. */
  url: string;
  names: ProfileNames;
  /** The drill tenant whose journal is read. */
  tenant: string;
  /** The application_name of the tool server's sessions (sessionTag). */
  sessionTag: string;
  /** How long one LOCK may wait (a writer let through that never ends; another session's write). */
  lockTimeoutMs?: number;
}

/** The drill's lock on the journal's tool calls: two connections that hand it over, and one that watches. */
export class JournalGate {
  /** Transactions let through so far. */
  passes = 0;
  private open = true;
  /** Which of the two holders holds the lock now. */
  private holding = 0;

  private constructor(
    private readonly holders: readonly [pg.Client, pg.Client],
    private readonly holderPids: readonly number[],
    private readonly observer: pg.Client,
    readonly options: GateOptions,
  ) {}

  /** Takes the gate: from here on no write to tool_calls commits unless the gate lets it through. */
  static async take(options: GateOptions): Promise<JournalGate> {
    const opened: pg.Client[] = [];
    try {
      for (let index = 0; index < 3; index += 1) opened.push(await connect(options.url, { applicationName: 'sor-drills-journal-gate' }));
      const [first, second, observer] = opened as [pg.Client, pg.Client, pg.Client];
      const pids: number[] = [];
      for (const holder of [first, second]) {
        pids.push((await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid);
        await holder.query(`set lock_timeout = ${Math.round(options.lockTimeoutMs ?? 20_000)}`);
      }
      const gate = new JournalGate([first, second], pids, observer, options);
      await gate.lock(first);
      return gate;
    } catch (error) {
      for (const client of opened) await client.end().catch(() => {});
      throw error;
    }
  }

  private get table(): string {
    return this.options.names.tool_calls.table.toString();
  }

  private async lock(holder: pg.Client): Promise<void> {
    try {
      await holder.query(`begin; lock table ${this.table} in share mode`);
    } catch (error) {
      await holder.query('rollback').catch(() => {});
      const code = sqlState(error);
      const why = code === '55P03' ? `another transaction kept writing ${this.options.names.tool_calls.tableName} for the whole lock_timeout` : errorMessage(error);
      throw new CouldNotDetermine(`the journal gate (LOCK TABLE ${this.options.names.tool_calls.tableName} IN SHARE MODE) could not be taken: ${why}`, {
        cause: error,
      });
    }
  }

  /** Whether this pid's request for the gate's table is in pg_locks (queued or granted). */
  private async requested(pid: number): Promise<boolean> {
    const { rows } = await this.observer.query(
      `select 1 from pg_locks where locktype = 'relation' and pid = $1 and relation = to_regclass($2) and mode = 'ShareLock'`,
      [pid, this.table],
    );
    return rows.length > 0;
  }

  /** The sessions waiting on the gate's table: the tool server's (tagged) and any others. */
  async waiters(): Promise<{ tagged: GateWaiter[]; others: GateWaiter[] }> {
    const { rows } = await this.observer.query<GateWaiter>(
      `select l.pid, coalesce(a.application_name, '') as application, left(coalesce(a.query, ''), 160) as query
         from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'relation' and not l.granted and l.pid <> all($1::int[])
          and l.database = (select oid from pg_database where datname = current_database())
          and l.relation = to_regclass($2)
        order by l.pid`,
      [this.holderPids, this.table],
    );
    const tag = this.options.sessionTag;
    return { tagged: rows.filter((row) => row.application === tag), others: rows.filter((row) => row.application !== tag) };
  }

  /** Lets the waiting transaction through; resolves once it has ended and the other holder holds the gate. */
  async pass(): Promise<void> {
    const current = this.holders[this.holding]!;
    const next = this.holding === 0 ? 1 : 0;
    const locking = this.lock(this.holders[next]!);
    // Settled here or below; never an unhandled rejection.
    locking.catch(() => {});
    try {
      await waitFor('the next holder of the journal gate to queue', () => this.requested(this.holderPids[next]!), { timeoutMs: 10_000, intervalMs: 1 });
    } catch (error) {
      await locking.catch(() => {});
      throw error;
    }
    await current.query('commit');
    this.holding = next;
    await locking;
    this.passes += 1;
  }

  async journal(): Promise<Journal> {
    return readJournal(this.observer, this.options.names, this.options.tenant);
  }

  /**
   * Cancels the tagged sessions still waiting at the gate (the killed tool server's
   * write in flight: its backend does not notice its client is gone while it waits).
   * The application_name is checked again in the statement that cancels, in a CASE:
   * Postgres may evaluate a WHERE clause's conditions in any order.
   */
  async cancelWaiting(): Promise<{ canceled: number[]; refused?: string }> {
    const { tagged } = await this.waiters();
    if (tagged.length === 0) return { canceled: [] };
    try {
      const { rows } = await this.observer.query<{ pid: number }>(
        `select pid from (
           select pid, case when application_name = $2 and datname = current_database() then pg_cancel_backend(pid) else false end as canceled
             from pg_stat_activity where pid = any($1::int[])) as sessions
          where canceled`,
        [tagged.map((waiter) => waiter.pid), this.options.sessionTag],
      );
      return { canceled: rows.map((row) => row.pid) };
    } catch (error) {
      return { canceled: [], refused: `${errorMessage(error)}${sqlState(error) ? ` [SQLSTATE ${sqlState(error)}]` : ''}` };
    }
  }

  /** The tagged sessions still connected to this database. */
  async taggedSessions(): Promise<GateWaiter[]> {
    const { rows } = await this.observer.query<GateWaiter>(
      `select pid, application_name as application, left(coalesce(query, ''), 160) as query from pg_stat_activity
        where application_name = $1 and datname = current_database() order by pid`,
      [this.options.sessionTag],
    );
    return rows;
  }

  /** Opens the gate for good (idempotent): both holders' transactions end and their connections close. */
  async release(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    for (const holder of this.holders) {
      await holder.query('commit').catch(() => {});
      await holder.end().catch(() => {});
    }
  }

  /** Closes the observer too (after release); what release() leaves for reading the journal afterwards. */
  async close(): Promise<void> {
    await this.release();
    await this.observer.end().catch(() => {});
  }
}

/** How driving the Worker side to the freeze ended. */
export type Drive =
  | { kind: 'frozen'; run: string; journal: Journal; waiting: GateWaiter[]; completedCalls: JournalCall[]; point: string; passes: number }
  /** A process of the Worker side ended first (the callback's description). */
  | { kind: 'ended'; journal: Journal; how: string }
  /** The turn finished without ever being seen started and not finished while a writer waited. */
  | { kind: 'past'; run: string; journal: Journal }
  /** No tagged writer came to the gate in time; `others`: the untagged waiters seen last. */
  | { kind: 'timeout'; journal: Journal; others: GateWaiter[] };

export interface DriveOptions {
  /** The turn to stop in. */
  turn: number;
  /** The whole drive's deadline. */
  timeoutMs: number;
  /** A process of the Worker side that has ended, said in a few words; undefined while both run. */
  ended: () => string | undefined;
  signal?: AbortSignal;
}

/**
 * Lets the Worker side's writes through one at a time until the journal shows the
 * turn started and not finished while a tagged writer waits at the gate (the
 * freeze), and returns there with the gate still shut.
 */
export async function driveToMidTurn(gate: JournalGate, options: DriveOptions): Promise<Drive> {
  const deadline = Date.now() + options.timeoutMs;
  let others: GateWaiter[] = [];
  for (;;) {
    let waiting: GateWaiter[] | undefined;
    let how: string | undefined;
    try {
      waiting = await waitFor(
        'a write of the tool server at the journal gate',
        async () => {
          const seen = await gate.waiters();
          others = seen.others;
          if (seen.tagged.length > 0) return seen.tagged;
          how = options.ended();
          return how === undefined ? undefined : [];
        },
        { timeoutMs: Math.max(1, deadline - Date.now()), intervalMs: 2, signal: options.signal },
      );
    } catch (error) {
      if (!(error instanceof WaitTimeout)) throw error;
      return { kind: 'timeout', journal: await gate.journal(), others };
    }
    const journal = await gate.journal();
    if (how !== undefined && waiting.length === 0) return { kind: 'ended', journal, how };
    const state = turnState(journal, gate.options.names, options.turn);
    if (state.kind === 'past') return { kind: 'past', run: state.run, journal };
    if (state.kind === 'mid') {
      const point = callPoint(state.last);
      return { kind: 'frozen', run: state.run, journal, waiting, completedCalls: state.completedCalls, point, passes: gate.passes };
    }
    await gate.pass();
  }
}

/** SIGKILLs the Worker and the tool server (each its process group), the Worker first. */
export async function killWorkerSide(sup: Supervisor, worker: string, toolServer: string): Promise<void> {
  await sup.kill(worker, 'SIGKILL');
  await sup.kill(toolServer, 'SIGKILL');
}

export interface AfterKill {
  /** Tagged sessions canceled at the gate (the write in flight). */
  canceled: number[];
  /** Why the cancel was refused, when it was (the re-read then tells what landed). */
  cancelRefused?: string;
  /** Tagged sessions still connected when the gate was opened (none, normally). */
  leftover: GateWaiter[];
  /** What changed in the journal between the freeze and after the gate opened: a write that still landed. */
  landed: string[];
  journal: Journal;
}

/**
 * After the kill: cancels the tagged writes still waiting at the gate, waits until
 * every tagged session has gone, opens the gate and reads the journal again. A
 * change since the freeze is a write of the Worker side that landed after the kill.
 */
export async function afterTheKill(gate: JournalGate, frozen: Journal, options: { timeoutMs?: number } = {}): Promise<AfterKill> {
  const { canceled, refused } = await gate.cancelWaiting();
  let leftover: GateWaiter[] = [];
  try {
    await waitFor(
      "the killed tool server's sessions to end",
      async () => {
        leftover = await gate.taggedSessions();
        return leftover.length === 0;
      },
      { timeoutMs: options.timeoutMs ?? 10_000, intervalMs: 5 },
    );
  } catch (error) {
    if (!(error instanceof WaitTimeout)) throw error;
  }
  await gate.release();
  const journal = await gate.journal();
  return { canceled, cancelRefused: refused, leftover, landed: journalChanges(frozen, journal), journal };
}

export interface MidTurnStop {
  frozen: Extract<Drive, { kind: 'frozen' }>;
  after: AfterKill;
  worker: ProcessInfo;
  toolServer: ProcessInfo;
}

/**
 * The gate's whole stop, as the drill does it (the drill asks the operator for the
 * kill between the two halves): drive to the freeze, SIGKILL the Worker and the tool
 * server, cancel the write in flight, open the gate, read the journal again. Throws
 * CouldNotDetermine when the drive ends anywhere but at the freeze.
 */
export async function stopMidTurn(
  gate: JournalGate,
  options: DriveOptions & { sup: Supervisor; worker: string; toolServer: string },
): Promise<MidTurnStop> {
  const drive = await driveToMidTurn(gate, options);
  if (drive.kind !== 'frozen') throw new CouldNotDetermine(describeDrive(drive, options.turn, gate.options));
  await killWorkerSide(options.sup, options.worker, options.toolServer);
  const after = await afterTheKill(gate, drive.journal);
  return { frozen: drive, after, worker: options.sup.get(options.worker)!, toolServer: options.sup.get(options.toolServer)! };
}

/** Why a drive did not reach the freeze, in one line naming what to look at. */
export function describeDrive(drive: Exclude<Drive, { kind: 'frozen' }>, turn: number, options: Pick<GateOptions, 'names' | 'sessionTag'>): string {
  const table = options.names.tool_calls.tableName;
  const last = callPoint(drive.journal.calls.at(-1));
  if (drive.kind === 'ended') return `${drive.how} before turn ${turn} was reached (the journal's last call: ${last})`;
  if (drive.kind === 'past') {
    return (
      `turn ${turn} of run ${drive.run} finished without ever being seen started and not finished while a write of it waited on ${table}: ` +
      `the tool server journals a turn's calls in one transaction, or outside ${table}`
    );
  }
  const others = drive.others.map((waiter) => `pid ${waiter.pid} application_name=${JSON.stringify(waiter.application)}`);
  return (
    `no session with application_name=${options.sessionTag} wrote ${table} in time (the journal's last call: ${last})` +
    (others.length > 0 ? `; waiting at the gate instead: ${others.join(', ')}: keep the application_name parameter of {database_url}` : '')
  );
}
