// The architecture's layers, read from the import statements of src/: each layer
// may import only the layers below it, and nothing below the console imports Ink
// or React. A new import that points upward fails here, naming the file.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const src = path.resolve(import.meta.dirname, '../../src');

/** Each layer and what it may import (besides itself and node: / npm packages). */
const allowed: Record<string, string[]> = {
  util: [],
  types: [],
  postgres: ['util', 'types'],
  oracle: ['postgres', 'util', 'types'],
  reconciler: ['postgres', 'util', 'types'],
  drills: ['oracle', 'reconciler', 'postgres', 'util', 'types'],
  store: ['drills', 'postgres', 'util', 'types'],
  console: ['store', 'drills', 'oracle', 'reconciler', 'postgres', 'util', 'types', 'app', 'screens'],
  screens: ['store', 'console', 'drills', 'util', 'types'],
  app: ['store', 'screens', 'console', 'drills', 'util', 'types'],
  cli: ['console', 'store', 'drills', 'oracle', 'reconciler', 'postgres', 'util', 'types', 'cli-entry'],
  'cli-entry': ['cli', 'console', 'postgres', 'util', 'types'],
};

/** Layers that must never load a UI library. */
const noUi = new Set(['util', 'postgres', 'oracle', 'reconciler', 'drills', 'store']);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return files(full);
    return /\.tsx?$/.test(name) ? [full] : [];
  });
}

function layerOf(file: string): string {
  const relative = path.relative(src, file).split(path.sep);
  if (relative.length === 1) {
    const base = relative[0]!.replace(/\.tsx?$/, '');
    return base === 'cli' ? 'cli-entry' : base;
  }
  return relative[0]!;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
    found.push((match[1] ?? match[2])!);
  }
  return found;
}

describe('layers', () => {
  const all = files(src);

  it('finds the source tree', () => {
    expect(all.length).toBeGreaterThan(50);
  });

  it('no layer imports a layer above it', () => {
    const upward: string[] = [];
    for (const file of all) {
      const from = layerOf(file);
      const may = allowed[from];
      if (!may) {
        upward.push(`${path.relative(src, file)}: layer ${from} is not in the table`);
        continue;
      }
      for (const specifier of imports(file)) {
        if (!specifier.startsWith('.')) continue;
        const to = layerOf(path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts'));
        if (to !== from && !may.includes(to)) upward.push(`${path.relative(src, file)} imports ${specifier} (${from} -> ${to})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('nothing below the console loads ink or react', () => {
    const ui: string[] = [];
    for (const file of all) {
      if (!noUi.has(layerOf(file))) continue;
      for (const specifier of imports(file)) {
        if (/^(ink|react|ink-[\w-]+)(\/|$)/.test(specifier)) ui.push(`${path.relative(src, file)} imports ${specifier}`);
      }
    }
    expect(ui).toEqual([]);
  });

  it('the drills and the console reach the oracle only through its index', () => {
    const past: string[] = [];
    for (const file of all) {
      const from = layerOf(file);
      if (from === 'oracle') continue;
      for (const specifier of imports(file)) {
        if (/(^|\/)oracle\/(?!index\.js$)[\w-]+\.js$/.test(specifier)) past.push(`${path.relative(src, file)} imports ${specifier}`);
      }
    }
    expect(past).toEqual([]);
  });
});
