// The runs, turns and tool_calls parts, from their foreign-key chain
// tool_calls -> turns -> runs; and the run column the outbox and the events hold.
import { draftKey, draftStatus, optionalColumn, requiredColumn } from './columns.js';
import { type Drafter, list, type Spec } from './drafter.js';
import { type CatalogTable, foreignKeys, foreignKeysTo } from './pg-catalog.js';
import { draftTenantColumn, type TenantOf } from './tenants.js';
import { columnSynonyms, integerType, tableSynonyms, textType, timeType } from './vocabulary.js';

interface Chain {
  calls: CatalogTable;
  turns: CatalogTable;
  runs: CatalogTable;
  /** tool_calls -> turns, turns -> runs. */
  callTurn: string;
  turnRun: string;
}

export function draftChain(d: Drafter, tenantOf: TenantOf): { runs?: CatalogTable; turns?: CatalogTable } {
  const free = d.free();
  const freeNames = new Set(free.map((table) => table.name));
  const chains: Chain[] = [];
  for (const calls of free) {
    for (const toTurns of foreignKeys(calls)) {
      const turns = d.table(toTurns.references);
      if (!turns || turns === calls || !freeNames.has(turns.name)) continue;
      for (const toRuns of foreignKeys(turns)) {
        const runs = d.table(toRuns.references);
        if (!runs || runs === calls || runs === turns || !freeNames.has(runs.name) || tenantOf(runs).kind === 'none') continue;
        chains.push({ calls, turns, runs, callTurn: toTurns.columns[0]!, turnRun: toRuns.columns[0]! });
      }
    }
  }
  const named = (chain: Chain) =>
    Number((tableSynonyms.tool_calls as readonly string[]).includes(chain.calls.name)) +
    Number((tableSynonyms.turns as readonly string[]).includes(chain.turns.name)) +
    Number((tableSynonyms.runs as readonly string[]).includes(chain.runs.name));
  let left = chains;
  if (left.length > 1) {
    const best = Math.max(...left.map(named));
    left = left.filter((chain) => named(chain) === best);
  }
  const shown = (chain: Chain) => `${chain.calls.name}.${chain.callTurn} -> ${chain.turns.name}, ${chain.turns.name}.${chain.turnRun} -> ${chain.runs.name}`;
  if (left.length !== 1) {
    const why =
      left.length === 0
        ? 'no foreign-key chain tool_calls -> turns -> runs (runs holding the tenant) was found'
        : `${left.length} foreign-key chains could be tool_calls -> turns -> runs (${list(left.map(shown))})`;
    for (const [part, what] of [['runs', 'runs'], ['turns', 'turns of a run'], ['tool_calls', 'tool calls of a turn']]) d.undecidedTable(part!, `${why}; write the table of ${what}`);
    return {};
  }
  const chain = left[0]!;
  const evidence = `the foreign-key chain ${shown(chain)}${chains.length > 1 ? ` (of ${chains.length}, the one named like tool_calls, turns, runs)` : ''}`;
  for (const [part, table] of [['runs', chain.runs], ['turns', chain.turns], ['tool_calls', chain.calls]] as const) {
    d.chosen.set(part, table);
    d.set(d.spec(part), `${part}.table`, table.name, evidence);
  }

  const runs = d.spec('runs');
  draftKey(d, runs, 'runs', chain.runs);
  draftTenantColumn(d, runs, 'runs', chain.runs, tenantOf);
  optionalColumn(d, runs, 'runs.worker', chain.runs, columnSynonyms.worker, 'the worker');
  draftStatus(d, runs, 'runs', chain.runs, ['running', 'finished', 'failed']);
  optionalColumn(d, runs, 'runs.total_turns', chain.runs, columnSynonyms.totalTurns, 'the number of turns', (c) => integerType.test(c.type));
  optionalColumn(d, runs, 'runs.error', chain.runs, columnSynonyms.error, 'the error');
  optionalColumn(d, runs, 'runs.started_at', chain.runs, columnSynonyms.startedAt, 'when it started', (c) => timeType.test(c.type));
  optionalColumn(d, runs, 'runs.finished_at', chain.runs, columnSynonyms.finishedAt, 'when it finished', (c) => timeType.test(c.type));

  const turns = d.spec('turns');
  draftKey(d, turns, 'turns', chain.turns);
  d.set(turns, 'turns.run', chain.turnRun, `column ${chain.turns.name}.${chain.turnRun}, a foreign key to ${chain.runs.name}`);
  requiredColumn(d, turns, 'turns.number', chain.turns, columnSynonyms.turnNumber, 'the turn number', (c) => integerType.test(c.type));
  draftStatus(d, turns, 'turns', chain.turns, ['running', 'completed', 'failed']);
  optionalColumn(d, turns, 'turns.started_at', chain.turns, columnSynonyms.startedAt, 'when it started', (c) => timeType.test(c.type));
  optionalColumn(d, turns, 'turns.finished_at', chain.turns, columnSynonyms.finishedAt, 'when it finished', (c) => timeType.test(c.type));

  const calls = d.spec('tool_calls');
  draftKey(d, calls, 'tool_calls', chain.calls);
  d.set(calls, 'tool_calls.turn', chain.callTurn, `column ${chain.calls.name}.${chain.callTurn}, a foreign key to ${chain.turns.name}`);
  const toRuns = foreignKeysTo(chain.calls, chain.runs);
  if (toRuns.length === 1) d.set(calls, 'tool_calls.run', toRuns[0]!.columns[0], `column ${chain.calls.name}.${toRuns[0]!.columns[0]}, a foreign key to ${chain.runs.name}`);
  else if (toRuns.length === 0) d.omit('tool_calls.run', `no column of ${chain.calls.name} references ${chain.runs.name} (the run is reached through ${chain.turns.name})`);
  else d.todo(calls, 'tool_calls.run', `${chain.calls.name} has ${list(toRuns.map((key) => key.columns[0]!))} referencing ${chain.runs.name}; write the one it is, or remove this key`);
  optionalColumn(d, calls, 'tool_calls.turn_number', chain.calls, columnSynonyms.callTurnNumber, 'the turn number', (c) => integerType.test(c.type));
  requiredColumn(d, calls, 'tool_calls.number', chain.calls, columnSynonyms.callNumber, 'the call number', (c) => integerType.test(c.type));
  requiredColumn(d, calls, 'tool_calls.tool', chain.calls, columnSynonyms.tool, 'the tool name', (c) => textType.test(c.type));
  requiredColumn(d, calls, 'tool_calls.arguments', chain.calls, columnSynonyms.arguments, 'the arguments');
  optionalColumn(d, calls, 'tool_calls.result', chain.calls, columnSynonyms.result, 'the result');
  draftStatus(d, calls, 'tool_calls', chain.calls, ['started', 'completed', 'failed']);
  optionalColumn(d, calls, 'tool_calls.error', chain.calls, columnSynonyms.error, 'the error');
  optionalColumn(d, calls, 'tool_calls.error_code', chain.calls, columnSynonyms.errorCode, 'the error code');
  optionalColumn(d, calls, 'tool_calls.started_at', chain.calls, columnSynonyms.startedAt, 'when it started', (c) => timeType.test(c.type));
  optionalColumn(d, calls, 'tool_calls.finished_at', chain.calls, columnSynonyms.finishedAt, 'when it finished', (c) => timeType.test(c.type));
  optionalColumn(d, calls, 'tool_calls.duration_ms', chain.calls, columnSynonyms.durationMs, 'the duration', (c) => integerType.test(c.type) || /^numeric/.test(c.type));
  return { runs: chain.runs, turns: chain.turns };
}

