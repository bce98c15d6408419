// The console without the CLI in front of it: startConsole() straight from
// dist/, to tell the console's own first-frame cost from the CLI's imports.
import { startConsole } from '../../dist/console/start.js';
import { exitWith, installExitHandlers } from '../../dist/util/lifecycle.js';

installExitHandlers();
const code = await startConsole({ breaks: [] });
await exitWith(code);
