// The live-count poller: its own connection, one query per tick for all
// tables, a tick skipped while the last still runs, the delta since the step
// began, and pause() that leaves no session on the target (the migration
// drill's CREATE DATABASE ... TEMPLATE needs that).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveCounts, countSql, type CountClient } from '../../src/console/live-counts.js';
import { getState, resetStore, update } from '../../src/store.js';
import { createTestDatabase, openConnections, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../../src/util/wait.js';
import { ident, withPgClient } from '../../src/postgres/pg.js';

describe('with a fake connection', () => {
  it('counts every table in one statement and skips a tick while one runs', async () => {
    const statements: string[] = [];
    let release!: () => void;
    let ended = 0;
    const client: CountClient = {
      async query(sql: string, values?: unknown[]) {
        statements.push(sql);
        if (sql.includes('to_regclass')) return { rows: (values![0] as string[]).filter((t) => t !== 'gone').map((name) => ({ name })) } as never;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return { rows: [{ name: 'expenses', n: '79' }, { name: 'runs', n: '3' }] } as never;
      },
      async end() {
        ended += 1;
      },
    };
    const seen: Array<Map<string, number | null>> = [];
    const poller = new LiveCounts({ url: 'postgres://fake/db', intervalMs: 1_000_000, connect: async () => client, onCounts: (c) => seen.push(c), onError: () => {} });
    poller.setTables(['expenses', 'runs', 'gone']);
    await waitFor('the count query', () => statements.length === 2, { timeoutMs: 2_000 });
    // The first tick is still running: the next is skipped, not queued.
    const pending = poller.tick();
    expect(poller.skipped).toBe(1);
    expect(poller.ticks).toBe(1);
    release();
    await pending;
    expect(statements[1]).toBe(countSql(['expenses', 'runs']));
    expect(seen[0]).toEqual(new Map([['expenses', 79], ['runs', 3], ['gone', null]]));
    await poller.pause('migration drill');
    expect(ended).toBe(1);
    await poller.stop();
  });
});

describe('against PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.dispose();
  });

  it('shows counts and deltas, and pause() closes its session', async () => {
    resetStore();
    update({ counts: { tables: [{ name: 'expenses', count: null, base: null }, { name: 'runs', count: null, base: null }], paused: false } });
    const poller = new LiveCounts({ url: db.url, intervalMs: 50 });
    poller.setTables(['expenses', 'runs']);
    await waitFor('first counts', () => getState().counts.tables[0]?.count === 78, { timeoutMs: 10_000 });
    expect(getState().counts.tables[0]).toEqual({ name: 'expenses', count: 78, base: 78 });
    await withPgClient(db.url, (client) =>
      client.query(`insert into expenses (tenant_id, idempotency_key, amount_cents, description)
                    values ('alice', 'live-count-test', 100, 'live count probe')`),
    );
    await waitFor('the delta', () => getState().counts.tables[0]?.count === 79, { timeoutMs: 5_000 });
    expect(getState().counts.tables[0]).toEqual({ name: 'expenses', count: 79, base: 78 });
    await poller.pause('branching');
    expect(getState().counts.paused).toBe(true);
    // Nothing of ours connected: CREATE DATABASE ... TEMPLATE would work now.
    expect(await openConnections(db.adminUrl, db.name)).toEqual([]);
    const branch = `${db.name}_branch`;
    await withPgClient(db.adminUrl, (client) => client.query(`create database ${ident(branch)} template ${ident(db.name)}`));
    await withPgClient(db.adminUrl, (client) => client.query(`drop database ${ident(branch)}`));
    poller.resume();
    await waitFor('counts again', () => !getState().counts.paused && getState().counts.tables[1]?.count !== null, { timeoutMs: 5_000 });
    await poller.stop();
  });
});
