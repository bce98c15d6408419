// Predicates: what a spec asserts about the diff, each ending satisfied,
// unsatisfied or could-not-determine with the evidence that decided it.
//
//   widgets:+1  widgets:-2  widgets:+0        the row count changed by exactly that much
//   audit_log:=                               unchanged: same count, no row added, removed or changed
//   widgets:+{name=X,price=3}                 a row was added with these values
//   widgets:-{name=X}                         a row was removed with these values
//   widgets:~{name=X}->{price=4,cached_count+=1}
//                                             a row with these values changed to these values / by these deltas
//   widgets:+index:widgets_slug_idx           a schema object was added (absent before, present after);
//   widgets:+index:(slug)                       an index or constraint may be named by its columns
//   widgets:-column:notes                     ... removed (present before, absent after)
//   widgets:trigger:t_audit  widgets:!policy:p present / absent after the action
//   widgets:+table                            the table itself was created (or -table: dropped)
//
// Values: `name=X` compares with the text of the value (a number 3 matches `3`), `name=null`
// means SQL NULL, a JSON string in double quotes (`name="a, b"`) keeps commas and `null` literal.
import { UsageError } from '../postgres/url.js';
import type { TableCatalog } from './catalog.js';
import { canonicalJson } from './json-text.js';
import type {
  Expectation,
  ExpectationResult,
  Row,
  Scalar,
  SchemaObjectKind,
  Snapshot,
  SnapshotDiff,
  TableDiff,
  TableSnapshot,
} from './types.js';

export const expectationGrammar = `TABLE:+N | TABLE:-N | TABLE:= | TABLE:+{col=val,...} | TABLE:-{col=val,...} |
TABLE:~{col=val,...}->{col=val,col+=N,...} | TABLE:[+|-|!]KIND[:NAME|:(col,...)]  (KIND: table, column, index, constraint, policy, trigger)`;

function usage(text: string, why: string): UsageError {
  return new UsageError(`bad expectation ${JSON.stringify(text)}: ${why}\n  expected one of: ${expectationGrammar}`);
}

/** Splits `a=1,b="x, y"` on the commas outside double quotes. */
function splitList(body: string): string[] {
  const items: string[] = [];
  let current = '';
  let quoted = false;
  for (let index = 0; index < body.length; index += 1) {
    const char = body[index]!;
    if (char === '\\' && quoted) {
      current += char + (body[index + 1] ?? '');
      index += 1;
      continue;
    }
    if (char === '"') quoted = !quoted;
    if (char === ',' && !quoted) {
      items.push(current);
      current = '';
      continue;
    }
    current += char;
  }
  if (current.trim() || items.length > 0) items.push(current);
  return items.map((item) => item.trim()).filter(Boolean);
}

function parseValue(text: string, raw: string): Scalar {
  if (raw === 'null') return null;
  if (raw.startsWith('"')) {
    try {
      return JSON.parse(raw) as string;
    } catch {
      throw usage(text, `unterminated quoted value ${raw}`);
    }
  }
  return raw;
}

function parseMatch(text: string, body: string, allowDeltas: boolean) {
  const match: Record<string, Scalar> = {};
  const deltas: Record<string, number> = {};
  for (const item of splitList(body)) {
    const delta = /^([^=+\-\s]+)\s*([+-])=\s*(\d+(?:\.\d+)?)$/.exec(item);
    if (delta) {
      if (!allowDeltas) throw usage(text, `a delta (${item}) belongs after -> in a ~ change`);
      deltas[delta[1]!] = Number(delta[3]) * (delta[2] === '-' ? -1 : 1);
      continue;
    }
    const equals = item.indexOf('=');
    if (equals <= 0) throw usage(text, `${item} is not col=value`);
    match[item.slice(0, equals).trim()] = parseValue(text, item.slice(equals + 1).trim());
  }
  return { match, deltas };
}

const schemaKinds: SchemaObjectKind[] = ['table', 'column', 'index', 'constraint', 'policy', 'trigger'];

