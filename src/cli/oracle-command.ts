// `sor-drills oracle`: the db-state oracle wrapped around any command (curl, a CLI,
// a test): snapshot, run it, snapshot, normalise, diff, verdict, evidence folder.
import Table from 'cli-table3';
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { integerFlag, maxTimerMs, positiveNumberFlag, requiredTargetString, writableDirectory } from './input-checks.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { exitCodes } from '../util/exit-codes.js';
import { maskSecrets, parseUrl, UsageError } from '../postgres/url.js';
import {
  checkCardId,
  defaultEvidenceRoot,
  defaultVolatiles,
  displayPath,
  expectationGrammar,
  extendVolatiles,
  parseExpectation,
  runOracle,
  type Expectation,
  type OracleEvent,
  type OracleResult,
  type Scalar,
  type TableScope,
  type Verdict,
} from '../oracle/index.js';

export const oracleUsage = `Usage: sor-drills oracle --db URL --card ID [--tables a,b] [--expect SPEC]... [options] -- COMMAND [ARGS...]

Snapshots the named tables (a fresh connection, no transaction), runs COMMAND, waits for
quiescence if asked, snapshots again, removes volatile fields, diffs, and checks each --expect.
Writes the evidence folder <dir>/<card>/<timestamp>/: before.json, before.normalised.json,
action.log, action_exit.txt, after.json, after.normalised.json, diff.txt, verdict.md.

Options
  --db URL              the database to observe (default: DATABASE_URL)
  --card ID             the card the evidence belongs to (names the folder)
  --tables a,b          tables to snapshot (the tables --expect names are added)
  --expect SPEC         a predicate, repeatable:
                          widgets:+1  widgets:-2  audit_log:=          count change / unchanged
                          widgets:+{name=X,price=3}  widgets:-{name=X} row added / removed
                          widgets:~{name=X}->{price=4,cached_count+=1} row changed
                          widgets:+index:widgets_slug_idx  widgets:+index:(slug)
                          widgets:-column:notes  widgets:trigger:t  widgets:!policy:p  widgets:+table
  --key t=col[,col]     natural key of a table (default: primary key, else a unique key, else the row)
  --volatile col,...    more volatile fields: col, table.col; !col or !table.col keeps one
                        (default set: id, created_at, updated_at, *_token, *_secret, lock_version, cached_*)
  --filter t:col=val    only the rows of t with col = val (repeatable)
  --schema              also snapshot schema state (columns, constraints, indexes, policies, triggers, grants)
  --settle SQL          after the command, wait until this query's answer stops changing
  --settle-for MS       how long the answer must stay the same (default 500)
  --settle-timeout S    give up waiting after S seconds: could-not-determine (default 30)
  --timeout S           kill the command after S seconds (default: no limit)
  --dir D               evidence root (default .agent-history/oracle)
  --stream-threshold N  rows per table held in memory before streaming to disk (default 50000)
  --json                print the result as JSON on stdout
${commonFlagsHelp(24)}

${environmentHelp(['DATABASE_URL', 'PG', 'TMPDIR'], { TMPDIR: 'where tables above --stream-threshold are spooled while they are diffed' })}

Exit codes
  0 APPROVE   1 REJECT   4 ESCALATE (command failed, nothing asserted, could not determine)
  2 bad usage   3 target unreachable or lacking a privilege
  ${signalExitsHelp}

Worked example
  $ sor-drills oracle --db postgres://app:secret@localhost:5432/shop --card WID-7 \\
      --tables widgets,audit_log --expect 'widgets:+1' --expect 'widgets:+{name=sprocket}' \\
      --expect 'audit_log:=' -- psql postgres://app:secret@localhost:5432/shop \\
      -c "insert into widgets (name, slug) values ('sprocket', 'sprocket')"
  APPROVE  card WID-7: 3 of 3 predicates satisfied
  ... the verdict table, the diff summary, and the folder:
  evidence: .agent-history/oracle/WID-7/20260102T030405/
  $ cat .agent-history/oracle/WID-7/20260102T030405/diff.txt     # the + line is the new widget

Predicate grammar: ${expectationGrammar}`;

function list(values: unknown): string[] {
  return ((values as string[] | undefined) ?? []).flatMap((value) => value.split(',')).map((value) => value.trim()).filter(Boolean);
}

