// One drill at a time, one step at a time. The step shown (what and why), the
// statements it will run (before it runs) or is running, what the operator must do
// (with the key), and below: before the drill starts, its proposal (drill 1) and its
// steps; while it runs, a panel (proposal, live counts, diff, processes); `h` puts the
// step's hint there instead. The keys named on screen come from the key table.
import React from 'react';
import { Box } from 'ink';
import { besideVerdictWord, verdictWords } from '../drills/verdict-words.js';
import { wrapText } from '../console/editor.js';
import { askKey, bindingById } from '../console/keys.js';
import { panelsOf, stepWaiting, useConsole, type CurrentDrill, type PanelName, type StepRow } from '../store.js';
import { CountsPanel, DiffPanel, Lines, ProcessesPanel } from './panels.js';
import { HintPanel, ProposalPanel, proposalLines } from './teaching.js';
import { Row, Span } from './theme.js';

const panelTitles: Record<PanelName, string> = { proposal: 'proposal', counts: 'live counts', diff: 'diff', processes: 'processes' };
/** Rows of a finished drill's verdict (with its evidence line) and evidence folder; a step takes 3. */
const finishedRows = 5;
const stepRowsUsed = 3;

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

function Verdict({ current, columns }: { current: CurrentDrill; columns: number }) {
  const pass = current.verdict === 'pass';
  const { mark, word } = verdictWords[current.verdict ?? 'fail'];
  const text = besideVerdictWord(current.verdict ?? 'fail', (pass ? current.evidence : (current.reason ?? current.evidence)) ?? '');
  const [first, ...rest] = wrapText(text ?? '', columns - 8);
  const more = Array.from({ length: finishedRows - 2 }, (_, index) => rest[index] ?? '');
  return (
    <>
      <Row>
        <Span tone={pass ? 'ok' : 'bad'} bold>
          {`${mark} ${word} `}
        </Span>
        <Span>{first}</Span>
      </Row>
      {more.map((line, index) => (
        <Row key={index}>
          <Span>
            {'       '}
            {line}
          </Span>
        </Row>
      ))}
      <Row>
        <Span tone="dim">evidence: {current.evidenceDirs.join(', ') || 'no folder written'}</Span>
      </Row>
    </>
  );
}

