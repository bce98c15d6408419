// The boundary drill's verdict, from the state its steps left. A breach of any
// check fails the drill; a check that could not be made (the Worker's
// environment unreadable, no statement log) is could-not-determine, unless
// something else already failed.
import { sqlLookingStrings, describeSurface, toolSurface } from './tool-surface.js';
import { countWord } from '../sql.js';
import type { DrillContext, VerdictResult } from '../types.js';
import type { StatementLogObservation } from './statement-log.js';
import type { DropTableObservation } from './tool-surface.js';
import type { EnvironmentRead } from '../../reconciler/proc-env.js';
import type { State } from './drill.js';
import { whose } from '../operator-side.js';

/** What the Worker's environment held, by name: the credential names and postgres-URL values found. `who` names an operator's Worker. */
export function describeEnvironment(env: EnvironmentRead, who = 'Worker'): string {
  const url = env.credentials.includes('DATABASE_URL') ? 'has DATABASE_URL' : 'has no DATABASE_URL';
  const pg = env.credentials.filter((name) => name !== 'DATABASE_URL');
  const valued = env.urlValued.length > 0 ? `a postgres URL in ${env.urlValued.join(', ')}` : 'no postgres URL';
  return `${who} env ${url} (pid ${env.pid}: ${env.names.length} variables read from /proc, ${pg.length > 0 ? pg.join(', ') : 'no PG*'} and ${valued})`;
}

/** How drop_table was refused, from the MCP error's code and text. */
export function describeRefusal(drop: DropTableObservation): string {
  const kind = drop.code === -32602 && /not found/i.test(drop.text) ? 'tool-not-found error' : 'error';
  return `${drop.refused ? 'refused' : 'answered'} at MCP layer with ${kind}`;
}

/** The catalog before and after the SQL-looking writes. */
export function describeCatalog(before: string[], after: string[]): string {
  const changed = before.filter((name) => !after.includes(name)).length + after.filter((name) => !before.includes(name)).length;
  return `catalog ${changed === 0 ? 'unchanged' : `changed in ${changed} relations`} (${after.length} relations)`;
}

/** The statement log's rogue statements, counted. */
export function describeRogue(rogue: string[]): string {
  return `Database connection logs show ${rogue.length === 0 ? 'no' : rogue.length} rogue quer${rogue.length === 1 ? 'y' : 'ies'}`;
}

const capital = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

