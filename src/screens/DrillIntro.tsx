// A drill before it starts: what it checks, its steps, the tables watched and
// its deliberate break, so the operator can choose enter or b knowingly.
import React from 'react';
import { Box } from 'ink';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

export function DrillIntro({ height }: { height: number }) {
  const current = useConsole((state) => state.current);
  const rows = useConsole((state) => state.drills);
  const row = rows.find((candidate) => candidate.key === current?.key);
  if (!current || !row) return null;
  // Fixed rows: header, title, blank, "Steps", tables, break, blank, prompt.
  const room = Math.max(1, height - 8);
  const steps = current.steps.slice(0, room);
  const hidden = current.steps.length - steps.length;
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          Drill {row.number} of {rows.length} · {row.key}
        </Span>
        <Span tone="dim"> · Lesson {row.lesson}: {row.habit}</Span>
      </Row>
      <Row>
        <Span bold>{row.title}</Span>
      </Row>
      <Row />
      <Row>
        <Span tone="dim">Steps{hidden > 0 ? ` (first ${steps.length} of ${current.steps.length})` : ''}</Span>
      </Row>
      {steps.map((step, index) => (
        <Row key={step.id}>
          <Span>
            {'  '}
            {index + 1}. {step.title}
          </Span>
          {step.operator ? <Span tone="warn"> [you: {step.operator}]</Span> : null}
          <Span tone="dim"> · {step.why}</Span>
        </Row>
      ))}
      <Row>
        <Span tone="dim">Tables watched: </Span>
        <Span>{row.tables.join(', ') || 'none'}</Span>
      </Row>
      <Row>
        <Span tone="dim">Deliberate break: </Span>
        <Span>{row.breakDescription}</Span>
      </Row>
      <Row />
      <Row>
        {current.broken ? (
          <Span tone="warn">enter starts it WITH its deliberate break (--break): it must fail honestly.</Span>
        ) : (
          <Span>
            <Span tone="accent" bold>
              enter
            </Span>{' '}
            starts it ·{' '}
            <Span tone="accent" bold>
              b
            </Span>{' '}
            starts it with its deliberate break (it must then fail honestly)
          </Span>
        )}
      </Row>
    </Box>
  );
}
