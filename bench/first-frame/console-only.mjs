// The console without the CLI in front of it: startConsole() straight from
// dist/, to tell the console's own first-frame cost from the CLI's imports.
// Loaded through loadConsole(), as the CLI does, so it gets the same React build
// (production unless NODE_ENV says otherwise; src/console/load.ts).
import { loadConsole } from '../../dist/console/load.js';
import { exitWith, installExitHandlers } from '../../dist/util/lifecycle.js';

installExitHandlers();
const { startConsole } = await loadConsole();
const code = await startConsole({ breaks: [] });
await exitWith(code);
