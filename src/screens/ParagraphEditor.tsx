// The decision paragraph, wrapped exactly as the editor's cursor moves over it
// (src/console/editor.ts), with the cursor drawn while editing.
import React from 'react';
import { Box } from 'ink';
import { editorWindow } from '../console/editor.js';
import { editorWidth } from '../console/layout.js';
import { useConsole, type DecisionDraft } from '../store.js';
import { Row, Span } from './theme.js';

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
        const column = Math.min(view.cursorColumn, line.length);
        return (
          <Row key={index}>
            <Span tone="accent">│ </Span>
            <Span>{line.slice(0, column)}</Span>
            <Span inverse>{line[column] && line[column] !== ' ' ? line[column] : ' '}</Span>
            <Span>{line.slice(column + 1)}</Span>
          </Row>
        );
      })}
    </Box>
  );
}
