// The decision: the bundle (the seed's JSON object) with each verdict, the
// drafted paragraph in an editor, and where ctrl+s saved it. After a clean
// sweep it offers the mastery gate; beyond the capstone, the fleet drill.
import React from 'react';
import { Box } from 'ink';
import { wrapOffsets } from '../console/editor.js';
import { editorWidth } from '../console/layout.js';
import { fleetOffer } from '../console/fleet.js';
import { activeDecision, useConsole } from '../store.js';
import { ParagraphEditor } from './ParagraphEditor.js';
import { Row, Span } from './theme.js';

export function DecisionScreen({ height }: { height: number }) {
  const draft = useConsole(activeDecision);
  const count = useConsole((state) => state.decisions.length);
  const offered = useConsole((state) => state.mastery.offered);
  const columns = useConsole((state) => state.terminal.columns);
  const fleet = useConsole((state) => state.fleet);
  if (!draft) return null;
  const braces = height >= 30;
  const lastFleet = fleet.phase === 'done' ? fleet.result : undefined;
  // Fixed rows: title, JSON (10, or 12 with braces), paragraph label, saved line, mastery line, fleet lines.
  const fixed = 1 + draft.bundle.length + (braces ? 2 : 0) + 1 + 1 + (offered ? 1 : 0) + (fleet.offered ? 1 : 0) + (lastFleet ? 1 : 0);
  const editorRoom = Math.max(2, height - fixed);
  const permitted = draft.decision === 'PERMITTED';
  const hidden = Math.max(0, wrapOffsets(draft.text, editorWidth(columns)).length - editorRoom);
  return (
    <Box flexDirection="column">
      <Row>
        <Span tone={permitted ? 'ok' : 'bad'} bold>
          Release {draft.decision}
        </Span>
        <Span tone="dim">
          {' '}
          · {draft.passed} of 9 drills passed · {draft.kind === 'run' ? 'the run bundle' : 'the mastery bundle'}
          {count > 1 ? ' (tab switches)' : ''}
        </Span>
      </Row>
      {braces ? <Row>{'{'}</Row> : null}
      {draft.bundle.map(([key, value], index) => (
        <Row key={key}>
          <Span>  "{key}": </Span>
          <Span tone={key === 'release_decision' ? (permitted ? 'ok' : 'bad') : value === 'pass' ? 'ok' : 'bad'}>
            {JSON.stringify(value)}
          </Span>
          <Span>{index < draft.bundle.length - 1 ? ',' : ''}</Span>
        </Row>
      ))}
      {braces ? <Row>{'}'}</Row> : null}
      <Row>
        <Span tone="dim">Decision paragraph </Span>
        {draft.editing ? (
          <Span tone="accent">(editing: type · arrows move · esc done · ctrl+s save)</Span>
        ) : (
          <Span tone="dim">
            (e edits · ctrl+s saves{hidden > 0 ? ` · ${hidden} more row${hidden === 1 ? '' : 's'}: e, then arrows` : ''})
          </Span>
        )}
      </Row>
      <ParagraphEditor draft={draft} height={editorRoom} />
      <Row>
        {draft.saving ? (
          <Span tone="warn">saving…</Span>
        ) : draft.saveError ? (
          <Span tone="bad">not saved: {draft.saveError}</Span>
        ) : draft.savedPath ? (
          <Span tone={draft.dirty ? 'warn' : 'ok'}>
            {draft.dirty ? 'edited since saved to ' : 'saved to '}
            {draft.savedPath}
          </Span>
        ) : (
          <Span tone="dim">not saved yet: ctrl+s writes {draft.path}</Span>
        )}
      </Row>
      {offered ? (
        <Row>
          <Span tone="accent">All nine passed on the first try: m repeats one drill with its deliberate break (mastery gate).</Span>
        </Row>
      ) : null}
      {fleet.offered ? (
        <Row>
          <Span tone="accent">{fleetOffer(fleet)}</Span>
        </Row>
      ) : null}
      {lastFleet ? (
        <Row>
          <Span tone={lastFleet.passed ? 'ok' : 'bad'}>
            Last fleet run: {lastFleet.held ? 'history held' : 'history DID NOT hold'} · report in {lastFleet.report}
          </Span>
        </Row>
      ) : null}
    </Box>
  );
}
