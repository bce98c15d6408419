// The oracle's text machinery without a database: JSON compaction with volatile
// keys removed, the key order the merge relies on, COPY escapes, the unified diff
// writer (checked against `patch`-style application), volatile specs, folders.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson, compactJson, compareIntText, compareText, prettyLines } from '../../src/oracle/json-text.js';
import { splitCopyLine, unescapeCopy } from '../../src/oracle/copy-text.js';
import { lineOps, UnifiedDiffWriter } from '../../src/oracle/unified.js';
import { defaultVolatiles, extendVolatiles, isVolatileColumn, isVolatileNestedKey, keepColumns } from '../../src/oracle/volatiles.js';
import { createEvidenceFolder, folderTimestamp } from '../../src/oracle/evidence.js';
import { decideVerdict } from '../../src/oracle/verdict.js';
import type { ActionResult, ExpectationResult } from '../../src/oracle/types.js';
import { UsageError } from '../../src/postgres/url.js';

async function unified(a: string[], b: string[]): Promise<string> {
  let out = '';
  const writer = new UnifiedDiffWriter({ write: (chunk) => void (out += chunk) }, ['a', 'b']);
  lineOps(a, b, writer);
  await writer.end();
  return out;
}

/** Applies a unified diff to `a` (the way patch does) to check the hunks are right. */
function apply(a: string[], diff: string): string[] {
  const lines = diff.split('\n').slice(2);
  const out: string[] = [];
  let at = 0;
  for (let index = 0; index < lines.length; index += 1) {
    const header = /^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@$/.exec(lines[index]!);
    if (!header) continue;
    const count = header[2] === undefined ? 1 : Number(header[2]);
    const start = count === 0 ? Number(header[1]) : Number(header[1]) - 1;
    while (at < start) out.push(a[at++]!);
    for (index += 1; index < lines.length && !lines[index]!.startsWith('@@'); index += 1) {
      const line = lines[index]!;
      if (line.startsWith(' ')) {
        expect(a[at]).toBe(line.slice(1));
        out.push(a[at++]!);
      } else if (line.startsWith('-')) {
        expect(a[at]).toBe(line.slice(1));
        at += 1;
      } else if (line.startsWith('+')) out.push(line.slice(1));
    }
    index -= 1;
  }
  while (at < a.length) out.push(a[at++]!);
  return out;
}

describe('compactJson', () => {
  it('removes volatile keys at any depth and keeps numbers exact', () => {
    const text = '{"id": 7, "a": {"created_at": "x", "b": [ {"id":1, "k": 12345678901234567890.120} ]}, "s": "say \\"id\\": 1"}';
    expect(compactJson(text, (key) => key === 'id' || key === 'created_at')).toBe(
      '{"a":{"b":[{"k":12345678901234567890.120}]},"s":"say \\"id\\": 1"}',
    );
    expect(compactJson(' [1, 2 ,{"a" : null}] ')).toBe('[1,2,{"a":null}]');
    expect(() => compactJson('{"a": 1')).toThrow(/not valid JSON/);
  });

  it('decodes escaped keys before asking whether to drop them', () => {
    expect(compactJson('{"\\u0069d": 1, "x": 2}', (key) => key === 'id')).toBe('{"x":2}');
  });
});

describe('key order', () => {
  it('compareText is code point order (UTF-8 byte order), as collate "C"', () => {
    const words = ['b', 'a', 'ä', 'A', '\uffff', '😀', '\ue000', 'ab', '', 'a\tb', 'a b'];
    const bytes = [...words].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...words].sort(compareText)).toEqual(bytes);
  });

  it('compareIntText orders integers of any size and sign', () => {
    const numbers = ['10', '-3', '9', '0', '-12', '12345678901234567890', '-12345678901234567890', '2'];
    const expected = [...numbers].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : BigInt(x) > BigInt(y) ? 1 : 0));
    expect([...numbers].sort(compareIntText)).toEqual(expected);
  });
});

describe('COPY text fields', () => {
  it('undoes COPY escapes and reads \\N as null', () => {
    expect(splitCopyLine('1\ta\\tb\\nc\\\\d\t\\N\t')).toEqual(['1', 'a\tb\nc\\d', null, '']);
    expect(unescapeCopy('\\x41\\101\\z')).toBe('AAz');
  });
});

