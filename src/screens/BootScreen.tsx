// The first frame: drawn before PostgreSQL is up, with the target (masked) and
// the progress of starting the cluster and setting up the schema.
import React from 'react';
import { Box } from 'ink';
import { useConsole } from '../store.js';
import { Row, Span } from './theme.js';

const spinner = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';

export function BootScreen({ height }: { height: number }) {
  const boot = useConsole((state) => state.boot);
  const frame = spinner[Math.floor(boot.elapsedMs / 100) % spinner.length];
  const seconds = (boot.elapsedMs / 1000).toFixed(1);
  const room = Math.max(0, height - 5);
  const lines = room > 0 ? boot.lines.slice(-room) : [];
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          sor-drills
        </Span>
        <Span tone="dim"> · is this PostgreSQL fit to be the system of record for an AI-agent Worker?</Span>
      </Row>
      <Row />
      <Row>
        <Span tone="dim">Target </Span>
        <Span>{boot.target}</Span>
      </Row>
      <Row>
        <Span tone="dim">Status </Span>
        {boot.phase === 'failed' ? (
          <Span tone="bad">✗ {boot.error}</Span>
        ) : boot.phase === 'ready' ? (
          <Span tone="ok">✓ ready</Span>
        ) : (
          <Span tone="warn">
            {frame} getting the target ready ({seconds} s)
          </Span>
        )}
      </Row>
      <Row />
      {lines.map((line, index) => (
        <Row key={index}>
          <Span tone="dim">  {line}</Span>
        </Row>
      ))}
    </Box>
  );
}
