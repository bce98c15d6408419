// FROZEN: src/oracle/volatiles.ts as of commit e8de64c, before the oracle's one-pass writer (issue 15).
// The byte-identity test compares the new writer's evidence files with this one's; do not edit.
// Volatile fields: the seed's set, what a drill or card adds, and what a spec
// asserts (never volatile: asserting a column means the spec is not silent about it).
import { UsageError } from '../../../src/postgres/url.js';
import type { VolatileSpec } from '../../../src/oracle/types.js';

/** The seed's table: autoincrement ids, wall-clock timestamps, random tokens, lock versions, counter caches. */
export const defaultVolatilePatterns: readonly string[] = [
  'id',
  'created_at',
  'updated_at',
  '*_token',
  '*_secret',
  'lock_version',
  'cached_*',
];

export function defaultVolatiles(): VolatileSpec {
  return { patterns: [...defaultVolatilePatterns] };
}

const matchers = new Map<string, RegExp>();

function matcher(pattern: string): RegExp {
  let regex = matchers.get(pattern);
  if (!regex) {
    const source = pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    regex = new RegExp(`^${source}$`);
    matchers.set(pattern, regex);
  }
  return regex;
}

export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => matcher(pattern).test(name));
}

function kept(spec: VolatileSpec, table: string, column: string): boolean {
  return Boolean(spec.keep?.['*']?.includes(column) || spec.keep?.[table]?.includes(column));
}

/** Is this top-level column of this table volatile? */
export function isVolatileColumn(spec: VolatileSpec, table: string, column: string): boolean {
  if (kept(spec, table, column)) return false;
  return matchesAny(column, spec.patterns) || matchesAny(column, spec.tables?.[table] ?? []);
}

/** Is a key of an object nested inside a json value volatile? (The seed's jq walk removes at any depth.) */
export function isVolatileNestedKey(spec: VolatileSpec, key: string): boolean {
  return matchesAny(key, spec.patterns);
}

/**
 * Extends a spec with command-line entries: `col` (every table), `table.col` (one table),
 * `!col` (not volatile anywhere, e.g. `!id`), `!table.col` (not volatile in that table).
 */
export function extendVolatiles(base: VolatileSpec, entries: readonly string[]): VolatileSpec {
  const spec: VolatileSpec = {
    patterns: [...base.patterns],
    tables: Object.fromEntries(Object.entries(base.tables ?? {}).map(([table, list]) => [table, [...list]])),
    keep: Object.fromEntries(Object.entries(base.keep ?? {}).map(([table, list]) => [table, [...list]])),
  };
  for (const raw of entries) {
    const entry = raw.trim();
    if (!entry) continue;
    const negated = entry.startsWith('!');
    const body = negated ? entry.slice(1) : entry;
    const dot = body.lastIndexOf('.');
    const table = dot > 0 ? body.slice(0, dot) : null;
    const column = dot > 0 ? body.slice(dot + 1) : body;
    if (!/^[^\s,]+$/.test(column) || (table !== null && !table)) {
      throw new UsageError(`bad volatile field: ${raw} (expected col, table.col, !col or !table.col)`);
    }
    if (negated) {
      const key = table ?? '*';
      if (table === null && spec.patterns.includes(column)) {
        spec.patterns = spec.patterns.filter((pattern) => pattern !== column);
      } else {
        (spec.keep![key] ??= []).push(column);
      }
    } else if (table === null) {
      if (!spec.patterns.includes(column)) spec.patterns.push(column);
    } else {
      (spec.tables![table] ??= []).push(column);
    }
  }
  return spec;
}

/** Marks columns as never volatile in a table (the columns a spec asserts). */
export function keepColumns(base: VolatileSpec, table: string, columns: readonly string[]): VolatileSpec {
  if (columns.length === 0) return base;
  const keep = { ...(base.keep ?? {}) };
  keep[table] = [...new Set([...(keep[table] ?? []), ...columns])];
  return { ...base, keep };
}

/** One line for the verdict: which fields were ignored. */
export function describeVolatiles(spec: VolatileSpec): string {
  const parts = [spec.patterns.join(', ')];
  for (const [table, list] of Object.entries(spec.tables ?? {})) {
    if (list.length) parts.push(`${table}: ${list.join(', ')}`);
  }
  const keptList = Object.entries(spec.keep ?? {}).flatMap(([table, list]) =>
    list.map((column) => (table === '*' ? column : `${table}.${column}`)),
  );
  return `${parts.join('; ')}${keptList.length ? ` (kept, because asserted or named: ${keptList.join(', ')})` : ''}`;
}
