// NO_COLOR: no colour escape codes at all, while the text stays the same.
// chalk decides its colour level at import, so force colours on for this file
// before ink loads: otherwise a piped test run shows no colours either way.
import { vi } from 'vitest';

vi.hoisted(() => {
  process.env.FORCE_COLOR = '1';
});

import { describe, expect, it } from 'vitest';
import { applyRunnerEvent } from '../../src/console/events.js';
import { update } from '../../src/store.js';
import { failOnActWarnings, inAct, listState, renderConsole, steps } from './helpers.js';

failOnActWarnings();

const colour = /\u001b\[(3[0-7]|9[0-7]|38;)/;

async function diffFrame(color: boolean): Promise<string> {
  await inAct(() => {
    listState(2, { screen: { name: 'drill' }, color });
    applyRunnerEvent({ type: 'drill-started', key: 'idempotency_retry_test', broken: false, steps: steps(2) });
    applyRunnerEvent({ type: 'diff', key: 'idempotency_retry_test', text: '+{"added":1}\n-{"removed":1}', folder: 'f' });
    update({ history: [] });
  });
  const ui = await renderConsole();
  const frame = await ui.waitFor((text) => text.includes('{"added":1}'), 'the diff');
  await ui.close();
  return frame;
}

describe('colour', () => {
  it('diff lines are green and red with colour, plain under NO_COLOR', async () => {
    const coloured = await diffFrame(true);
    expect(coloured).toMatch(/\u001b\[32m\+\{"added":1\}/);
    expect(coloured).toMatch(/\u001b\[31m-\{"removed":1\}/);
    const plain = await diffFrame(false);
    expect(plain).not.toMatch(colour);
    expect(plain).toContain('+{"added":1}');
  });
});
