// One drill at a time: the current step (what and why), the SQL it runs, what
// the operator must do (with the key), and a panel: live counts, diff or
// processes. Before the drill starts it shows the intro instead.
import React from 'react';
import { Box } from 'ink';
import { besideVerdictWord, verdictWords } from '../drills/verdict-words.js';
import { wrapText } from '../console/editor.js';
import { askKey } from '../console/keys.js';
import { panelNames, useConsole, type CurrentDrill, type PanelName } from '../store.js';
import { DrillIntro } from './DrillIntro.js';
import { CountsPanel, DiffPanel, ProcessesPanel } from './panels.js';
import { Row, Span } from './theme.js';

const panelTitles: Record<PanelName, string> = { counts: 'live counts', diff: 'diff', processes: 'processes' };
/** Rows of a finished drill's verdict (with its evidence line) and evidence folder; a running step takes 3. */
const finishedRows = 5;

/** The statements to show, as display rows: each statement's lines, most recent statements kept. */
export function sqlRows(current: CurrentDrill, room: number): string[] {
  const statements = current.sql.length > 0 ? current.sql : (current.steps[current.stepIndex]?.sql ?? []);
  const rows = statements.flatMap((statement) => statement.split('\n').map((line) => line.replace(/\s+$/, '')).filter(Boolean));
  if (room <= 0) return [];
  if (rows.length <= room) return rows;
  return [...rows.slice(0, Math.max(0, room - 1)), `… ${rows.length - room + 1} more lines`];
}

function StepLines({ current, columns }: { current: CurrentDrill; columns: number }) {
  if (current.phase === 'finished' && current.verdict) {
    const pass = current.verdict === 'pass';
    const { mark, word } = verdictWords[current.verdict];
    const text = besideVerdictWord(current.verdict, (pass ? current.evidence : (current.reason ?? current.evidence)) ?? '');
    const [first, ...rest] = wrapText(text ?? '', columns - 8);
    const more = Array.from({ length: finishedRows - 2 }, (_, index) => rest[index] ?? '');
    return (
      <>
        <Row>
          <Span tone={pass ? 'ok' : 'bad'} bold>
            {`${mark} ${word} `}
          </Span>
          <Span>{first}</Span>
        </Row>
        {more.map((line, index) => (
          <Row key={index}>
            <Span>
              {'       '}
              {line}
            </Span>
          </Row>
        ))}
        <Row>
          <Span tone="dim">evidence: {current.evidenceDirs.join(', ') || 'no folder written'}</Span>
        </Row>
      </>
    );
  }
  const step = current.steps[current.stepIndex];
  const why = wrapText(step?.why ?? '', columns - 4);
  return (
    <>
      <Row>
        <Span tone="warn" bold>
          ▶ {current.stepIndex + 1}. {step?.title ?? 'starting…'}
        </Span>
      </Row>
      <Row>
        <Span tone="dim">  {why[0] ?? ''}</Span>
      </Row>
      <Row>
        <Span tone="dim">  {why[1] ?? ''}</Span>
      </Row>
    </>
  );
}

function AskLine() {
  const ask = useConsole((state) => state.ask);
  if (ask) {
    return (
      <Row>
        <Span tone="warn" bold inverse>
          {ask.performing ? ' … ' : ` press ${askKey(ask.ask.kind)} `}
        </Span>
        <Span tone="warn"> {ask.performing ? `doing it: ${ask.ask.prompt}` : ask.ask.prompt}</Span>
      </Row>
    );
  }
  return <Row />;
}

export function DrillScreen({ height }: { height: number }) {
  const current = useConsole((state) => state.current);
  const panel = useConsole((state) => state.panel);
  const columns = useConsole((state) => state.terminal.columns);
  const rows = useConsole((state) => state.drills);
  if (!current) return null;
  if (current.phase === 'ready') return <DrillIntro height={height} />;
  const row = rows.find((candidate) => candidate.key === current.key);
  // Fixed rows: header, the step (3) or the verdict (5), the ask, the panel tabs.
  const fixed = 3 + (current.phase === 'finished' ? finishedRows : 3);
  const sqlRoom = current.phase === 'finished' ? 0 : Math.max(1, Math.min(12, Math.floor((height - fixed) / 3)));
  const sql = sqlRows(current, sqlRoom);
  const panelRoom = Math.max(1, height - fixed - sql.length);
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone="accent" bold>
          Drill {row?.number ?? '?'}/{rows.length} · {current.key}
        </Span>
        <Span tone="dim">
          {' '}
          · Lesson {row?.lesson}: {row?.habit}
          {current.phase === 'running' ? ` · step ${current.stepIndex + 1} of ${current.steps.length}` : ''}
        </Span>
        {current.broken ? <Span tone="warn"> · DELIBERATE BREAK</Span> : null}
        {current.mastery ? <Span tone="warn"> · mastery gate</Span> : null}
      </Row>
      <StepLines current={current} columns={columns} />
      {sql.map((line, index) => (
        <Row key={index}>
          <Span tone="dim">{index === 0 ? 'SQL ' : '    '}</Span>
          <Span tone="accent">{line}</Span>
        </Row>
      ))}
      <AskLine />
      <Row>
        {panelNames.map((name) => (
          <React.Fragment key={name}>
            <Span tone={name === panel ? 'accent' : 'dim'} bold={name === panel} inverse={name === panel}>
              {` ${panelTitles[name]} `}
            </Span>
            <Span> </Span>
          </React.Fragment>
        ))}
        <Span tone="dim">(tab)</Span>
      </Row>
      {panel === 'counts' ? (
        <CountsPanel height={panelRoom} />
      ) : panel === 'diff' ? (
        <DiffPanel height={panelRoom} />
      ) : (
        <ProcessesPanel height={panelRoom} />
      )}
    </Box>
  );
}