/** A part's run column: a foreign key to runs, else a column named as turns' run column. */
export function draftRunColumn(d: Drafter, spec: Spec, part: string, table: CatalogTable, runs: CatalogTable | undefined, turns: CatalogTable | undefined, optional: boolean): void {
  const key = `${part}.run`;
  if (!runs) {
    if (optional) d.omit(key, 'the runs table is undecided');
    else d.todo(spec, key, 'decide runs.table first, then write the column that holds the run');
    return;
  }
  const references = foreignKeysTo(table, runs);
  if (references.length === 1) {
    d.set(spec, key, references[0]!.columns[0], `column ${table.name}.${references[0]!.columns[0]}, a foreign key to ${runs.name}`);
    return;
  }
  const runColumn = turns ? foreignKeysTo(turns, runs)[0]?.columns[0] : undefined;
  const named = references.length > 1 ? references.map((reference) => reference.columns[0]!) : table.columns.filter((candidate) => candidate.name === runColumn).map((candidate) => candidate.name);
  if (named.length === 1) d.set(spec, key, named[0], `column ${table.name}.${named[0]}, named as ${turns!.name}'s reference to ${runs.name} (it has no foreign key)`);
  else if (named.length > 1) d.todo(spec, key, `${table.name} has ${list(named)} referencing ${runs.name}; write the one it is${optional ? ', or remove this key' : ''}`);
  else if (optional) d.omit(key, `no column of ${table.name} references ${runs.name}`);
  else d.todo(spec, key, `no column of ${table.name} references ${runs.name}; write the column that holds the run`);
}