/** Parses one expectation (a UsageError names the grammar when it is not one). */
export function parseExpectation(text: string): Expectation {
  const spec = text.trim();
  const colon = spec.indexOf(':');
  if (colon <= 0) throw usage(text, 'it names no table (TABLE:...)');
  const table = spec.slice(0, colon).trim();
  const body = spec.slice(colon + 1).trim();
  if (body === '=') return { kind: 'unchanged', table, text: spec };
  const count = /^([+-])(\d+)$/.exec(body);
  if (count) return { kind: 'count', table, delta: Number(count[2]) * (count[1] === '-' ? -1 : 1), text: spec };
  const row = /^([+-])\{(.*)\}$/s.exec(body);
  if (row) {
    const { match } = parseMatch(text, row[2]!, false);
    if (Object.keys(match).length === 0) throw usage(text, 'a row predicate names no column');
    return { kind: row[1] === '+' ? 'row-added' : 'row-removed', table, match, text: spec };
  }
  const change = /^~\{(.*?)\}(?:\s*->\s*\{(.*)\})?$/s.exec(body);
  if (change) {
    const { match } = parseMatch(text, change[1]!, false);
    const { match: to, deltas } = parseMatch(text, change[2] ?? '', true);
    if (Object.keys(match).length === 0) throw usage(text, 'a change names no column to find the row by');
    return { kind: 'row-changed', table, match, to, deltas, text: spec };
  }
  const schema = /^([+\-!]?)([a-z]+)(?::(.+))?$/.exec(body);
  if (schema && schemaKinds.includes(schema[2] as SchemaObjectKind)) {
    const object = schema[2] as SchemaObjectKind;
    const state = ({ '+': 'added', '-': 'removed', '!': 'absent', '': 'present' } as const)[schema[1] as '+' | '-' | '!' | ''];
    const target = schema[3]?.trim() ?? null;
    if (object === 'table' && target) throw usage(text, 'table takes no name (the table is the one before the colon)');
    if (object !== 'table' && !target) throw usage(text, `${object} needs a name (${object}:NAME)`);
    const columns = target && /^\(.*\)$/.test(target) ? splitList(target.slice(1, -1)) : null;
    if (columns && object !== 'index' && object !== 'constraint') {
      throw usage(text, 'only an index or a constraint can be named by its columns');
    }
    return { kind: 'schema', table, object, name: columns ? null : target, columns, state, text: spec };
  }
  throw usage(text, `${body} is not a predicate`);
}

/** The tables an expectation is about. */
export function expectationTable(expectation: Expectation): string {
  return expectation.table;
}

/** The columns an expectation asserts (they are never volatile for its table). */
export function expectationColumns(expectation: Expectation): string[] {
  switch (expectation.kind) {
    case 'row-added':
    case 'row-removed':
      return Object.keys(expectation.match);
    case 'row-changed':
      return [...new Set([...Object.keys(expectation.match), ...Object.keys(expectation.to), ...Object.keys(expectation.deltas)])];
    default:
      return [];
  }
}

export function needsSchema(expectation: Expectation): boolean {
  return expectation.kind === 'schema';
}

const showMatch = (match: Record<string, Scalar>) =>
  Object.entries(match)
    .map(([name, value]) => `${name}=${value === null ? 'null' : typeof value === 'string' && /[\s,"]/.test(value) ? JSON.stringify(value) : String(value)}`)
    .join(', ');

/** A plain-English line for the predicate. */
export function describeExpectation(expectation: Expectation): string {
  switch (expectation.kind) {
    case 'count':
      return `${expectation.table} count ${expectation.delta >= 0 ? '+' : ''}${expectation.delta}`;
    case 'unchanged':
      return `${expectation.table} unchanged: count equal, no row added, removed or changed`;
    case 'row-added':
      return `a ${expectation.table} row added with ${showMatch(expectation.match)}`;
    case 'row-removed':
      return `a ${expectation.table} row removed with ${showMatch(expectation.match)}`;
    case 'row-changed': {
      const to = [
        showMatch(expectation.to),
        ...Object.entries(expectation.deltas).map(([name, delta]) => `${name} ${delta >= 0 ? '+' : ''}${delta}`),
      ].filter(Boolean);
      return `the ${expectation.table} row with ${showMatch(expectation.match)} changed${to.length ? ` to ${to.join(', ')}` : ''}`;
    }
    case 'schema': {
      const what =
        expectation.object === 'table'
          ? `table ${expectation.table}`
          : `${expectation.object} ${expectation.name ?? `on ${expectation.table}(${expectation.columns!.join(', ')})`}`;
      const where = expectation.object === 'table' || expectation.columns ? '' : ` on ${expectation.table}`;
      const state = { added: 'added (absent before, present after)', removed: 'removed (present before, absent after)', present: 'present after', absent: 'absent after' }[
        expectation.state
      ];
      return `${what}${where} ${state}`;
    }
  }
}

/** Does a normalised value equal what the spec wrote? Numbers and booleans compare with their text. */
export function valueMatches(actual: unknown, expected: Scalar): boolean {
  if (expected === null) return actual === null;
  if (actual === null || actual === undefined) return false;
  if (typeof actual === 'string') return actual === String(expected);
  if (typeof actual === 'number') {
    if (typeof expected === 'number') return actual === expected;
    return String(expected).trim() !== '' && Number(expected) === actual;
  }
  if (typeof actual === 'boolean') return String(actual) === String(expected);
  if (typeof expected === 'string') {
    try {
      return canonicalJson(actual) === canonicalJson(JSON.parse(expected));
    } catch {
      return false;
    }
  }
  return canonicalJson(actual) === canonicalJson(expected);
}

