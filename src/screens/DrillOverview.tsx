// What the drill screen shows below the step before the drill starts: its proposal
// (drill 1), then its steps, the tables it watches and its break.
import React from 'react';
import { useConsole, type CurrentDrill } from '../store.js';
import { Lines } from './panels.js';
import { proposalLines } from './teaching.js';
import { Span } from './theme.js';

export function DrillOverview({ current, height, proposal }: { current: CurrentDrill; height: number; proposal: boolean }) {
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
