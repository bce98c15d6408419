// The fleet drill, beyond the capstone: the consent question on a target that is
// not the console's embedded cluster, the run's live progress and phase lines, and
// its verdict with the figures and where the JSON and the report were written.
import React from 'react';
import { Box } from 'ink';
import { wrapText } from '../console/editor.js';
import { useConsole, type FleetResult, type FleetView } from '../store.js';
import { Row, Span } from './theme.js';

const count = (value: number) => value.toLocaleString('en-US');

function Consent({ fleet, columns, height }: { fleet: FleetView; columns: number; height: number }) {
  const message = wrapText(fleet.question ?? '', columns - 4).slice(0, Math.max(1, height - 6));
  return (
    <>
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
        <Span> write them and run the fleet drill in it</Span>
      </Row>
      <Row>
        <Span tone="accent" bold>
          n
        </Span>
        <Span> leave it untouched, back to the decision (esc too)</Span>
      </Row>
    </>
  );
}

function bar(done: number, total: number, width: number): string {
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : 0;
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

function Progress({ fleet }: { fleet: FleetView }) {
  const progress = fleet.progress;
  if (!progress) {
    return (
      <Row>
        <Span tone="dim">processed 0 / {count(fleet.transactions)} · starting…</Span>
      </Row>
    );
  }
  const share = progress.total > 0 ? Math.floor((progress.processed / progress.total) * 100) : 0;
  return (
    <>
      <Row>
        <Span bold>
          processed {count(progress.processed)} / {count(progress.total)}
        </Span>
        <Span tone="accent"> {bar(progress.processed, progress.total, 30)}</Span>
        <Span> {share}%</Span>
      </Row>
      <Row>
        <Span>
          claimed {progress.claimed} · {Math.round(progress.tpsNow)} tx/s now · elapsed {(progress.elapsedMs / 1000).toFixed(1)} s · kills{' '}
          {progress.kills}
        </Span>
      </Row>
    </>
  );
}

function Verdict({ result }: { result: FleetResult }) {
  return (
    <>
      <Row>
        <Span tone={result.held ? 'ok' : 'bad'} bold>
          {result.held ? '✓ History held' : '✗ History DID NOT hold'}
        </Span>
        <Span>
          : {count(result.processed)} / {count(result.transactions)} processed · {result.duplicates} duplicates · {result.lost} lost ·{' '}
          {result.lock_errors} lock errors
        </Span>
      </Row>
      {result.problems.map((problem, index) => (
        <Row key={index}>
          <Span tone="bad">✗ {problem}</Span>
        </Row>
      ))}
      <Row>
        <Span>
          Throughput {result.throughput_tps} tx/s · claim p50 {result.p50_ms} ms, p99 {result.p99_ms} ms · backends peak {result.backends_peak}
        </Span>
      </Row>
      {result.strained ? (
        <Row>
          <Span>{result.strained}</Span>
        </Row>
      ) : null}
      <Row>
        <Span tone="dim">figures </Span>
        <Span>{result.json}</Span>
      </Row>
      <Row>
        <Span tone="dim">report  </Span>
        <Span>{result.report}</Span>
      </Row>
    </>
  );
}

export function FleetScreen({ height }: { height: number }) {
  const fleet = useConsole((state) => state.fleet);
  const target = useConsole((state) => state.boot.target);
  const columns = useConsole((state) => state.terminal.columns);
  const result = fleet.phase === 'done' ? fleet.result : undefined;
  // Title, blank, then what the phase shows; the phase lines take what room is left.
  const used = 2 + (fleet.phase === 'running' ? 3 : result ? 6 + result.problems.length : fleet.phase === 'failed' ? 2 : 0);
  const lines = fleet.phase === 'consent' ? [] : fleet.lines.slice(-Math.max(0, height - used));
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          Fleet drill
        </Span>
        <Span tone="dim">
          {' '}
          · beyond the capstone · {count(fleet.workers)} Workers over {count(fleet.transactions)} transactions · {target}
        </Span>
      </Row>
      <Row />
      {fleet.phase === 'consent' ? <Consent fleet={fleet} columns={columns} height={height - 2} /> : null}
      {fleet.phase === 'running' ? <Progress fleet={fleet} /> : null}
      {fleet.phase === 'running' ? <Row /> : null}
      {lines.map((line, index) => (
        <Row key={index}>
          <Span tone="dim">{line}</Span>
        </Row>
      ))}
      {result ? <Row /> : null}
      {result ? <Verdict result={result} /> : null}
      {fleet.phase === 'failed' ? <Row /> : null}
      {fleet.phase === 'failed' ? (
        <Row>
          <Span tone="bad">✗ The fleet drill could not run: {fleet.error}</Span>
        </Row>
      ) : null}
    </Box>
  );
}