function tablesFrom(values: Record<string, unknown>): TableScope[] {
  const tables = new Map<string, TableScope>();
  const table = (name: string) => {
    let entry = tables.get(name);
    if (!entry) {
      entry = { name };
      tables.set(name, entry);
    }
    return entry;
  };
  for (const name of list(values.tables)) table(name);
  for (const spec of (values.key as string[] | undefined) ?? []) {
    const match = /^([^=]+)=(.+)$/.exec(spec);
    if (!match) throw new UsageError(`--key ${spec}: expected table=col[,col]`);
    table(match[1]!.trim()).key = match[2]!.split(',').map((column) => column.trim()).filter(Boolean);
  }
  for (const spec of (values.filter as string[] | undefined) ?? []) {
    const match = /^([^:]+):([^=]+)=(.*)$/.exec(spec);
    if (!match) throw new UsageError(`--filter ${spec}: expected table:col=value`);
    const entry = table(match[1]!.trim());
    const value: Scalar = match[3] === 'null' ? null : match[3]!;
    entry.filter = { ...(entry.filter ?? {}), [match[2]!.trim()]: value };
  }
  return [...tables.values()];
}

function printResult(result: OracleResult): void {
  const satisfied = result.expectations.filter((entry) => entry.verdict === 'satisfied').length;
  const lines: string[] = [];
  lines.push(`${result.verdict}  card ${result.card}: ${satisfied} of ${result.expectations.length} predicates satisfied`);
  const style = { head: [], border: [] };
  const specs = new Table({ head: ['#', 'Predicate', 'Verified by', 'Verdict'], style, wordWrap: true, colWidths: [4, 34, 58, 22] });
  result.expectations.forEach((entry, index) => {
    specs.push([String(index + 1), `${entry.expectation.text}\n${entry.predicate}`, entry.evidence, entry.verdict]);
  });
  if (result.expectations.length === 0) specs.push(['-', '(none given)', 'a spec that does not name fields is too vague', 'could-not-determine']);
  lines.push(specs.toString());
  const tables = new Table({ head: ['Table', 'Before', 'After', 'Added', 'Removed', 'Changed', 'Change matches spec?'], style, wordWrap: true });
  for (const table of result.tables) {
    const show = (value: number | null) => (value === null ? 'n/a' : String(value));
    tables.push([table.table, show(table.before), show(table.after), String(table.added), String(table.removed), String(table.changed), table.matches]);
  }
  lines.push(tables.toString());
  if (result.verdict !== 'APPROVE') {
    for (const finding of result.findings.filter((entry) => !entry.startsWith('Volatile fields'))) lines.push(`- ${finding}`);
  }
  lines.push(`evidence: ${displayPath(result.folder)}/`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

const verdictExit: Record<Verdict, number> = { APPROVE: exitCodes.ok, REJECT: exitCodes.blocked, ESCALATE: exitCodes.escalate };

/**
 * A reader that goes away (`| head`) makes every later write fail with EPIPE; unheard, each failure
 * is an uncaught error whose report fails again. The verdict still stands and the evidence is on
 * disk: stop writing output, keep the exit code.
 */
const ignoreOutputError = () => {};
function ignoreBrokenPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (!stream.listeners('error').includes(ignoreOutputError)) stream.on('error', ignoreOutputError);
  }
}

