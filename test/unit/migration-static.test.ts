// The migration review's reading of a proposal with the real PostgreSQL parser
// (libpg-query), without a database: statement texts sliced by UTF-8 bytes, riders
// found in data changes too, the target taken from the schema change, parse errors
// placed at the right line and column.
import { describe, expect, it } from 'vitest';
import { reviewStatically } from '../../src/drills/migration-static.js';

const texts = (statements: Array<{ text: string }>) => statements.map((statement) => statement.text);

describe('reviewStatically', () => {
  it('slices each statement exactly when comments before it hold "é" and "→" (byte offsets, not string offsets)', async () => {
    const review = await reviewStatically(
      [
        '-- migrate:up',
        '-- Ajoute une colonne « notes » : café → dépenses',
        'alter table expenses add column notes text;',
        '/* é → */ comment on column expenses.notes is $$free text → notes, é$$;',
        '-- → the next one is the last, é',
        'create index expenses_notes_idx on expenses (notes);',
        '-- migrate:down',
        '-- retour → arrière, é',
        'drop index expenses_notes_idx;',
        'alter table expenses drop column notes;',
        '',
      ].join('\n'),
    );
    expect(review.parseError).toBeUndefined();
    expect(texts(review.up)).toEqual([
      'alter table expenses add column notes text',
      'comment on column expenses.notes is $$free text → notes, é$$',
      'create index expenses_notes_idx on expenses (notes)',
    ]);
    expect(texts(review.down)).toEqual(['drop index expenses_notes_idx', 'alter table expenses drop column notes']);
    expect(review.target).toBe('expenses');
    // drop index names the index, not a table: not a rider, and not a destructive drop.
    expect(review.unguardedDrops).toEqual([]);
  });

  it('names a data-only rider on another table, with its statement exactly, after non-ASCII comments', async () => {
    const review = await reviewStatically(
      [
        '-- migrate:up',
        '-- é → notes',
        'alter table expenses add column notes text;',
        '-- → and a rider, é',
        `update tenants set name = 'Café → bar' where id = 'alice';`,
        '-- migrate:down',
        'alter table expenses drop column notes;',
      ].join('\n'),
    );
    expect(review.target).toBe('expenses');
    expect(review.riders).toEqual([
      { direction: 'up', relation: 'tenants', statement: `update tenants set name = 'Café → bar' where id = 'alice'` },
    ]);
  });

  it.each([
    ['insert', `insert into tenants (id, name) values ('carol', 'Carol')`],
    ['delete', `delete from tenants where id = 'bob'`],
    ['update through a CTE', `with moved as (update tenants set name = 'x' returning id) select count(*) from moved`],
  ])('a %s on another table is a rider', async (_, statement) => {
    const review = await reviewStatically(
      `-- migrate:up\nalter table expenses add column notes text;\n${statement};\n-- migrate:down\nalter table expenses drop column notes;\n`,
    );
    expect(review.riders.map((rider) => rider.relation)).toContain('tenants');
  });

  it('a data change written first does not become the target: the schema change names it', async () => {
    const review = await reviewStatically(
      `-- migrate:up\nupdate tenants set name = 'x';\nalter table expenses add column notes text;\n-- migrate:down\nalter table expenses drop column notes;\n`,
    );
    expect(review.target).toBe('expenses');
    expect(review.riders).toEqual([{ direction: 'up', relation: 'tenants', statement: `update tenants set name = 'x'` }]);
  });

  it('a DO block is opaque: its statements are a string to the parser', async () => {
    const review = await reviewStatically(
      `-- migrate:up\nalter table expenses add column notes text;\ndo $$ begin update tenants set name = 'x'; end $$;\n-- migrate:down\nalter table expenses drop column notes;\n`,
    );
    expect(review.riders).toEqual([]);
    expect(review.opaque).toEqual([{ direction: 'up', statement: `do $$ begin update tenants set name = 'x'; end $$` }]);
  });

  it('places a parse error at its line and column, counting characters after "é", "→" and an emoji', async () => {
    const review = await reviewStatically(
      '-- migrate:up\n-- é → 😀\nalter table expenses add column notes text;\nalter tabel expenses;\n-- migrate:down\nalter table expenses drop column notes;\n',
    );
    expect(review.parseError).toBe('the up migration does not parse: syntax error at or near "tabel" at line 4, column 7');
  });
});
