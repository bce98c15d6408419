// A target that is not the console's own embedded cluster: nothing is written
// to it until the operator says yes (the same rule as `run --yes`).
import React from 'react';
import { Box } from 'ink';
import { wrapText } from '../console/editor.js';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

export function ConsentScreen({ height }: { height: number }) {
  const target = useConsole((state) => state.boot.target);
  const consent = useConsole((state) => state.boot.consent);
  const columns = useConsole((state) => state.terminal.columns);
  const message = wrapText(consent?.question ?? '', columns - 4).slice(0, Math.max(1, height - 7));
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="warn" bold>
          Write into this database?
        </Span>
        <Span tone="dim"> {target}</Span>
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
        <Span>
          {consent?.installs ? ' install the reference schema and run the drills in it' : ' run the drills in it as it is'}
        </Span>
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