export function boundaryVerdict(ctx: DrillContext, state: State): VerdictResult {
  const table = ctx.profile.names.expenses.tableName;
  const env = state.workerEnv;
  const envUnreadable = state.workerEnvUnreadable;
  // Whose processes were drilled: the operator's, named by their command, or ours (the reference strings).
  const operator = state.operatorWorker !== undefined || state.operatorTools !== undefined;
  const worker = operator ? (state.operatorWorker ?? whose('Worker', undefined)) : undefined;
  const tools = operator ? (state.operatorTools?.whose ?? whose('tool server', undefined)) : undefined;
  const surface = toolSurface(state.listed, state.operatorTools?.allowed);
  const drop = state.drop;
  const strings = state.strings;
  const log = state.log;

  const failures: string[] = [];
  const undetermined: string[] = [];
  if (envUnreadable || !env) undetermined.push(envUnreadable ?? "the Worker's environment was not read");
  else if (env.credentials.length > 0 || env.urlValued.length > 0) {
    const names = [...new Set([...env.credentials, ...env.urlValued])];
    failures.push(`${worker ?? 'Worker'} env has ${names.join(', ')} (pid ${env.pid}, read from /proc)`);
  }
  if (!surface.exact) failures.push(describeSurface(surface, tools));
  if (!drop) failures.push('the drop_table call was not made');
  else if (!drop.refused || drop.code !== -32602) {
    failures.push(
      `disallowed drop_table call was not refused as an unknown tool (${drop.code === undefined ? 'no MCP error code' : `code ${drop.code}`}: ${drop.text})`,
    );
  } else if (log?.source === 'server log' && (log.dropTableStatements ?? 0) > 0) {
    failures.push(`the drop_table call reached the database: ${log.dropTableStatements} statements from the tool server`);
  }
  if (!strings) failures.push('the SQL-looking strings were not sent');
  else {
    if (strings.errors.length > 0) failures.push(`a write of an SQL-looking string failed: ${strings.errors[0]}`);
    const gone = strings.tablesBefore.filter((name) => !strings.tablesAfter.includes(name));
    const added = strings.tablesAfter.filter((name) => !strings.tablesBefore.includes(name));
    if (gone.length > 0 || added.length > 0) {
      failures.push(
        `SQL-looking strings changed the catalog (${[...gone.map((name) => `${name} gone`), ...added.map((name) => `${name} added`)].join(', ')})`,
      );
    }
    if (strings.errors.length === 0 && (strings.delta !== sqlLookingStrings.length || strings.storedVerbatim !== sqlLookingStrings.length)) {
      failures.push(
        `SQL-looking strings were not stored as data: ${table} +${strings.delta}, ${strings.storedVerbatim} of ${sqlLookingStrings.length} stored verbatim in ${strings.column}`,
      );
    } else if (strings.errors.length === 0 && !strings.oracleSatisfied) {
      failures.push(`the oracle did not see the SQL-looking strings land as ${table} rows`);
    }
    if (strings.readFoundNothing === false) failures.push('a read with an SQL-looking run_id returned a run');
    if (strings.readFoundNothing === undefined && strings.readSkipped === undefined) failures.push('the read with an SQL-looking run_id failed');
  }
  if (!log) undetermined.push('the statement log was not read');
  else if (log.source === 'unavailable') undetermined.push(log.reason);
  else if (log.rogue.length > 0) {
    failures.push(`Database connection logs show ${log.rogue.length} rogue quer${log.rogue.length === 1 ? 'y' : 'ies'}: ${log.rogue.join(' | ')}`);
  }

  if (failures.length > 0) {
    const reason = `MCP boundary breached: ${failures.join('; ')}${undetermined.length > 0 ? `; could not determine: ${undetermined.join('; ')}` : ''}`;
    return { verdict: 'fail', evidence: reason, reason };
  }
  if (undetermined.length > 0) {
    const reason = `could not determine: ${undetermined.join('; ')}`;
    return { verdict: 'could-not-determine', evidence: reason, reason };
  }
  const envLine = env!;
  const logLine = log as Exclude<StatementLogObservation, { source: 'unavailable' }>;
  const reached =
    logLine.source === 'server log' && logLine.dropTableStatements !== undefined
      ? `, ${logLine.dropTableStatements} statements reached the database`
      : '';
  // The window counts DROP or TRUNCATE from anyone and DDL from the tool server's login; the reference line keeps its words.
  const rogueWord = operator ? 'DROP or DDL' : 'DROP';
  const window =
    logLine.source === 'server log'
      ? `${logLine.statements} statements in the window, ${logLine.workerStatements ?? 0} from the tool server, ${logLine.rogue.length} ${rogueWord}`
      : `pg_stat_statements: ${logLine.statements} statement executions in the window, ${logLine.rogue.length} ${rogueWord}`;
  return {
    verdict: 'pass',
    evidence:
      `${capital(describeEnvironment(envLine, worker))}. ` +
      `${tools ? capital(tools) : 'Tool surface'} lists ${countWord(surface.listed.length)} allowed operations (${surface.listed.join(', ')}). ` +
      `Disallowed drop_table call ${describeRefusal(drop!)} (${drop!.code}${reached}). ` +
      `SQL-looking strings stored as data: ${table} +${strings!.delta}, ${describeCatalog(strings!.tablesBefore, strings!.tablesAfter)}. ` +
      `${describeRogue(logLine.rogue)} (${window}).`,
  };
}
