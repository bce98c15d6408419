// The nine drills, in order: lesson, status and the evidence line of each
// finished one. None can be skipped: the footer offers only the next.
import React from 'react';
import { Box } from 'ink';
import { useConsole, type DrillRow, type DrillStatus, type Tone } from '../store.js';
import { cell, Row, Span } from './theme.js';

const statusMark: Record<DrillStatus, { mark: string; word: string; tone: Tone }> = {
  waiting: { mark: '·', word: 'waiting', tone: 'dim' },
  running: { mark: '▶', word: 'running', tone: 'warn' },
  pass: { mark: '✓', word: 'pass', tone: 'ok' },
  fail: { mark: '✗', word: 'fail', tone: 'bad' },
};

function DrillLine({ row, next, inline, habitWidth }: { row: DrillRow; next: boolean; inline: boolean; habitWidth: number }) {
  const status = statusMark[row.status];
  return (
    <Row>
      <Span tone={next ? 'accent' : 'plain'}>{next ? '›' : ' '}</Span>
      <Span tone="dim">{String(row.number).padStart(2)} </Span>
      <Span tone={status.tone}>{status.mark} </Span>
      <Span bold={next}>{cell(row.key, 25)}</Span>
      <Span tone="dim">{cell(`L${row.lesson} ${row.habit}`, habitWidth)} </Span>
      <Span tone={status.tone}>{cell(status.word + (row.broken ? '*' : ''), 8)}</Span>
      {inline && row.evidence ? <Span tone="dim">{row.evidence}</Span> : null}
    </Row>
  );
}

export function DrillListScreen({ height }: { height: number }) {
  const drills = useConsole((state) => state.drills);
  const nextIndex = useConsole((state) => state.nextIndex);
  const target = useConsole((state) => state.boot.target);
  const runFinished = useConsole((state) => state.runFinished);
  const phase = useConsole((state) => state.current?.phase);
  const passed = drills.filter((row) => row.status === 'pass').length;
  const failed = drills.filter((row) => row.status === 'fail').length;
  // Evidence on its own row when there is room for all nine; otherwise beside the status.
  const twoRows = height >= 4 + drills.length * 2;
  const next = drills[nextIndex];
  const columns = useConsole((state) => state.terminal.columns);
  // Wide terminals show the whole habit; narrow ones keep room for the evidence.
  const habitWidth = Math.max(20, Math.min(44, columns - 70));
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          {drills.length === 9 ? 'Nine' : drills.length} drills, in order
        </Span>
        <Span tone="dim">
          {' '}
          · {passed + failed} of {drills.length} done · {passed} pass · {failed} fail · {target}
        </Span>
      </Row>
      <Row />
      {drills.map((row, index) => (
        <React.Fragment key={row.key}>
          <DrillLine row={row} next={!runFinished && index === nextIndex} inline={!twoRows} habitWidth={habitWidth} />
          {twoRows && row.evidence ? (
            <Row>
              <Span tone="dim">{'       '}{row.evidence}</Span>
            </Row>
          ) : null}
        </React.Fragment>
      ))}
      <Row />
      <Row>
        {runFinished ? (
          <Span>All nine ran: enter shows the decision.</Span>
        ) : next && phase === 'ready' ? (
          <Span>
            Next: drill {next.number} {next.key}. enter opens it; b starts it with its deliberate break.
          </Span>
        ) : next && phase === 'running' ? (
          <Span>Drill {next.number} {next.key} is running: enter shows it.</Span>
        ) : next && phase === 'finished' ? (
          <Span>Drill {next.number} {next.key} finished: enter shows its result.</Span>
        ) : (
          <Span tone="dim">Loading the drills…</Span>
        )}
      </Row>
    </Box>
  );
}
