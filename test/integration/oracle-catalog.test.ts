// readCatalog reads every table's catalog in one query per kind of object: each
// table's part must be exactly what a read of that table alone gives (same rows,
// same order, same keys in the same order, since the oracle writes them as evidence).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { readCatalog, readTableCatalog } from '../../src/oracle/catalog.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { reconcilerTables } from '../../src/postgres/roles.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  // Objects the reference schema lacks, so every kind the reader reads has rows on more than one table.
  await withPgClient(db.url, (client) =>
    client.query(`
      create rule tenants_no_delete as on delete to tenants do instead nothing;
      create rule expenses_no_delete as on delete to expenses do instead nothing;
      create schema other;
      create table other.expenses (id int primary key, note text default 'x' check (note <> ''));
      grant select on other.expenses to public;
    `),
  );
});

afterAll(async () => {
  await db?.dispose();
});

describe('readCatalog', () => {
  it('reads each table of a schema as a read of that table alone does, byte for byte', async () => {
    const tables = [...reconcilerTables, 'no_such_table'];
    await withPgClient(db.url, async (client) => {
      const all = await readCatalog(client, tables);
      expect(Object.keys(all)).toEqual([...tables].sort());
      expect(all.no_such_table).toBeNull();
      expect(all.tenants?.rules.map((rule) => rule.name)).toEqual(['tenants_no_delete']);
      expect(all.expenses?.policies.length).toBeGreaterThan(0);
      for (const table of tables) {
        const alone = await readTableCatalog(client, 'public', table);
        expect(JSON.stringify(all[table]), table).toBe(JSON.stringify(alone));
      }
    });
  });

  it('reads the named schema only', async () => {
    await withPgClient(db.url, async (client) => {
      const other = await readCatalog(client, ['expenses', 'tenants'], 'other');
      expect(other.tenants).toBeNull();
      expect(other.expenses?.columns.map((column) => column.name)).toEqual(['id', 'note']);
      expect(other.expenses?.constraints.map((constraint) => constraint.type).sort()).toEqual(['check', 'primary key']);
      expect(other.expenses?.grants).toEqual([{ grantee: 'public', privilege: 'select' }]);
      expect(other.expenses?.rules).toEqual([]);
    });
  });
});
