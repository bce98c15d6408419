// A Reconciler the drills cannot map: fixtures/other-reconciler/, a learner's schema
// in the course's own vocabulary (users, uuid keys, outbox_messages, ...), installed
// by this test into a database of its own with roles suffixed for this run. Without
// a profile the drills must say they could not judge it, never that a habit is
// missing, and the run must test it as it is: nothing of the reference schema is
// installed beside it. Also: the reference column table against what
// fixtures/migrations really creates, and the runner's handling of a name a step
// meets that the target does not have.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, queryRows, type TestDatabase } from '../helpers/db.js';
import { runOne } from '../helpers/drills.js';
import { runCli } from '../helpers/cli.js';
import { scratchDir } from '../helpers/scratch.js';
import { parseBundle } from '../../src/drills/bundle.js';
import { drills } from '../../src/drills/index.js';
import { findMissingNames, referenceColumns, unmappedHint } from '../../src/drills/reference-schema.js';
import { bundleKeys, type Drill, type RunnerEvent } from '../../src/drills/types.js';
import { fixturesDir, loadMigrations } from '../../src/postgres/migrations.js';
import { ident, inTransaction, withPgClient } from '../../src/postgres/pg.js';
import { inspectTarget } from '../../src/postgres/setup.js';

const otherDir = path.join(fixturesDir, 'other-reconciler');
const suffix = randomBytes(4).toString('hex');
const roles = {
  worker_read: `worker_read_${suffix}`,
  worker_write: `worker_write_${suffix}`,
  worker_admin: `worker_admin_${suffix}`,
};

/** psql's `:"name"` variables, as `psql -v name=value` fills them in (quoted identifiers). */
function withVariables(sql: string, variables: Record<string, string>): string {
  return sql.replace(/:"(\w+)"/g, (_match, name: string) => {
    const value = variables[name];
    if (value === undefined) throw new Error(`the fixture uses :"${name}", which the test does not set`);
    return ident(value);
  });
}

async function installOtherReconciler(url: string): Promise<void> {
  const schema = withVariables(await readFile(path.join(otherDir, 'schema.sql'), 'utf8'), roles);
  const seed = await readFile(path.join(otherDir, 'seed.sql'), 'utf8');
  await withPgClient(url, (client) =>
    inTransaction(client, async () => {
      await client.query(schema);
      await client.query(seed);
    }),
  );
}

/** Every table of the public schema with its row count: what a run must leave as it found it. */
async function publicState(url: string): Promise<Record<string, number>> {
  const tables = await queryRows<{ name: string }>(
    url,
    `select c.relname as name from pg_class c
      where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm') order by 1`,
  );
  const state: Record<string, number> = {};
  for (const { name } of tables) {
    const [row] = await queryRows<{ n: number }>(url, `select count(*)::int as n from public.${ident(name)}`);
    state[name] = row!.n;
  }
  return state;
}

let other: TestDatabase;
let reference: TestDatabase;
beforeAll(async () => {
  other = await createTestDatabase({ empty: true });
  reference = await createTestDatabase();
  await installOtherReconciler(other.url);
});
afterAll(async () => {
  await other?.dispose();
  await reference?.dispose();
  // Roles outlive databases; the database that used them is gone, so they drop cleanly.
  if (other) {
    await withPgClient(other.adminUrl, async (client) => {
      for (const role of Object.values(roles)) await client.query(`drop role if exists ${ident(role)}`);
    });
  }
});

describe('the reference column table', () => {
  it('names only tables and columns that fixtures/migrations creates', async () => {
    const columns = await queryRows<{ table_name: string; column_name: string }>(
      reference.url,
      `select table_name::text, column_name::text from information_schema.columns where table_schema = 'public'`,
    );
    for (const [table, names] of Object.entries(referenceColumns)) {
      const created = columns.filter((row) => row.table_name === table).map((row) => row.column_name);
      expect(created, `table ${table}`).not.toEqual([]);
      for (const name of names) expect(created, `${table}.${name}`).toContain(name);
    }
    const missing = await withPgClient(reference.url, (client) =>
      findMissingNames(client, Object.keys(referenceColumns) as Array<keyof typeof referenceColumns>),
    );
    expect(missing).toEqual({ tables: [], columns: [] });
  });

  it('finds what the learner schema lacks, table by table and column by column', async () => {
    const missing = await withPgClient(other.url, (client) =>
      findMissingNames(client, ['tenants', 'expenses', 'outbox', { table: 'agent_events', columns: ['id', 'run_id', 'turn_no', 'event_type', 'detail'] }]),
    );
    expect(missing.tables).toEqual(['tenants', 'outbox']);
    expect(missing.columns).toEqual(['expenses.tenant_id', 'expenses.transaction_id', 'expenses.amount_cents', 'expenses.description', 'agent_events.turn_no', 'agent_events.detail']);
  });
});

