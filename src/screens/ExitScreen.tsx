// Shown while the console stops its processes and PostgreSQL, and left on the
// terminal as the last frame when Ink unmounts.
import React from 'react';
import { Box } from 'ink';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

export function ExitScreen({ height }: { height: number }) {
  const lines = useConsole((state) => state.exiting.lines);
  const error = useConsole((state) => state.boot.error);
  const shown = lines.slice(-Math.max(1, height - (error ? 1 : 0)));
  return (
    <Box flexDirection="column">
      {error ? (
        <Row>
          <Span tone="bad">sor-drills: {error}</Span>
        </Row>
      ) : null}
      {shown.map((line, index) => (
        <Row key={index}>
          <Span tone={index === shown.length - 1 ? 'plain' : 'dim'}>{line}</Span>
        </Row>
      ))}
    </Box>
  );
}