export function rowMatches(row: Row, match: Record<string, Scalar>): boolean {
  return Object.entries(match).every(([name, value]) => name in row && valueMatches(row[name], value));
}

const clip = (text: string, length = 300) => (text.length > length ? `${text.slice(0, length - 1)}…` : text);

export interface EvaluationInput {
  diff: SnapshotDiff;
  before: Snapshot;
  after: Snapshot;
}

function result(expectation: Expectation, verdict: ExpectationResult['verdict'], evidence: string): ExpectationResult {
  return { expectation, predicate: describeExpectation(expectation), verdict, evidence };
}

function missingColumns(expectation: Expectation, table: TableSnapshot | undefined): string[] {
  if (!table) return [];
  const names = new Set(table.columns.map((column) => column.name));
  return expectationColumns(expectation).filter((name) => !names.has(name));
}

/** Evaluates every expectation against the diff and the two snapshots. */
export function evaluate(expectations: readonly Expectation[], input: EvaluationInput): ExpectationResult[] {
  return expectations.map((expectation) => evaluateOne(expectation, input));
}

function evaluateOne(expectation: Expectation, input: EvaluationInput): ExpectationResult {
  const table = input.diff.tables.find((entry) => entry.table === expectation.table);
  const before = input.before.tables.find((entry) => entry.table === expectation.table);
  const after = input.after.tables.find((entry) => entry.table === expectation.table);
  if (!table || !before || !after) {
    return result(expectation, 'could-not-determine', `${expectation.table} was not in the snapshot's scope`);
  }
  if (expectation.kind === 'schema') return evaluateSchema(expectation, before, after);
  if (!table.existsBefore || !table.existsAfter) {
    const when = !table.existsBefore && !table.existsAfter ? 'before or after' : !table.existsBefore ? 'before' : 'after';
    return result(expectation, 'could-not-determine', `table ${expectation.table} does not exist ${when} the action`);
  }
  const missing = missingColumns(expectation, after);
  if (missing.length > 0) {
    return result(expectation, 'could-not-determine', `${expectation.table} has no column ${missing.join(', ')}`);
  }
  const counts = `count ${table.countBefore} -> ${table.countAfter}`;
  switch (expectation.kind) {
    case 'count': {
      const sign = (n: number) => `${n >= 0 ? '+' : ''}${n}`;
      const evidence = `${expectation.table} ${counts} (${sign(table.delta!)}): diff.txt -"count": ${table.countBefore} / +"count": ${table.countAfter}`;
      return result(
        expectation,
        table.delta === expectation.delta ? 'satisfied' : 'unsatisfied',
        table.delta === 0 ? `${expectation.table} ${counts} (no change)` : evidence,
      );
    }
    case 'unchanged': {
      if (!table.rowsCompared) {
        return table.delta === 0
          ? result(expectation, 'could-not-determine', `${counts}, but only counts were read (rows not compared)`)
          : result(expectation, 'unsatisfied', counts);
      }
      const changes = table.addedCount + table.removedCount + table.changedCount;
      if (table.delta === 0 && changes === 0) {
        return result(expectation, 'satisfied', `${counts}; no + / - lines for ${expectation.table} in diff.txt`);
      }
      const first =
        table.added[0] !== undefined
          ? `+ ${canonicalJson(table.added[0])}`
          : table.removed[0] !== undefined
            ? `- ${canonicalJson(table.removed[0])}`
            : table.changed[0] !== undefined
              ? `- ${canonicalJson(table.changed[0].before)} + ${canonicalJson(table.changed[0].after)}`
              : '';
      return result(
        expectation,
        'unsatisfied',
        clip(`${counts}; ${table.addedCount} added, ${table.removedCount} removed, ${table.changedCount} changed${first ? `: ${first}` : ''}`),
      );
    }
    case 'row-added':
    case 'row-removed':
      return evaluateRows(expectation, table);
    case 'row-changed':
      return evaluateChange(expectation, table);
  }
}

