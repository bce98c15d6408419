// The baseline: a bare Ink hello-world, timed the same way as the console
// (the wall-clock time of its first render, written to SOR_DRILLS_FIRST_FRAME_FILE),
// on the React build the console runs (production unless NODE_ENV says otherwise:
// react picks its build when first evaluated, so it is imported after the setting).
import { writeFileSync } from 'node:fs';

process.env.NODE_ENV ??= 'production';
const { default: React } = await import('react');
const { render, Text } = await import('ink');

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
