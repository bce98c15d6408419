// The console runs React's production build (src/console/load.ts): without NODE_ENV, react
// and react-reconciler load their development builds, about a third more CPU per frame
// (bench/key-latency). Checked in a fresh Node against the built console, as `sor-drills` runs it.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = path.resolve(import.meta.dirname, '../../dist/console');

/** The builds of react and react-reconciler a fresh Node evaluated after loading the console. */
function buildsLoaded(nodeEnv: string | undefined): string[] {
  const script = `
    const { loadConsole } = await import(${JSON.stringify(pathToFileURL(path.join(dist, 'load.js')).href)});
    await loadConsole();
    const { createRequire } = await import('node:module');
    const require = createRequire(${JSON.stringify(path.join(dist, 'load.js'))});
    const loaded = Object.entries(require.cache)
      .filter(([file, module]) => module.loaded && /[\\\\/]cjs[\\\\/]react(-reconciler)?\\.(production|development)\\.js$/.test(file))
      .map(([file]) => file.split('node_modules/').pop());
    process.stdout.write(JSON.stringify(loaded.sort()));
    process.exit(0);`;
  const env = { ...process.env };
  delete env.NODE_ENV;
  if (nodeEnv !== undefined) env.NODE_ENV = nodeEnv;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' })) as string[];
}

describe("the console's React build", () => {
  it('is the production build when NODE_ENV is unset', () => {
    expect(buildsLoaded(undefined)).toEqual(['react-reconciler/cjs/react-reconciler.production.js', 'react/cjs/react.production.js']);
  });

  it('follows NODE_ENV when the operator sets it', () => {
    expect(buildsLoaded('development')).toEqual(['react-reconciler/cjs/react-reconciler.development.js', 'react/cjs/react.development.js']);
  });
});
