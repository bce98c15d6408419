// The baseline: a bare Ink hello-world, timed the same way as the console
// (the wall-clock time of its first render, written to SOR_DRILLS_FIRST_FRAME_FILE).
import { writeFileSync } from 'node:fs';
import React from 'react';
import { render, Text } from 'ink';

const file = process.env.SOR_DRILLS_FIRST_FRAME_FILE;
let first = true;
const instance = render(React.createElement(Text, null, 'hello'), {
  onRender: () => {
    if (!first) return;
    first = false;
    if (file) writeFileSync(file, String(performance.timeOrigin + performance.now()));
    setImmediate(() => instance.unmount());
  },
});