export const oracleFlags = {
  db: { type: 'string' },
  card: { type: 'string' },
  tables: { type: 'string', multiple: true },
  expect: { type: 'string', multiple: true },
  key: { type: 'string', multiple: true },
  volatile: { type: 'string', multiple: true },
  filter: { type: 'string', multiple: true },
  schema: { type: 'boolean' },
  settle: { type: 'string' },
  'settle-for': { type: 'string' },
  'settle-timeout': { type: 'string' },
  timeout: { type: 'string' },
  dir: { type: 'string' },
  'stream-threshold': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** A check of the oracle's own modules, its message prefixed with the flag it was given to. */
function flagged<T>(flag: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${flag}: ${error.message.split('\n')[0]}`);
    throw error;
  }
}

/** The longest wait in seconds a timer can take. */
const maxSeconds = Math.floor(maxTimerMs / 1000);

/** Every flag, the evidence directory and the target, checked before the first snapshot. */
function checkOracleInput(values: Record<string, unknown>, command: string[]) {
  const url = requiredTargetString(values.db, 'name the database with --db URL (or DATABASE_URL)');
  if (values.card === undefined) throw new UsageError('name the card with --card ID');
  const card = flagged('--card', () => checkCardId(String(values.card)));
  if (command.length === 0) throw new UsageError('name the command to run after --');
  const expectations: Expectation[] = ((values.expect as string[] | undefined) ?? []).map((spec) =>
    flagged('--expect', () => parseExpectation(spec)),
  );
  const tables = tablesFrom(values);
  if (tables.length === 0 && expectations.length === 0) throw new UsageError('name the tables to snapshot with --tables (or --expect)');
  if (!values.settle) {
    for (const flag of ['settle-for', 'settle-timeout'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --settle SQL (the query whose answer must settle)`);
    }
  }
  // The evidence root (the default one too) is checked here and handed on as given.
  writableDirectory('--dir', String(values.dir ?? defaultEvidenceRoot));
  return {
    url,
    card,
    command,
    expectations,
    tables,
    volatiles: flagged('--volatile', () => extendVolatiles(defaultVolatiles(), list(values.volatile))),
    threshold: values['stream-threshold'] === undefined ? undefined : integerFlag('--stream-threshold', values['stream-threshold'], { fallback: 0, min: 1, unit: 'rows' }),
    timeoutS: positiveNumberFlag('--timeout', values.timeout, { max: maxSeconds, unit: 'seconds' }),
    settleTimeoutS: positiveNumberFlag('--settle-timeout', values['settle-timeout'], { max: maxSeconds, unit: 'seconds' }) ?? 30,
    settleForMs: integerFlag('--settle-for', values['settle-for'], { fallback: 500, min: 1 }),
    dir: values.dir as string | undefined,
  };
}

export async function oracleCommand(args: string[]): Promise<number> {
  ignoreBrokenPipes();
  const separator = args.indexOf('--');
  const flags = separator >= 0 ? args.slice(0, separator) : args;
  const { values } = parse(flags, oracleFlags);
  if (values.help) {
    await printHelp(oracleUsage);
    return exitCodes.ok;
  }
  const { url, card, command, expectations, tables, volatiles, threshold, timeoutS, settleTimeoutS, settleForMs, dir } = checkOracleInput(
    values,
    separator >= 0 ? args.slice(separator + 1) : [],
  );
  const password = parseUrl(url).password;
  const secrets = password ? [password, encodeURIComponent(password)] : [];
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const onEvent = (event: OracleEvent) => {
    switch (event.type) {
      case 'snapshot':
        progress(
          `${event.phase}: ${event.table} ${event.count === null ? 'does not exist' : `${event.count} rows`}${event.streamed ? ' (streamed to disk)' : ''}`,
        );
        break;
      case 'action-start':
        progress(`running: ${maskSecrets(command.join(' '), secrets)}`);
        break;
      case 'action-exit':
        progress(`exit ${event.exitCode} after ${event.durationMs} ms`);
        break;
      case 'quiescence':
        progress(`quiescence: ${event.result.settled ? 'settled' : 'NOT settled'}: ${event.result.what}`);
        break;
      default:
        break;
    }
  };
  const result = await runOracle({
    url,
    card,
    scope: { tables, schema: Boolean(values.schema), volatiles, ...(threshold ? { streamThreshold: threshold } : {}) },
    expectations,
    action: { command: command[0]!, args: command.slice(1), ...(timeoutS ? { timeoutMs: timeoutS * 1000 } : {}) },
    dir,
    quiescence: values.settle
      ? {
          condition: { kind: 'query-settles', url, sql: values.settle as string, stableForMs: settleForMs },
          timeoutMs: settleTimeoutS * 1000,
        }
      : undefined,
    onEvent,
  });
  if (values.json) {
    const { diff, ...rest } = result;
    process.stdout.write(`${JSON.stringify({ ...rest, diff: diff ? { ...diff, text: undefined } : null }, null, 2)}\n`);
  } else printResult(result);
  return verdictExit[result.verdict];
}
