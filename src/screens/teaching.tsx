// What the console teaches with, beside the panels: drill 1's proposal (the
// migration's up and down, with what the parser found marked under each statement)
// and a step's hint (what to look for, the habit, the mistake people make there).
// Each draws at most `height` rows.
import React from 'react';
import type { ProposalMark, Proposal } from '../drills/types.js';
import { wrapText } from '../console/editor.js';
import type { StepRow, Tone } from '../store.js';
import { Lines } from './panels.js';
import { Span } from './theme.js';

const markTone: Record<ProposalMark['kind'], Tone> = { destructive: 'bad', 'other-table': 'bad', opaque: 'warn', guarded: 'dim' };
const markSign: Record<ProposalMark['kind'], string> = { destructive: '✗', 'other-table': '✗', opaque: '?', guarded: '·' };

/** The proposal as display rows: the file, then each direction's statements with their marks. */
export function proposalLines(proposal: Proposal): React.ReactNode[] {
  const lines: React.ReactNode[] = [<Span tone="dim">proposal {proposal.file} (read, not run)</Span>];
  if (proposal.error) {
    lines.push(<Span tone="bad">✗ {proposal.error}</Span>);
    return lines;
  }
  for (const section of proposal.sections) {
    const label = section.direction === 'up' ? 'up  ' : 'down';
    if (!section.present) {
      lines.push(
        <>
          <Span tone="accent" bold>{label} </Span>
          <Span tone="bad">✗ missing: the file has no -- migrate:{section.direction} section</Span>
        </>,
      );
      continue;
    }
    if (section.statements.length === 0) {
      lines.push(
        <>
          <Span tone="accent" bold>{label} </Span>
          <Span tone="bad">✗ empty: no statement under -- migrate:{section.direction}</Span>
        </>,
      );
      continue;
    }
    section.statements.forEach((statement, index) => {
      statement.text.split('\n').forEach((line, row) => {
        lines.push(
          <>
            <Span tone="accent" bold>{index === 0 && row === 0 ? label : '    '} </Span>
            <Span>{line}</Span>
          </>,
        );
      });
      for (const mark of statement.marks) {
        lines.push(
          <>
            <Span>{'       '}</Span>
            <Span tone={markTone[mark.kind]}>
              {markSign[mark.kind]} {mark.text}
            </Span>
          </>,
        );
      }
    });
  }
  return lines;
}

export function ProposalPanel({ proposal, height }: { proposal: Proposal | undefined; height: number }) {
  if (!proposal) return <Lines lines={[<Span tone="dim">reading the proposal…</Span>]} height={height} />;
  return <Lines lines={proposalLines(proposal)} height={height} />;
}

/** The hint's rows for a width: three headed paragraphs. */
export function hintRows(step: Pick<StepRow, 'title' | 'hint'>, habit: string, width: number): Array<{ text: string; tone: Tone; bold?: boolean }> {
  const rows: Array<{ text: string; tone: Tone; bold?: boolean }> = [{ text: `Hint · ${step.title}`, tone: 'accent', bold: true }];
  const paragraph = (title: string, text: string) => {
    rows.push({ text: title, tone: 'warn', bold: true });
    for (const line of wrapText(text, Math.max(20, width - 2))) rows.push({ text: `  ${line}`, tone: 'plain' });
  };
  if (!step.hint) {
    rows.push({ text: 'no hint for this step', tone: 'dim' });
    return rows;
  }
  paragraph('What to look for', step.hint.look);
  paragraph("The lesson's habit", habit);
  paragraph('The mistake people make here', step.hint.mistake);
  return rows;
}

export function HintPanel({ step, habit, width, height }: { step: StepRow; habit: string; width: number; height: number }) {
  const rows = hintRows(step, habit, width);
  return (
    <Lines
      lines={rows.map((row) => (
        <Span tone={row.tone} bold={row.bold}>
          {row.text}
        </Span>
      ))}
      height={height}
    />
  );
}
