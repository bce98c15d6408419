// The mastery gate: all nine passed on the first try, so the operator repeats
// one drill with its deliberate break and records the honest failure.
import React from 'react';
import { Box } from 'ink';
import { useConsole } from '../store.js';
import { cell, Row, Span } from './theme.js';

export function MasteryScreen({ height }: { height: number }) {
  const drills = useConsole((state) => state.drills);
  const selected = useConsole((state) => state.mastery.selected);
  const shown = drills.slice(0, Math.max(1, height - 4));
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          Mastery gate
        </Span>
        <Span tone="dim"> · a capstone where everything worked still shows one honest failure</Span>
      </Row>
      <Row>
        <Span>Pick a drill to repeat with its deliberate break; its failure becomes a second bundle.</Span>
      </Row>
      <Row />
      {shown.map((row, index) => (
        <Row key={row.key}>
          <Span tone="accent" bold>
            {index === selected ? '› ' : '  '}
          </Span>
          <Span inverse={index === selected}>{cell(`${row.number} ${row.key}`, 28)}</Span>
          <Span tone="dim"> break: {row.breakDescription}</Span>
        </Row>
      ))}
    </Box>
  );
}