describe('unified diff', () => {
  it('is empty for identical input, like diff -u', async () => {
    expect(await unified(['a', 'b'], ['a', 'b'])).toBe('');
  });

  it('writes hunks with three lines of context that apply back', async () => {
    const a = Array.from({ length: 40 }, (_, index) => `line ${index}`);
    const b = [...a];
    b[5] = 'changed 5';
    b.splice(20, 1);
    b.splice(30, 0, 'inserted');
    b.push('at the end');
    const text = await unified(a, b);
    expect(text.startsWith('--- a\n+++ b\n@@ -3,7 +3,7 @@\n')).toBe(true);
    expect(text).toContain('-line 5\n+changed 5\n');
    expect(text.match(/^@@/gm)).toHaveLength(4);
    expect(apply(a, text)).toEqual(b);
  });

  it('handles an empty side', async () => {
    const text = await unified([], ['x', 'y']);
    expect(text).toBe('--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n');
    expect(apply(['x', 'y'], await unified(['x', 'y'], []))).toEqual([]);
  });

  it('renders lazily: a line far from any change is never rendered', async () => {
    let rendered = 0;
    let out = '';
    const writer = new UnifiedDiffWriter({ write: (chunk) => void (out += chunk) }, ['a', 'b']);
    for (let index = 0; index < 1000; index += 1) {
      writer.same(() => {
        rendered += 1;
        return `row ${index}`;
      });
    }
    writer.removed('old');
    writer.added('new');
    await writer.end();
    expect(rendered).toBe(3);
    expect(out).toBe('--- a\n+++ b\n@@ -998,4 +998,4 @@\n row 997\n row 998\n row 999\n-old\n+new\n');
  });
});

describe('prettyLines', () => {
  it('sorts keys and puts every list item on one line', () => {
    expect(prettyLines({ b: [{ y: 1, x: 2 }, { z: 3 }], a: [1, 2], c: {} }, '')).toEqual([
      '{',
      '  "a": [1,2],',
      '  "b": [',
      '    {"x":2,"y":1},',
      '    {"z":3}',
      '  ],',
      '  "c": {}',
      '}',
    ]);
    expect(canonicalJson({ b: 1, a: [null, 'x'] })).toBe('{"a":[null,"x"],"b":1}');
  });
});

describe('volatile fields', () => {
  it('has the seed set, extends it, and never treats an asserted column as volatile', () => {
    const spec = defaultVolatiles();
    for (const column of ['id', 'created_at', 'updated_at', 'api_token', 'client_secret', 'lock_version', 'cached_count']) {
      expect(isVolatileColumn(spec, 'widgets', column)).toBe(true);
    }
    expect(isVolatileColumn(spec, 'widgets', 'name')).toBe(false);
    const extended = extendVolatiles(spec, ['expenses.description', 'seen_at', '!id', '!widgets.cached_count']);
    expect(isVolatileColumn(extended, 'expenses', 'description')).toBe(true);
    expect(isVolatileColumn(extended, 'widgets', 'description')).toBe(false);
    expect(isVolatileColumn(extended, 'widgets', 'seen_at')).toBe(true);
    expect(isVolatileColumn(extended, 'widgets', 'id')).toBe(false);
    expect(isVolatileColumn(extended, 'widgets', 'cached_count')).toBe(false);
    expect(isVolatileColumn(extended, 'other', 'cached_count')).toBe(true);
    expect(isVolatileNestedKey(extended, 'seen_at')).toBe(true);
    const kept = keepColumns(spec, 'pending_transactions', ['id']);
    expect(isVolatileColumn(kept, 'pending_transactions', 'id')).toBe(false);
    expect(isVolatileColumn(kept, 'expenses', 'id')).toBe(true);
    expect(() => extendVolatiles(spec, ['a b'])).toThrow(UsageError);
  });
});

describe('evidence folder', () => {
  it('is named like date +%Y%m%dT%H%M%S and never collides within a second', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'oracle-folder-'));
    try {
      const at = new Date(2026, 0, 2, 3, 4, 5);
      expect(folderTimestamp(at)).toBe('20260102T030405');
      const folders = await Promise.all([1, 2, 3].map(() => createEvidenceFolder(root, 'card-1', at)));
      expect(folders.map((folder) => path.basename(folder)).sort()).toEqual(['20260102T030405', '20260102T030405-2', '20260102T030405-3']);
      await expect(createEvidenceFolder(root, '../escape', at)).rejects.toThrow(UsageError);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('verdict', () => {
  const action: ActionResult = { label: 'x', primary: 'cli-qa', exitCode: 0, signal: null, durationMs: 1, error: null };
  const result = (verdict: ExpectationResult['verdict']): ExpectationResult => ({
    expectation: { kind: 'count', table: 't', delta: 1, text: 't:+1' },
    predicate: 't count +1',
    verdict,
    evidence: '',
  });
  it('escalates a failed action, no expectation, an unsettled wait; rejects an unsatisfied predicate', () => {
    const base = { action, quiescence: null, afterError: null };
    expect(decideVerdict({ ...base, results: [result('satisfied')] })).toBe('APPROVE');
    expect(decideVerdict({ ...base, results: [result('satisfied'), result('unsatisfied')] })).toBe('REJECT');
    expect(decideVerdict({ ...base, results: [result('could-not-determine')] })).toBe('ESCALATE');
    expect(decideVerdict({ ...base, results: [] })).toBe('ESCALATE');
    expect(decideVerdict({ ...base, action: { ...action, exitCode: 2 }, results: [result('satisfied')] })).toBe('ESCALATE');
    const unsettled = { settled: false, what: 'w', waitedMs: 1, polls: 1, detail: '' };
    expect(decideVerdict({ ...base, quiescence: unsettled, results: [result('satisfied')] })).toBe('ESCALATE');
  });
});
