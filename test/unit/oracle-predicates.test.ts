// The predicate grammar: every row of the seed's "what the spec asserts" table
// must be expressible, and anything else refused with the grammar in the message.
import { describe, expect, it } from 'vitest';
import { describeExpectation, expectationColumns, parseExpectation, rowMatches, valueMatches } from '../../src/oracle/predicates.js';
import { UsageError } from '../../src/postgres/url.js';

describe('parseExpectation', () => {
  it('reads count changes and unchanged', () => {
    expect(parseExpectation('widgets:+1')).toMatchObject({ kind: 'count', table: 'widgets', delta: 1 });
    expect(parseExpectation('t:-2')).toMatchObject({ kind: 'count', table: 't', delta: -2 });
    expect(parseExpectation('audit_log:=')).toMatchObject({ kind: 'unchanged', table: 'audit_log' });
  });

  it('reads row predicates ("shall persist a Widget with name=X")', () => {
    expect(parseExpectation('widgets:+{name=X,price=3}')).toMatchObject({
      kind: 'row-added',
      match: { name: 'X', price: '3' },
    });
    expect(parseExpectation('widgets:-{name="a, b",note=null,quoted="null"}')).toMatchObject({
      kind: 'row-removed',
      match: { name: 'a, b', note: null, quoted: 'null' },
    });
  });

  it('reads a change ("shall update cached_count on add": new = old + 1)', () => {
    const change = parseExpectation('widgets:~{name=X}->{cached_count+=1,status=done}');
    expect(change).toMatchObject({ kind: 'row-changed', match: { name: 'X' }, to: { status: 'done' }, deltas: { cached_count: 1 } });
    expect(expectationColumns(change).sort()).toEqual(['cached_count', 'name', 'status']);
    expect(describeExpectation(change)).toBe('the widgets row with name=X changed to status=done, cached_count +1');
  });

  it('reads schema objects ("shall add an index on widgets(slug)")', () => {
    expect(parseExpectation('widgets:+index:widgets_slug_idx')).toMatchObject({
      kind: 'schema',
      object: 'index',
      name: 'widgets_slug_idx',
      state: 'added',
    });
    expect(parseExpectation('widgets:+index:(slug)')).toMatchObject({ object: 'index', name: null, columns: ['slug'] });
    expect(parseExpectation('widgets:-column:notes')).toMatchObject({ object: 'column', state: 'removed' });
    expect(parseExpectation('widgets:trigger:t_audit')).toMatchObject({ object: 'trigger', state: 'present' });
    expect(parseExpectation('widgets:!policy:p')).toMatchObject({ object: 'policy', state: 'absent' });
    expect(parseExpectation('widgets:+table')).toMatchObject({ object: 'table', state: 'added' });
  });

  it('refuses what it cannot read, naming the grammar', () => {
    for (const bad of ['widgets', 'widgets:+x', ':+1', 'widgets:+{}', 'widgets:+{name}', 'widgets:+{n=1,c+=1}', 'widgets:index', 'widgets:+policy:(a)', 'widgets:+table:x']) {
      expect(() => parseExpectation(bad), bad).toThrow(UsageError);
    }
    expect(() => parseExpectation('widgets:+x')).toThrow(/TABLE:\+N/);
  });
});

describe('value matching', () => {
  it('compares with the text of a value', () => {
    expect(valueMatches('X', 'X')).toBe(true);
    expect(valueMatches('X', 'x')).toBe(false);
    expect(valueMatches(3, '3')).toBe(true);
    expect(valueMatches(3.5, '3.50')).toBe(true);
    expect(valueMatches(3, '4')).toBe(false);
    expect(valueMatches(0, '')).toBe(false);
    expect(valueMatches(true, 'true')).toBe(true);
    expect(valueMatches(null, null)).toBe(true);
    expect(valueMatches('null', null)).toBe(false);
    expect(valueMatches({ a: 1 }, '{"a":1}')).toBe(true);
    expect(rowMatches({ name: 'X', price: 3 }, { name: 'X', price: '3' })).toBe(true);
    expect(rowMatches({ name: 'X' }, { name: 'X', price: '3' })).toBe(false);
  });
});