describe('a Reconciler schema of the course vocabulary, without a profile', () => {
  it('is classified as a Reconciler schema to test as it is, not one to install the reference beside', async () => {
    const state = await withPgClient(other.url, async (client) => inspectTarget(client, await loadMigrations()));
    expect(state).toEqual({
      kind: 'reconciler-unmanaged',
      tables: ['expenses', 'pending_transactions', 'runs', 'turns', 'tool_calls', 'agent_events'],
    });
  });

  it('`sor-drills run`: every drill that needs the reference names could not judge, none blames a habit; BLOCKED; nothing installed', async () => {
    const dir = scratchDir('unmapped-');
    const out = path.join(dir, 'bundle.md');
    const before = await publicState(other.url);
    const result = await runCli(['run', '--db', other.url, '--yes', '--json', '--pace', '0', '--out', out], { cwd: dir, timeout: 300_000 });
    expect(result.exitCode, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/holds a Reconciler schema not installed by setup: testing it as it is/);

    const { bundle, paragraph } = parseBundle(await readFile(out, 'utf8'));
    expect(JSON.parse(result.stdout)).toEqual(bundle);
    // The migration review judges the proposal on a branch of this very schema: it needs only
    // an expenses table, which the learner has, so its verdict is a real one.
    expect(bundle.migration_review, bundle.migration_review).toBe('pass');
    const unjudged = bundleKeys.filter((key) => key !== 'migration_review');
    for (const key of unjudged) {
      expect(bundle[key], key).toMatch(/^fail: could not determine: no (table|column)s? .* found in the target \(/);
      expect(bundle[key], key).toContain(`(${unmappedHint})`);
      expect(bundle[key], key).not.toMatch(/does not exist/);
    }
    expect(bundle.idempotency_retry_test).toMatch(/no table tenants and no columns expenses\.tenant_id/);
    expect(bundle.rls_identity_flip_test).toMatch(/: no column expenses\.tenant_id found in the target/);
    expect(bundle.append_only_event_test).toMatch(/: no columns agent_events\.turn_no, agent_events\.detail found in the target/);

    expect(bundle.release_decision).toMatch(/^BLOCKED: could not judge run_journal_resume_drill, /);
    expect(bundle.release_decision).not.toMatch(/Lesson \d/);
    expect(paragraph).toMatch(/^Release BLOCKED\. 1 of nine drills passed against /);
    expect(paragraph).toMatch(/The run could not judge 8 drills, so it says nothing about their lessons' habits: /);
    for (const key of unjudged) expect(paragraph).toContain(key);
    expect(paragraph).not.toMatch(/habit of Lesson \d+ .* is missing/);
    expect(paragraph).not.toMatch(/ failed \(/);

    // Tested as it is: no table added or removed, no row written (the migration ran on a branch).
    expect(await publicState(other.url)).toEqual(before);
    expect(Object.keys(before)).not.toContain('tenants');
    // No Reconciler process was started (its supervisor makes the log folder on first use),
    // so no role of the cluster was given a password for one.
    expect(existsSync(path.join(dir, '.agent-history', 'processes'))).toBe(false);
  }, 320_000);
});

/** A drill of one step, to see how the runner ends a step that meets a name the target lacks. */
function probe(sql: string, needs: Drill['needs'] = []): Drill<Record<string, never>> {
  return {
    ...drills.find((drill) => drill.key === 'idempotency_retry_test')!,
    needs,
    init: () => ({}),
    steps: [
      {
        id: 'probe',
        title: 'Run the probe',
        why: 'test',
        hint: { look: 'the probe', mistake: 'none' },
        async run(ctx) {
          await withPgClient(ctx.url, (client) => client.query(sql));
        },
      },
    ],
    verdict: () => ({ verdict: 'pass', evidence: 'the probe ran' }),
  } as Drill<Record<string, never>>;
}

describe('the runner, on a name the target does not have', () => {
  it.each([
    ['42P01', 'select * from tenants'],
    ['42703', 'select tenant_id from expenses'],
    ['3F000', 'select reconciler.current_user_id()'],
  ])('a step that meets %s ends could-not-determine with the hint', async (code, sql) => {
    const result = await runOne(probe(sql) as Drill, other);
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toMatch(new RegExp(`^could not determine: Run the probe: .* \\[SQLSTATE ${code}\\] \\(`));
    expect(result.reason).toContain(unmappedHint);
  });

  it('any other SQLSTATE is still a fail of the drill (here 42P10: no unique key to conflict on)', async () => {
    const result = await runOne(
      probe(`insert into expenses (user_id, idempotency_key, amount) values ('00000000-0000-4000-8000-00000000a11c', 'x', 1) on conflict (memo) do nothing`) as Drill,
      other,
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/^Run the probe: there is no unique or exclusion constraint matching the ON CONFLICT specification$/);
  });

  it('a missing need ends the drill before its first step, naming what is missing', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(probe('select 1', ['tenants', 'expenses']) as Drill, other, { events });
    expect(result.verdict).toBe('could-not-determine');
    expect(result.reason).toBe(
      `could not determine: no table tenants and no columns expenses.tenant_id, expenses.transaction_id, expenses.amount_cents, expenses.description found in the target (${unmappedHint})`,
    );
    expect(events.some((event) => event.type === 'step-started')).toBe(false);
    expect(events).toContainEqual(expect.objectContaining({ type: 'observation', label: 'missing_names', ok: false }));
  });

  it('on the reference schema the same needs are found and the steps run', async () => {
    const result = await runOne(probe('select 1', ['tenants', 'expenses']) as Drill, reference);
    expect(result.verdict, result.reason).toBe('pass');
  });
});
