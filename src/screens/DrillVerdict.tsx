// A finished drill's verdict on the drill screen: the verdict word with its evidence
// (or the reason it failed), wrapped over a fixed number of rows, and the evidence folder.
import React from 'react';
import { besideVerdictWord, verdictWords } from '../drills/verdict-words.js';
import { wrapText } from '../console/editor.js';
import type { CurrentDrill } from '../store.js';
import { Row, Span } from './theme.js';

/** Rows DrillVerdict always draws: the verdict (with its evidence line) and the evidence folder. */
export const verdictRows = 5;

export function DrillVerdict({ current, columns }: { current: CurrentDrill; columns: number }) {
  const pass = current.verdict === 'pass';
  const { mark, word } = verdictWords[current.verdict ?? 'fail'];
  const text = besideVerdictWord(current.verdict ?? 'fail', (pass ? current.evidence : (current.reason ?? current.evidence)) ?? '');
  const [first, ...rest] = wrapText(text ?? '', columns - 8);
  const more = Array.from({ length: verdictRows - 2 }, (_, index) => rest[index] ?? '');
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
