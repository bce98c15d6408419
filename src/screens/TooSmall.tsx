// Below 80x24 the layout cannot be drawn honestly: say so instead.
import React from 'react';
import { Box } from 'ink';
import { minColumns, minRows } from '../console/layout.js';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

export function TooSmall() {
  const terminal = useConsole((state) => state.terminal);
  const lines = [
    <Span key="size" tone="warn" bold>
      Terminal too small: {terminal.columns}x{terminal.rows}
    </Span>,
    <Span key="need">
      sor-drills needs {minColumns}x{minRows}. Enlarge it; drills keep running.
    </Span>,
    <Span key="keys" tone="dim">
      q quits · ctrl+c quits at once
    </Span>,
  ];
  // Even here the live region stays shorter than the terminal.
  return (
    <Box flexDirection="column">
      {lines.slice(0, Math.max(1, terminal.rows - 1)).map((line) => (
        <Row key={line.key}>{line}</Row>
      ))}
    </Box>
  );
}
