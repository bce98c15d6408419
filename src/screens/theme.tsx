// Colours by meaning, and nothing when NO_COLOR is set (the store's `color`).
// Every live line is one terminal row: <Row> truncates instead of wrapping, so
// the screens can count their height exactly and keep the live region shorter
// than the terminal.
import React from 'react';
import { Text } from 'ink';
import { useConsole, type Tone } from '../store.js';

const colours: Record<Tone, string | undefined> = {
  plain: undefined,
  dim: undefined,
  ok: 'green',
  bad: 'red',
  accent: 'cyan',
  warn: 'yellow',
};

export interface SpanProps {
  tone?: Tone;
  bold?: boolean;
  inverse?: boolean;
  children?: React.ReactNode;
}

/** A piece of text in a tone. Dim and bold are styles, not colours: they stay under NO_COLOR. */
export function Span({ tone = 'plain', bold, inverse, children }: SpanProps) {
  const color = useConsole((state) => state.color);
  return (
    <Text color={color ? colours[tone] : undefined} dimColor={tone === 'dim'} bold={bold} inverse={inverse}>
      {children}
    </Text>
  );
}

/** One row of the live region: never wraps. */
export function Row({ children }: { children?: React.ReactNode }) {
  return <Text wrap="truncate-end">{children ?? ' '}</Text>;
}

export function Blank() {
  return <Text> </Text>;
}

/** Pads or cuts text to a column width (for simple tables). */
export function cell(text: string, width: number): string {
  if (width <= 0) return '';
  if (text.length > width) return width > 1 ? `${text.slice(0, width - 1)}…` : text.slice(0, width);
  return text.padEnd(width);
}