function StepLines({ current, step, columns }: { current: CurrentDrill; step: StepRow | undefined; columns: number }) {
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

function PromptLine({ current, step }: { current: CurrentDrill; step: StepRow | undefined }) {
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

/** Before the drill starts: its proposal (drill 1), then its steps, the tables it watches and its break. */
function Overview({ current, height, proposal }: { current: CurrentDrill; height: number; proposal: boolean }) {
  const row = useConsole((state) => state.drills.find((candidate) => candidate.key === current.key));
  const lines: React.ReactNode[] = [];
  // The proposal with its marks, unless the step shown already shows it.
  if (current.proposal && proposal) lines.push(...proposalLines(current.proposal));
  lines.push(<Span tone="dim">Steps</Span>);
  current.steps.forEach((step, index) => {
    lines.push(
      <>
        <Span tone={index === 0 ? 'accent' : 'plain'}>
          {index === 0 ? '▷ ' : '  '}
          {index + 1}. {step.title}
        </Span>
        {step.operator ? <Span tone="warn"> [you: {step.operator}]</Span> : null}
      </>,
    );
  });
  lines.push(
    <>
      <Span tone="dim">Tables watched: </Span>
      <Span>{row?.tables.join(', ') || 'none'}</Span>
    </>,
  );
  lines.push(
    <>
      <Span tone="dim">Deliberate break: </Span>
      <Span>{row?.breakDescription ?? ''}</Span>
    </>,
  );
  return <Lines lines={lines} height={height} />;
}

function Tabs({ current }: { current: CurrentDrill }) {
  const panel = useConsole((state) => state.panel);
  return (
    <Row>
      {panelsOf(current).map((name) => (
        <React.Fragment key={name}>
          <Span tone={name === panel ? 'accent' : 'dim'} bold={name === panel} inverse={name === panel}>
            {` ${panelTitles[name]} `}
          </Span>
          <Span> </Span>
        </React.Fragment>
      ))}
      <Span tone="dim">(tab)</Span>
    </Row>
  );
}

function Panel({ current, height }: { current: CurrentDrill; height: number }) {
  const panel = useConsole((state) => state.panel);
  switch (panel) {
    case 'proposal':
      return <ProposalPanel proposal={current.proposal} height={height} />;
    case 'diff':
      return <DiffPanel height={height} />;
    case 'processes':
      return <ProcessesPanel height={height} />;
    default:
      return <CountsPanel height={height} />;
  }
}

export function DrillScreen({ height }: { height: number }) {
  const current = useConsole((state) => state.current);
  const columns = useConsole((state) => state.terminal.columns);
  const rows = useConsole((state) => state.drills);
  const hint = useConsole((state) => state.hint);
  if (!current) return null;
  const row = rows.find((candidate) => candidate.key === current.key);
  const step = current.steps[Math.max(0, current.stepIndex)];
  const finished = current.phase === 'finished';
  const header = (
    <Row>
      <Span tone="accent" bold>
        Drill {row?.number ?? '?'}/{rows.length} · {current.phase === 'ready' ? (row?.title ?? current.key) : current.key}
      </Span>
      <Span tone="dim"> · Lesson {row?.lesson}: {row?.habit}</Span>
      {current.broken ? <Span tone="warn"> · DELIBERATE BREAK</Span> : null}
      {current.mastery ? <Span tone="warn"> · mastery gate</Span> : null}
    </Row>
  );
  if (finished) {
    const panelRoom = Math.max(1, height - 2 - finishedRows);
    return (
      <Box flexDirection="column">
        {header}
        <Verdict current={current} columns={columns} />
        <Tabs current={current} />
        <Panel current={current} height={panelRoom} />
      </Box>
    );
  }
  if (hint && step) {
    return (
      <Box flexDirection="column">
        {header}
        <StepLines current={current} step={step} columns={columns} />
        <HintPanel step={step} habit={row?.habit ?? ''} width={columns} height={Math.max(1, height - 1 - stepRowsUsed)} />
      </Box>
    );
  }
  // Fixed rows: header, the step, the prompt, and (once running) the panel tabs.
  const fixed = 1 + stepRowsUsed + 1 + (current.phase === 'ready' ? 0 : 1);
  const sqlRoom = Math.max(1, Math.min(12, Math.floor((height - fixed) / 3)));
  // A step that reads the proposal shows it, with the parser's marks, where SQL goes (it runs none of it).
  const reads = step?.shows === 'proposal' && current.sql.length === 0 && current.proposal ? proposalLines(current.proposal) : undefined;
  const readRows = reads ? Math.min(reads.length, Math.max(sqlRoom, Math.floor((height - fixed) / 2))) : 0;
  const shownSql = reads ? [] : sqlRows(current, sqlRoom, columns - 5);
  const room = Math.max(1, height - fixed - Math.max(1, reads ? readRows : shownSql.length));
  return (
    <Box flexDirection="column">
      {header}
      <StepLines current={current} step={step} columns={columns} />
      {reads ? (
        <Lines lines={reads} height={readRows} />
      ) : shownSql.length > 0 ? (
        shownSql.map((line, index) => (
          <Row key={index}>
            <Span tone="dim">{index === 0 ? 'SQL ' : '    '}</Span>
            <Span tone="accent">{line}</Span>
          </Row>
        ))
      ) : (
        <Row>
          <Span tone="dim">SQL none declared for this step</Span>
        </Row>
      )}
      <PromptLine current={current} step={step} />
      {current.phase === 'ready' ? (
        <Overview current={current} height={room} proposal={!reads} />
      ) : (
        <>
          <Tabs current={current} />
          <Panel current={current} height={room} />
        </>
      )}
    </Box>
  );
}
