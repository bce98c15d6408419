// One drill at a time, one step at a time. The step shown (what and why), the
// statements it will run (before it runs) or is running, what the operator must do
// (with the key), and below: before the drill starts, its proposal (drill 1) and its
// steps; while it runs, a panel (proposal, live counts, diff, processes); `h` puts the
// step's hint there instead. The keys named on screen come from the key table.
// This file lays those out and budgets their rows; the step's own rows are in
// DrillStep, the overview before the start in DrillOverview, the verdict in DrillVerdict.
import React from 'react';
import { Box } from 'ink';
import { panelsOf, useConsole, type CurrentDrill, type PanelName } from '../store.js';
import { DrillOverview } from './DrillOverview.js';
import { PromptLine, StepLines, StepSql, sqlRows, stepRowsUsed } from './DrillStep.js';
import { DrillVerdict, verdictRows } from './DrillVerdict.js';
import { CountsPanel, DiffPanel, Lines, ProcessesPanel } from './panels.js';
import { HintPanel, ProposalPanel, proposalLines } from './teaching.js';
import { Row, Span } from './theme.js';

const panelTitles: Record<PanelName, string> = { proposal: 'proposal', counts: 'live counts', diff: 'diff', processes: 'processes' };

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
    const panelRoom = Math.max(1, height - 2 - verdictRows);
    return (
      <Box flexDirection="column">
        {header}
        <DrillVerdict current={current} columns={columns} />
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
      {reads ? <Lines lines={reads} height={readRows} /> : <StepSql lines={shownSql} />}
      <PromptLine current={current} step={step} />
      {current.phase === 'ready' ? (
        <DrillOverview current={current} height={room} proposal={!reads} />
      ) : (
        <>
          <Tabs current={current} />
          <Panel current={current} height={room} />
        </>
      )}
    </Box>
  );
}