function evaluateRows(expectation: Extract<Expectation, { kind: 'row-added' | 'row-removed' }>, table: TableDiff): ExpectationResult {
  if (!table.rowsCompared) return result(expectation, 'could-not-determine', 'only counts were read (rows not compared)');
  const added = expectation.kind === 'row-added';
  const rows = added ? table.added : table.removed;
  const total = added ? table.addedCount : table.removedCount;
  const sign = added ? '+' : '-';
  const found = rows.find((row) => rowMatches(row, expectation.match));
  if (found) return result(expectation, 'satisfied', clip(`diff.txt ${sign} ${canonicalJson(found)}`));
  if (rows.length < total) {
    return result(
      expectation,
      'could-not-determine',
      `${total} rows ${added ? 'added' : 'removed'}; none of the first ${rows.length} kept matches, the rest were not kept`,
    );
  }
  const what = added ? 'added' : 'removed';
  const sample = rows[0] ? `; first ${what}: ${sign} ${canonicalJson(rows[0])}` : '';
  return result(expectation, 'unsatisfied', clip(`${total} row(s) ${what}, none with ${showMatch(expectation.match)}${sample}`));
}

function evaluateChange(expectation: Extract<Expectation, { kind: 'row-changed' }>, table: TableDiff): ExpectationResult {
  if (!table.rowsCompared) return result(expectation, 'could-not-determine', 'only counts were read (rows not compared)');
  const candidates = table.changed.filter((change) => rowMatches(change.before, expectation.match));
  const fits = candidates.find(
    (change) =>
      rowMatches(change.after, expectation.to) &&
      Object.entries(expectation.deltas).every(([name, delta]) => {
        const old = Number(change.before[name]);
        const now = Number(change.after[name]);
        return Number.isFinite(old) && Number.isFinite(now) && Math.abs(now - old - delta) < 1e-9;
      }),
  );
  if (fits) {
    return result(expectation, 'satisfied', clip(`diff.txt - ${canonicalJson(fits.before)} + ${canonicalJson(fits.after)}`));
  }
  if (candidates.length === 0 && table.changed.length < table.changedCount) {
    return result(expectation, 'could-not-determine', `${table.changedCount} rows changed; the first ${table.changed.length} kept do not include it`);
  }
  if (candidates[0]) {
    const change = candidates[0];
    return result(
      expectation,
      'unsatisfied',
      clip(`the row changed, but not as asserted: - ${canonicalJson(change.before)} + ${canonicalJson(change.after)}`),
    );
  }
  return result(expectation, 'unsatisfied', `no ${expectation.table} row with ${showMatch(expectation.match)} changed (${table.changedCount} changed)`);
}

type SchemaExpectation = Extract<Expectation, { kind: 'schema' }>;

function findObject(expectation: SchemaExpectation, catalog: TableCatalog | null): string | null {
  if (!catalog) return null;
  const sameColumns = (columns: string[]) =>
    expectation.columns !== null && columns.length === expectation.columns.length && columns.every((name, index) => name === expectation.columns![index]);
  switch (expectation.object) {
    case 'table':
      return `table ${catalog.table}`;
    case 'column': {
      const column = catalog.columns.find((entry) => entry.name === expectation.name);
      return column ? `column ${column.name} ${column.type}${column.nullable ? ' null' : ' not null'}` : null;
    }
    case 'index': {
      const index = catalog.indexes.find((entry) => (expectation.name ? entry.name === expectation.name : sameColumns(entry.columns)));
      return index ? index.definition : null;
    }
    case 'constraint': {
      const constraint = catalog.constraints.find((entry) =>
        expectation.name ? entry.name === expectation.name : sameColumns(entry.columns),
      );
      return constraint ? `constraint ${constraint.name} ${constraint.definition}` : null;
    }
    case 'policy': {
      const policy = catalog.policies.find((entry) => entry.name === expectation.name);
      return policy ? `policy ${policy.name} (${policy.command}${policy.using ? ` using ${policy.using}` : ''})` : null;
    }
    case 'trigger': {
      const trigger = catalog.triggers.find((entry) => entry.name === expectation.name);
      return trigger ? trigger.definition : null;
    }
  }
}

function evaluateSchema(expectation: SchemaExpectation, before: TableSnapshot, after: TableSnapshot): ExpectationResult {
  if (!before.schemaRequested || !after.schemaRequested) {
    return result(expectation, 'could-not-determine', 'schema state was not read');
  }
  const old = findObject(expectation, before.catalog);
  const now = findObject(expectation, after.catalog);
  const where = (found: string | null, file: string) => (found ? `present in ${file} (${found})` : `absent in ${file}`);
  const evidence = clip(`${where(old, 'before.json')}; ${where(now, 'after.json')}`);
  const ok = {
    added: !old && Boolean(now),
    removed: Boolean(old) && !now,
    present: Boolean(now),
    absent: !now,
  }[expectation.state];
  return result(expectation, ok ? 'satisfied' : 'unsatisfied', evidence);
}
