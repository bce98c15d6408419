// The runner's events, folded into the store. The console is one listener on
// the same typed events as the headless printer: it keeps the current drill's
// step, SQL, diff and tables for the live region, and writes what is done
// (finished steps, observations, verdicts) to the transcript printed in <Static>.
// The Reconciler's processes reach the store one way only: the session's
// process events (the supervisor's), applied by applyProcessEvent for as long as
// the session lives, between drills too (a restart after a drill has finished).
import type { SystemEvent } from '../drills/processes.js';
import type { DrillSummary, ProcessView, RunnerEvent, StepSummary } from '../drills/types.js';
import { besideVerdictWord, verdictWord } from '../drills/verdict-words.js';
import { shownPath } from '../util/paths.js';
import {
  appendHistory,
  getState,
  update,
  type ConsoleState,
  type CurrentDrill,
  type DrillRow,
  type StepRow,
  type TableCount,
} from '../store.js';

export function drillRows(drills: readonly DrillSummary[]): DrillRow[] {
  return drills.map((drill) => ({
    key: drill.key,
    number: drill.number,
    title: drill.title,
    lesson: drill.lesson,
    habit: drill.habit,
    tables: [...drill.tables],
    breakDescription: drill.breakDescription,
    status: 'waiting',
    broken: false,
  }));
}

export function stepRows(steps: readonly StepSummary[]): StepRow[] {
  return steps.map((step) => ({
    id: step.id,
    title: step.title,
    why: step.why,
    sql: [...step.sql],
    operator: step.operator,
    hint: step.hint,
    shows: step.shows,
    state: 'waiting',
  }));
}

/** A statement as transcript lines: `SQL` before its first line, the rest indented under it. */
export function sqlHistory(statement: string, declared = false): Array<{ text: string; tone: 'accent' | 'dim' }> {
  const lines = statement.split('\n').map((line) => line.replace(/\s+$/, '')).filter((line) => line.trim() !== '');
  return lines.map((line, index) => ({
    text: `${index === 0 ? (declared ? '      SQL (as declared) ' : '      SQL ') : declared ? '                        ' : '          '}${line}`,
    tone: 'accent' as const,
  }));
}

function patchCurrent(state: ConsoleState, change: Partial<CurrentDrill>): Partial<ConsoleState> {
  return state.current ? { current: { ...state.current, ...change } } : {};
}

function patchRow(state: ConsoleState, key: string, change: Partial<DrillRow>): DrillRow[] {
  return state.drills.map((row) => (row.key === key ? { ...row, ...change } : row));
}

/** A process started, changed state or logged a line. */
export function applyProcessEvent(event: SystemEvent): void {
  if (event.type === 'process') upsertProcess(event.process);
  else processLine(event.name, event.line);
}

function upsertProcess(process: ProcessView): void {
  update((state) => {
    const index = state.processes.findIndex((candidate) => candidate.name === process.name);
    if (index < 0) return { processes: [...state.processes, { ...process }] };
    const processes = [...state.processes];
    processes[index] = { ...processes[index], ...process, lastLine: process.lastLine ?? processes[index]?.lastLine };
    return { processes };
  });
}

function processLine(name: string, line: string): void {
  update((state) => {
    const index = state.processes.findIndex((candidate) => candidate.name === name);
    if (index < 0) return {};
    const processes = [...state.processes];
    processes[index] = { ...processes[index]!, lastLine: line };
    return { processes };
  });
}

