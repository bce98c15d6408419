// Every key, drawn from the same table as the footer and the key router.
import React from 'react';
import { Box } from 'ink';
import { helpKeysWidth, helpLines } from '../console/keys.js';
import { useConsole } from '../store.js';
import { cell, Row, Span } from './theme.js';

export function HelpScreen({ height }: { height: number }) {
  const columns = useConsole((state) => state.terminal.columns);
  const scroll = useConsole((state) => state.helpScroll);
  const lines = helpLines(columns);
  const room = Math.max(1, height - 1);
  const first = Math.min(scroll, Math.max(0, lines.length - room));
  const shown = lines.slice(first, first + room);
  const more = lines.length > room;
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          Keys
        </Span>
        <Span tone="dim">
          {' '}
          · the footer shows the ones that apply now{more ? ` · ↑↓ scroll (${first + 1}-${first + shown.length} of ${lines.length})` : ''}
        </Span>
      </Row>
      {shown.map((line, index) =>
        line.keys === '' && line.tone === 'accent' ? (
          <Row key={index}>
            <Span tone="accent">{line.text}</Span>
          </Row>
        ) : (
          <Row key={index}>
            <Span bold>  {cell(line.keys, helpKeysWidth)}</Span>
            <Span> {line.text}</Span>
          </Row>
        ),
      )}
    </Box>
  );
}
