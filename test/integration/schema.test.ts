// The reference schema against a real Postgres: reversible migrations, RLS
// isolation as the tenant reader, and append-only agent_events.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { setup, setupDown } from '../../src/postgres/setup.js';
import { readCatalog } from '../../src/oracle/catalog.js';
import { inTransaction, sqlState, withPgClient } from '../../src/postgres/pg.js';
import { reconcilerTables } from '../../src/postgres/roles.js';

let empty: TestDatabase;
let seeded: TestDatabase;

beforeAll(async () => {
  empty = await createTestDatabase({ empty: true });
  seeded = await createTestDatabase();
});

afterAll(async () => {
  await empty?.dispose();
  await seeded?.dispose();
});

const catalogOf = (url: string) => withPgClient(url, (client) => readCatalog(client, reconcilerTables));

describe('migrations', () => {
  it('up, down, up leaves a catalog identical to the first up', async () => {
    const options = { embedded: true, yes: false };
    await setup(empty.url, options);
    const first = await catalogOf(empty.url);
    expect(first.expenses?.rls).toEqual({ enabled: true, forced: true });
    expect(first.agent_events?.triggers.map((trigger) => trigger.name)).toEqual([
      'agent_events_no_truncate',
      'agent_events_no_update_delete',
    ]);

    await setupDown(empty.url, options);
    const gone = await catalogOf(empty.url);
    expect(Object.values(gone).every((table) => table === null)).toBe(true);

    await setup(empty.url, options);
    expect(await catalogOf(empty.url)).toEqual(first);
  });

  it('roles are cluster-wide: down keeps a role another database still uses', async () => {
    // The template and every other test database use the roles; this one's down must not drop them.
    const { rows } = await withPgClient(empty.url, (client) =>
      client.query<{ rolname: string }>(
        `select rolname from pg_roles where rolname in ('worker_write', 'tenant_reader', 'reconciler_owner') order by 1`,
      ),
    );
    expect(rows.map((row) => row.rolname)).toEqual(['reconciler_owner', 'tenant_reader', 'worker_write']);
  });

  it('setup twice changes nothing the second time', async () => {
    const before = await catalogOf(seeded.url);
    const result = await setup(seeded.url, { embedded: true, yes: false });
    expect(result.changed).toBe(false);
    expect(result.lines.join('\n')).toMatch(/already installed/);
    expect(await catalogOf(seeded.url)).toEqual(before);
  });
});

/** Runs queries as the tenant reader with a tenant context, the way PITFALLS.md says: one client, SET LOCAL via set_config. */
async function readerCount(url: string, tenant: string | null) {
  return withPgClient(url, async (client) =>
    inTransaction(client, async () => {
      await client.query('set local role tenant_reader');
      if (tenant !== null) await client.query(`select set_config('app.tenant_id', $1, true)`, [tenant]);
      const { rows } = await client.query<{ tenant_id: string }>('select tenant_id from expenses');
      return rows;
    }),
  );
}

describe('row-level security as tenant_reader', () => {
  it('Alice sees her 47 rows, Bob his 31, unset none', async () => {
    const alice = await readerCount(seeded.url, 'alice');
    expect(alice).toHaveLength(47);
    expect(alice.every((row) => row.tenant_id === 'alice')).toBe(true);
    const bob = await readerCount(seeded.url, 'bob');
    expect(bob).toHaveLength(31);
    expect(bob.every((row) => row.tenant_id === 'bob')).toBe(true);
    expect(await readerCount(seeded.url, null)).toHaveLength(0);
  });

  it('after RESET the context is empty, not leaked: 0 rows', async () => {
    const rows = await withPgClient(seeded.url, async (client) => {
      await client.query(`select set_config('app.tenant_id', 'alice', false)`);
      await client.query('reset app.tenant_id');
      return inTransaction(client, async () => {
        await client.query('set local role tenant_reader');
        const { rows } = await client.query('select 1 from expenses');
        return rows;
      });
    });
    expect(rows).toHaveLength(0);
  });

  it('the reader is neither superuser nor BYPASSRLS', async () => {
    const { rows } = await withPgClient(seeded.url, (client) =>
      client.query(`select rolsuper, rolbypassrls from pg_roles where rolname in ('tenant_reader', 'worker_write')`),
    );
    expect(rows).toEqual([
      { rolsuper: false, rolbypassrls: false },
      { rolsuper: false, rolbypassrls: false },
    ]);
  });
});

async function attempt(url: string, role: string | null, sql: string): Promise<{ code?: string; rowCount?: number | null }> {
  return withPgClient(url, async (client) => {
    await client.query('begin');
    try {
      if (role) await client.query(`set local role ${role}`);
      const result = await client.query(sql);
      return { rowCount: result.rowCount };
    } catch (error) {
      return { code: sqlState(error) };
    } finally {
      await client.query('rollback');
    }
  });
}

describe('agent_events is append-only', () => {
  const statements = {
    update: `update agent_events set event_type = 'tampered' where id = (select min(id) from agent_events)`,
    delete: `delete from agent_events where id = (select min(id) from agent_events)`,
    truncate: `truncate agent_events`,
  };

  it.each(Object.entries(statements))('%s as worker_write is refused by the grant (42501)', async (_, sql) => {
    expect(await attempt(seeded.url, 'worker_write', sql)).toEqual({ code: '42501' });
  });

  it.each(Object.entries(statements))('%s as the owner is refused by the trigger (P0001)', async (_, sql) => {
    expect(await attempt(seeded.url, 'reconciler_owner', sql)).toEqual({ code: 'P0001' });
  });

  it('an UPDATE that matches no row raises nothing: it is not a refusal', async () => {
    const result = await attempt(seeded.url, 'reconciler_owner', `update agent_events set event_type = 'x' where id = -1`);
    expect(result).toEqual({ rowCount: 0 });
  });

  it('R-44 has six events', async () => {
    const { rows } = await withPgClient(seeded.url, (client) =>
      client.query<{ n: number }>(`select count(*)::int as n from agent_events where run_id = 'R-44'`),
    );
    expect(rows[0]?.n).toBe(6);
  });

  it('inserts still work: worker_write appends an event row, and it is there on a fresh connection', async () => {
    // A run of its own, so the seed's R-44 keeps its six events whatever order the tests run in.
    const run = `R-schema-${randomBytes(4).toString('hex')}`;
    const inserted = await withPgClient(seeded.url, (client) =>
      inTransaction(client, async () => {
        await client.query('set local role worker_write');
        await client.query(
          `insert into runs (id, tenant_id, worker, status, total_turns) values ($1, 'alice', 'schema-test', 'running', 1)`,
          [run],
        );
        const { rows } = await client.query<{ id: string }>(
          `insert into agent_events (run_id, tenant_id, turn_no, event_type, detail)
           values ($1, 'alice', 1, 'run_started', $2::jsonb) returning id::text as id`,
          [run, JSON.stringify({ worker: 'schema-test' })],
        );
        return rows[0]!.id;
      }),
    );
    const { rows } = await withPgClient(seeded.url, (client) =>
      client.query(`select id::text as id, run_id, tenant_id, turn_no, event_type, detail from agent_events where run_id = $1`, [run]),
    );
    expect(rows).toEqual([
      { id: inserted, run_id: run, tenant_id: 'alice', turn_no: 1, event_type: 'run_started', detail: { worker: 'schema-test' } },
    ]);
  });
});
