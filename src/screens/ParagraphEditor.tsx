// The decision paragraph, wrapped exactly as the editor's cursor moves over it
// (src/console/editor.ts), with the cursor drawn while editing: over the whole
// character it sits on (an emoji, a letter with its accent), never half of one.
import React from 'react';
import { Box } from 'ink';
import { editorWindow, graphemes } from '../console/editor.js';
import { editorWidth } from '../console/layout.js';
import { useConsole, type DecisionDraft } from '../store.js';
import { Row, Span } from './theme.js';

/** The row split around the cursor: before it, the character under it (a space past the end), after it. */
function splitAtCursor(line: string, offset: number): [string, string, string] {
  const at = Math.min(offset, line.length);
  const under = graphemes(line.slice(at))[0]?.segment ?? '';
  return [line.slice(0, at), under && under !== ' ' ? under : ' ', line.slice(at + under.length)];
}

export function ParagraphEditor({ draft, height }: { draft: DecisionDraft; height: number }) {
  const columns = useConsole((state) => state.terminal.columns);
  const view = editorWindow(draft, editorWidth(columns), height);
  return (
    <Box flexDirection="column">
      {view.rows.map((text, index) => {
        const line = text.replace(/\n$/, '');
        if (!draft.editing || index !== view.cursorRow) {
          return (
            <Row key={index}>
              <Span tone="dim">│ </Span>
              <Span>{line}</Span>
            </Row>
          );
        }
        const [before, under, after] = splitAtCursor(line, view.cursorOffset);
        return (
          <Row key={index}>
            <Span tone="accent">│ </Span>
            <Span>{before}</Span>
            <Span inverse>{under}</Span>
            <Span>{after}</Span>
          </Row>
        );
      })}
    </Box>
  );
}
