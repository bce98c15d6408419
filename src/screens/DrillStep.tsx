// The step the drill screen shows: its title and why, the statements it will run
// (before it runs) or is running, and the prompt line (what the operator must do,
// with the key). The keys named here come from the key table.
import React from 'react';
import { wrapText } from '../console/editor.js';
import { askKey, bindingById } from '../console/keys.js';
import { stepWaiting, useConsole, type CurrentDrill, type StepRow } from '../store.js';
import { Row, Span } from './theme.js';

/** The rows StepLines draws: the title, then two of why. */
export const stepRowsUsed = 3;

/**
 * The statements to show, as display rows wrapped to the width (a query is read whole, not cut
 * off at the edge): what the step ran (most recent kept), else what it declares.
 */
export function sqlRows(current: CurrentDrill, room: number, width = Number.POSITIVE_INFINITY): string[] {
  const declared = current.steps[Math.max(0, current.stepIndex)]?.sql ?? [];
  const statements = current.sql.length > 0 ? current.sql : declared;
  const lines = statements.flatMap((statement) => statement.split('\n').map((line) => line.replace(/\s+$/, '')).filter(Boolean));
  const rows = Number.isFinite(width) ? lines.flatMap((line) => wrapLine(line, width)) : lines;
  if (room <= 0) return [];
  if (rows.length <= room) return rows;
  return [...rows.slice(0, Math.max(0, room - 1)), `… ${rows.length - room + 1} more lines (all of them in the transcript once it runs)`];
}

/** A line cut to the width at spaces where it can be, the rest indented two more. */
function wrapLine(line: string, width: number): string[] {
  if (line.length <= width || width < 20) return [line];
  const indent = `${/^\s*/.exec(line)?.[0] ?? ''}  `;
  const [first, ...rest] = wrapText(line, width);
  return [first ?? '', ...wrapText(rest.join(' '), width - indent.length).map((part) => `${indent}${part}`)];
}

export function StepLines({ current, step, columns }: { current: CurrentDrill; step: StepRow | undefined; columns: number }) {
  const index = Math.max(0, current.stepIndex);
  const waiting = current.phase === 'ready' || step?.state === 'ready';
  const why = wrapText(step?.why ?? '', columns - 4);
  return (
    <>
      <Row>
        <Span tone={waiting ? 'accent' : 'warn'} bold>
          {waiting ? '▷' : '▶'} Step {index + 1} of {current.steps.length} · {step?.title ?? 'starting…'}
        </Span>
        <Span tone="dim">{waiting ? ' · not run yet' : step?.state === 'running' ? ' · running' : ''}</Span>
      </Row>
      <Row>
        <Span tone="dim">  {why[0] ?? ''}</Span>
      </Row>
      <Row>
        <Span tone="dim">  {why[1] ?? ''}</Span>
      </Row>
    </>
  );
}

/** The rows of sqlRows, the first labelled SQL; a row saying so when the step declares none. */
export function StepSql({ lines }: { lines: string[] }) {
  if (lines.length === 0) {
    return (
      <Row>
        <Span tone="dim">SQL none declared for this step</Span>
      </Row>
    );
  }
  return (
    <>
      {lines.map((line, index) => (
        <Row key={index}>
          <Span tone="dim">{index === 0 ? 'SQL ' : '    '}</Span>
          <Span tone="accent">{line}</Span>
        </Row>
      ))}
    </>
  );
}

/** The keys that move the step on, as the key table names them. */
function stepPrompt(current: CurrentDrill, hasHint: boolean): string {
  const parts: string[] = [];
  const index = Math.max(0, current.stepIndex) + 1;
  if (current.phase === 'ready') {
    parts.push(`${bindingById('start-drill').keys}: run step ${index}`, `${bindingById('run-rest').keys}: the whole drill`);
    if (!current.broken) parts.push(`${bindingById('break').keys}: with its break`);
  } else {
    parts.push(`${bindingById('run-step').keys}: run step ${index}`, `${bindingById('run-rest').keys}: the rest`);
  }
  if (hasHint) parts.push(`${bindingById('hint').keys}: hint`);
  return parts.join(' · ');
}

export function PromptLine({ current, step }: { current: CurrentDrill; step: StepRow | undefined }) {
  const ask = useConsole((state) => state.ask);
  const waiting = useConsole(stepWaiting);
  if (ask) {
    return (
      <Row>
        <Span tone="warn" bold inverse>
          {ask.performing ? ' … ' : ` press ${askKey(ask.ask.kind)} `}
        </Span>
        <Span tone="warn"> {ask.performing ? `doing it: ${ask.ask.prompt}` : ask.ask.prompt}</Span>
      </Row>
    );
  }
  if (current.phase === 'ready' || waiting) {
    return (
      <Row>
        <Span tone="accent">{stepPrompt(current, step?.hint !== undefined)}</Span>
        {step?.operator ? <Span tone="warn"> · this step asks you to {step.operator}</Span> : null}
      </Row>
    );
  }
  return <Row />;
}
