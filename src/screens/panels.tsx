// The drill screen's panels (tab switches): live counts, the oracle's diff,
// the Reconciler's processes. Each draws at most `height` rows.
import React from 'react';
import { Box } from 'ink';
import type { ProcessView } from '../drills/types.js';
import { useConsole, type Tone } from '../store.js';
import { cell, Row, Span } from './theme.js';

const stateTone: Record<ProcessView['state'], Tone> = { starting: 'warn', running: 'ok', exited: 'bad', killed: 'bad' };

function signed(delta: number): string {
  return delta > 0 ? `+${delta}` : String(delta);
}

export function CountsPanel({ height }: { height: number }) {
  const counts = useConsole((state) => state.counts);
  const lines: React.ReactNode[] = [];
  if (counts.paused) lines.push(<Span tone="warn">{counts.note ?? 'paused'}</Span>);
  if (counts.error) lines.push(<Span tone="bad">live counts: {counts.error}</Span>);
  if (counts.tables.length === 0) lines.push(<Span tone="dim">no tables watched yet</Span>);
  else {
    lines.push(
      <Span tone="dim">
        {cell('table', 24)} {'rows'.padStart(9)} {'Δ since step'.padStart(13)}
      </Span>,
    );
    for (const table of counts.tables) {
      const delta = table.count !== null && table.base !== null ? table.count - table.base : null;
      lines.push(
        <>
          <Span>{cell(table.name, 24)} </Span>
          <Span bold>{(table.count === null ? '—' : String(table.count)).padStart(9)} </Span>
          <Span tone={delta === null || delta === 0 ? 'dim' : delta > 0 ? 'ok' : 'bad'}>
            {(delta === null ? '' : signed(delta)).padStart(13)}
          </Span>
        </>,
      );
    }
  }
  return <Lines lines={lines} height={height} />;
}

export function DiffPanel({ height }: { height: number }) {
  const diff = useConsole((state) => state.current?.diff);
  const scroll = useConsole((state) => state.diffScroll);
  if (!diff) return <Lines lines={[<Span tone="dim">no diff yet: the oracle shows one after a step changes rows</Span>]} height={height} />;
  const all = diff.text.replace(/\n$/, '').split('\n');
  const room = Math.max(1, height - 1);
  const first = Math.min(scroll, Math.max(0, all.length - room));
  const shown = all.slice(first, first + room);
  const lines: React.ReactNode[] = [
    <Span tone="dim">
      normalised diff · {diff.folder}
      {all.length > room ? ` · lines ${first + 1}-${first + shown.length} of ${all.length} (↑↓)` : ''}
    </Span>,
    ...shown.map((line) => (
      <Span tone={line.startsWith('+') ? 'ok' : line.startsWith('-') ? 'bad' : line.startsWith('@@') ? 'accent' : 'dim'}>
        {line || ' '}
      </Span>
    )),
  ];
  return <Lines lines={lines} height={height} />;
}

export function ProcessesPanel({ height }: { height: number }) {
  const processes = useConsole((state) => state.processes);
  const selected = useConsole((state) => state.selected);
  const asked = useConsole((state) => (state.ask?.ask && 'process' in state.ask.ask ? state.ask.ask.process : undefined));
  if (processes.length === 0) {
    return <Lines lines={[<Span tone="dim">no processes yet: the drills start them when they need them</Span>]} height={height} />;
  }
  const lines: React.ReactNode[] = [
    <Span tone="dim">
      {'  '}
      {cell('process', 16)} {cell('pid', 8)} {cell('state', 18)} last log line
    </Span>,
    ...processes.map((process, index) => {
      const state = process.signal ? `${process.state} (${process.signal})` : process.state;
      const tone = stateTone[process.state];
      return (
        <>
          <Span tone="accent" bold>
            {index === selected ? '› ' : '  '}
          </Span>
          <Span bold={index === selected} inverse={index === selected}>
            {cell(process.name, 16)}
          </Span>
          <Span> {cell(process.pid === undefined ? '—' : String(process.pid), 8)} </Span>
          <Span tone={tone}>{cell(state, 18)}</Span>
          <Span tone={process.name === asked ? 'warn' : 'dim'}> {process.lastLine ?? ''}</Span>
        </>
      );
    }),
  ];
  return <Lines lines={lines} height={height} />;
}

/** At most `height` rows; the last says how many were left out. */
export function Lines({ lines, height }: { lines: React.ReactNode[]; height: number }) {
  const room = Math.max(1, height);
  const shown = lines.length > room ? [...lines.slice(0, room - 1), <Span tone="dim">… {lines.length - room + 1} more</Span>] : lines;
  return (
    <Box flexDirection="column">
      {shown.map((line, index) => (
        <Row key={index}>{line}</Row>
      ))}
    </Box>
  );
}
