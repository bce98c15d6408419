// The footer, always visible: the bindings active now, drawn from the one key
// table (src/console/keys.ts), packed into at most two rows.
import React from 'react';
import { Box } from 'ink';
import { footerRows } from '../console/layout.js';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

export function Footer() {
  const state = useConsole((current) => current);
  const rows = footerRows(state);
  return (
    <Box flexDirection="column">
      {rows.map((row, index) => (
        <Row key={index}>
          {row.map((entry, position) => (
            <React.Fragment key={`${entry.keys}-${position}`}>
              {position > 0 ? <Span tone="dim"> · </Span> : null}
              <Span tone="accent" bold>
                {entry.keys}
              </Span>
              <Span> {entry.label}</Span>
            </React.Fragment>
          ))}
        </Row>
      ))}
    </Box>
  );
}