function drillLabel(state: ConsoleState, key: string): string {
  const row = state.drills.find((candidate) => candidate.key === key);
  return row ? `Drill ${row.number}/${state.drills.length || 9} ${key} · Lesson ${row.lesson}: ${row.habit}` : key;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function applyRunnerEvent(event: RunnerEvent): void {
  const state = getState();
  switch (event.type) {
    case 'run-started':
      if (state.drills.length === 0) update({ drills: drillRows(event.drills) });
      update((current) => ({ boot: { ...current.boot, target: event.target } }));
      return;
    case 'drill-started': {
      const steps = stepRows(event.steps);
      update((current) => ({
        current: {
          key: event.key,
          phase: 'running',
          broken: event.broken,
          mastery: current.mastery.running,
          steps,
          stepIndex: -1,
          sql: [],
          sqlPrinted: 0,
          proposal: current.current?.key === event.key ? current.current.proposal : undefined,
          tables: current.current?.key === event.key ? current.current.tables : [],
          evidenceDirs: [],
        },
        drills: current.mastery.running ? current.drills : patchRow(current, event.key, { status: 'running', broken: event.broken }),
        // A new drill starts from its own processes: drop the ones earlier drills left exited.
        processes: current.processes.filter((process) => process.state === 'running' || process.state === 'starting'),
        selected: 0,
        panel: current.current?.key === event.key && current.current.proposal ? 'proposal' : 'counts',
        panelPinned: false,
        diffScroll: 0,
        ask: undefined,
        hint: false,
      }));
      appendHistory([
        { text: '' },
        {
          text: `━━ ${drillLabel(state, event.key)}${event.broken ? ' · with its deliberate break' : ''}${state.mastery.running ? ' (mastery gate)' : ''}`,
          tone: 'accent',
        },
      ]);
      return;
    }
    case 'tables':
      update((current) => ({
        ...patchCurrent(current, { tables: [...event.tables] }),
        counts: {
          ...current.counts,
          error: undefined,
          tables: event.tables.map((name): TableCount => {
            const known = current.counts.tables.find((table) => table.name === name);
            return { name, count: known?.count ?? null, base: known?.count ?? null };
          }),
        },
      }));
      return;
    case 'step-ready':
      // Shown, not run: its statements on screen until the operator presses enter.
      update((current) => {
        if (!current.current) return {};
        const steps = current.current.steps.map((step, index) => (index === event.index ? { ...step, state: 'ready' as const } : step));
        if (!steps[event.index]) steps[event.index] = { ...stepRows([event.step])[0]!, state: 'ready' };
        return { current: { ...current.current, steps, stepIndex: event.index, sql: [], sqlPrinted: 0 } };
      });
      return;
    case 'step-started':
      update((current) => {
        if (!current.current) return {};
        const steps = current.current.steps.map((step, index) =>
          index === event.index ? { ...step, state: 'running' as const } : step,
        );
        if (!steps[event.index]) steps[event.index] = { ...stepRows([event.step])[0]!, state: 'running' };
        return {
          current: { ...current.current, steps, stepIndex: event.index, sql: [], sqlPrinted: 0 },
          // The delta shown beside each count is since this step began.
          counts: { ...current.counts, tables: current.counts.tables.map((table) => ({ ...table, base: table.count })) },
        };
      });
      appendHistory([{ text: `  ${event.index + 1}. ${event.step.title}`, tone: 'plain' }]);
      return;
    case 'sql': {
      const sql = state.current?.sql ?? [];
      // The same statement run again at once (a poll) is printed once.
      if (!state.current || sql[sql.length - 1] === event.sql) return;
      update((current) =>
        patchCurrent(current, { sql: [...sql, event.sql].slice(-12), sqlPrinted: (current.current?.sqlPrinted ?? 0) + 1 }),
      );
      appendHistory(sqlHistory(event.sql));
      return;
    }
    case 'observation':
      appendHistory([
        {
          text: `      · ${event.label}: ${event.value}`,
          tone: event.ok === true ? 'ok' : event.ok === false ? 'bad' : 'dim',
        },
      ]);
      return;
    case 'operator-ask':
      appendHistory([{ text: `      ? ${event.ask.prompt}`, tone: 'warn' }]);
      return;
    case 'operator-done':
      return;
    case 'diff': {
      const changed = event.text.split('\n').filter((line) => /^[+-](?![+-]{2})/.test(line)).length;
      const folder = shownPath(event.folder);
      update((current) => ({
        ...patchCurrent(current, { diff: { text: event.text, folder } }),
        ...(current.ask || current.panelPinned ? {} : { panel: 'diff' as const }),
        diffScroll: 0,
      }));
      appendHistory([{ text: `      diff: ${changed} changed line${changed === 1 ? '' : 's'} · evidence in ${folder}`, tone: 'dim' }]);
      return;
    }
    case 'step-finished': {
      const step = state.current?.steps[event.index];
      update((current) => {
        if (!current.current) return {};
        const steps = current.current.steps.map((row, index) =>
          index === event.index ? { ...row, state: event.ok ? ('ok' as const) : ('failed' as const), summary: event.summary } : row,
        );
        return patchCurrent(current, { steps });
      });
      const title = step?.title ?? `step ${event.index + 1}`;
      // A step that showed none of what it ran (its statements run in a process, or none at all): what it declared.
      if (state.current && state.current.sqlPrinted === 0) {
        appendHistory((step?.sql ?? []).flatMap((statement) => sqlHistory(statement, true)));
      }
      appendHistory([
        event.ok
          ? { text: `  ✓ ${event.index + 1}. ${title}${event.summary ? `: ${event.summary}` : ''}`, tone: 'ok' }
          : { text: `  ✗ ${event.index + 1}. ${title}${event.summary ? `: ${event.summary}` : ''}`, tone: 'bad' },
      ]);
      return;
    }
    case 'drill-finished': {
      const { result } = event;
      update((current) => ({
        drills: current.mastery.running
          ? current.drills
          : patchRow(current, event.key, {
              status: result.verdict === 'pass' ? 'pass' : 'fail',
              evidence: result.verdict === 'pass' ? result.evidence : (result.reason ?? result.evidence),
              durationMs: result.durationMs,
              broken: result.broken,
            }),
        ...(current.current?.key === event.key
          ? patchCurrent(current, {
              phase: 'finished',
              verdict: result.verdict,
              evidence: result.evidence,
              reason: result.reason,
              evidenceDirs: result.evidenceDirs.map((dir) => shownPath(dir)),
            })
          : {}),
        ask: undefined,
      }));
      appendHistory([
        {
          text: `  ${verdictWord(result.verdict)} ${event.key}: ${besideVerdictWord(result.verdict, result.verdict === 'pass' ? result.evidence : (result.reason ?? result.evidence))} (${seconds(result.durationMs)})`,
          tone: result.verdict === 'pass' ? 'ok' : 'bad',
        },
      ]);
      return;
    }
    case 'run-finished':
      update({ runFinished: true });
      return;
    case 'log':
      appendHistory([{ text: `      ${event.message}`, tone: 'dim' }]);
      return;
  }
}
