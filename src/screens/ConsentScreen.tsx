// A foreign target (tables of its own, no Reconciler schema): nothing is written
// until the operator says yes.
import React from 'react';
import { Box } from 'ink';
import { wrapText } from '../console/editor.js';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

export function ConsentScreen({ height }: { height: number }) {
  const boot = useConsole((state) => state.boot);
  const columns = useConsole((state) => state.terminal.columns);
  const message = wrapText(boot.consent ?? '', columns - 4).slice(0, Math.max(1, height - 7));
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="warn" bold>
          Write into this database?
        </Span>
        <Span tone="dim"> {boot.target}</Span>
      </Row>
      <Row />
      {message.map((line, index) => (
        <Row key={index}>
          <Span>  {line}</Span>
        </Row>
      ))}
      <Row />
      <Row>
        <Span tone="accent" bold>
          y
        </Span>
        <Span> install the reference schema and run the drills in it anyway</Span>
      </Row>
      <Row>
        <Span tone="accent" bold>
          n
        </Span>
        <Span> leave it untouched and quit</Span>
      </Row>
    </Box>
  );
}
