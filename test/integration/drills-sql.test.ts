// The drills whose mechanism lives in the schema alone (1 migration review,
// 6 append-only, 7 RLS): green on the reference schema, red with their
// deliberate break, and red when the mechanism is removed from the target
// database itself with SQL, which the drill must report and never repair.
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { scratchDir } from '../helpers/scratch.js';
import { runOne } from '../helpers/drills.js';
import { appendOnlyEventTest } from '../../src/drills/append-only-event-test.js';
import { rlsIdentityFlipTest } from '../../src/drills/rls-identity-flip-test.js';
import { migrationReview } from '../../src/drills/migration-review.js';
import type { Drill, RunnerEvent } from '../../src/drills/types.js';
import { fixturesDir } from '../../src/postgres/migrations.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { readCatalog } from '../../src/oracle/catalog.js';
import { reconcilerTables } from '../../src/postgres/roles.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.dispose();
});

const sql = (text: string) => withPgClient(db.url, (client) => client.query(text));
const catalog = () => withPgClient(db.url, (client) => readCatalog(client, reconcilerTables));

/** The ids of the steps that failed, from the runner's events. */
const failedSteps = (drill: Drill, events: RunnerEvent[]) =>
  events.flatMap((event) => (event.type === 'step-finished' && !event.ok ? [drill.steps[event.index]!.id] : []));

/** Every agent_events row with the transaction that wrote its current version: a change, even rolled forward to the same values, shows. */
async function eventRowVersions(): Promise<string> {
  const { rows } = await sql(`select md5(string_agg(id::text || ':' || xmin::text, ',' order by id)) as h from agent_events`);
  return String(rows[0].h);
}

/** Applies a sabotage, runs the drill, checks the schema was left as sabotaged, then undoes it. */
async function sabotaged(drill: Drill, apply: string, undo: string) {
  await sql(apply);
  try {
    const before = await catalog();
    const result = await runOne(drill, db);
    expect(await catalog()).toEqual(before);
    return result;
  } finally {
    await sql(undo);
  }
}

describe('append_only_event_test', () => {
  it('passes on the reference schema with evidence built from what happened', async () => {
    const result = await runOne(appendOnlyEventTest, db);
    expect(result.verdict, result.reason).toBe('pass');
    // The seed's wording, built from the SQLSTATE and layer of each refused statement and the rows replayed.
    expect(result.evidence).toBe(
      'UPDATE on agent_events raised permission error (42501, grant) as worker_write and trigger exception (P0001) ' +
        'as owner reconciler_owner; DELETE and TRUNCATE refused the same way. ' +
        'Replayed run R-44 from six event rows. Narrative reconstructed without consulting the snapshot.',
    );
    expect(result.notes.join(' ')).toMatch(/Run R-44 started for tenant alice/);
    // The oracle's before/after of agent_events: nothing changed in committed state.
    expect(result.evidenceDirs).toHaveLength(1);
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(path.join(result.evidenceDirs[0]!, 'verdict.md'), 'utf8')).toMatch(/\*\*Verdict\*\*: APPROVE/);
  });

  it('fails with its deliberate break: the update lands', async () => {
    const before = await eventRowVersions();
    const result = await runOne(appendOnlyEventTest, db, { broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/UPDATE LANDED/);
    // The landed change was rolled back: every row is the version it was (xmin unchanged).
    expect(await eventRowVersions()).toBe(before);
  });

  it('fails when the row trigger is dropped from the target', async () => {
    const result = await sabotaged(
      appendOnlyEventTest,
      'drop trigger agent_events_no_update_delete on agent_events',
      'create trigger agent_events_no_update_delete before update or delete on agent_events for each row execute function agent_events_refuse_change()',
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/as owner reconciler_owner: UPDATE LANDED/);
  });

  it('fails when the truncate trigger is dropped from the target', async () => {
    const result = await sabotaged(
      appendOnlyEventTest,
      'drop trigger agent_events_no_truncate on agent_events',
      'create trigger agent_events_no_truncate before truncate on agent_events for each statement execute function agent_events_refuse_change()',
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/TRUNCATE LANDED/);
  });

  it('fails when UPDATE is granted to the Worker role, even with the trigger in place', async () => {
    const result = await sabotaged(
      appendOnlyEventTest,
      'grant update on agent_events to worker_write',
      'revoke update on agent_events from worker_write',
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/as worker_write: UPDATE refused by the trigger \(P0001\)/);
  });

  it('fails when a DO INSTEAD NOTHING rule hides the change instead of refusing it', async () => {
    const result = await sabotaged(
      appendOnlyEventTest,
      'create rule agent_events_swallow as on update to agent_events do instead nothing',
      'drop rule agent_events_swallow on agent_events',
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/silently swallowed/);
  });
});

describe('rls_identity_flip_test', () => {
  it('passes on the reference schema: 47 Alice, 31 Bob, 0 unset, counted by query', async () => {
    const result = await runOne(rlsIdentityFlipTest, db);
    expect(result.verdict, result.reason).toBe('pass');
    // The seed's wording, built from the tenants each context returned and the reader's flags as read.
    expect(result.evidence).toBe(
      'Alice context returned 47 rows (all Alice). Bob context returned 31 rows (all Bob). Unset context returned 0 rows. ' +
        'No cross-tenant leakage in any flip (as tenant_reader: not superuser, not BYPASSRLS; RLS forced).',
    );
    expect(result.evidenceDirs).toHaveLength(1);
  });

  it('fails with its deliberate break: rows leak', async () => {
    const result = await runOne(rlsIdentityFlipTest, db, { broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/alice context also saw 31 bob/);
  });

  it('fails when the policy is dropped (RLS on, no policy: reads see nothing)', async () => {
    const result = await sabotaged(
      rlsIdentityFlipTest,
      'drop policy expenses_tenant_isolation on expenses',
      `create policy expenses_tenant_isolation on expenses for all to public using (tenant_id = nullif(current_setting('app.tenant_id', true), '')) with check (tenant_id = nullif(current_setting('app.tenant_id', true), ''))`,
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/alice context saw 0 of 47 rows/);
  });

  it('fails when row-level security is disabled on expenses', async () => {
    const result = await sabotaged(
      rlsIdentityFlipTest,
      'alter table expenses disable row level security',
      'alter table expenses enable row level security',
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/not enabled/);
  });

  it('fails when a permissive policy treats an unset context as every tenant', async () => {
    const result = await sabotaged(
      rlsIdentityFlipTest,
      `create policy unset_sees_all on expenses for select using (nullif(current_setting('app.tenant_id', true), '') is null)`,
      'drop policy unset_sees_all on expenses',
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/unset context saw 78 rows/);
  });

  // The reader's own attributes (superuser, BYPASSRLS, the owner or a member of it with
  // FORCE off) are tested with a fresh role each, on data where nothing can leak, in
  // drill-sql-rls-reader-roles.test.ts: roles are cluster-wide, so altering tenant_reader
  // here would change what every other test file's reader is.
});

describe('migration_review', () => {
  const proposed = (name: string) => path.join(fixturesDir, 'proposed', name);
  afterEach(async () => {
    const { rows } = await withPgClient(db.adminUrl, (client) =>
      client.query(`select 1 from pg_database where datname = 'cap-migration-1'`),
    );
    expect(rows).toHaveLength(0);
  });

  it('passes the notes-column proposal, on a branch, leaving the target unmigrated', async () => {
    const result = await runOne(migrationReview, db);
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(/Migration adds notes column, downgrade drops it cleanly, applied and rolled back on branch cap-migration-1/);
    // The oracle's evidence for each direction, taken on the branch.
    expect(result.evidenceDirs).toHaveLength(2);
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(path.join(result.evidenceDirs[0]!, 'diff.txt'), 'utf8')).toMatch(/^\+.*"notes"/m);
    const { rows } = await sql(`select 1 from information_schema.columns where table_name = 'expenses' and column_name = 'notes'`);
    expect(rows).toHaveLength(0);
  });

  it('fails its deliberate break: a rider on tenants, at the scope check, before a branch is made', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(migrationReview, db, { broken: true, events });
    expect(result.verdict).toBe('fail');
    expect(failedSteps(migrationReview, events)).toEqual(['scope']);
    expect(result.evidenceDirs).toEqual([]);
    expect(result.reason).toMatch(/scope creep: statements also touch tenants/);
  });

  it.each([
    ['rider_on_other_table.sql', 'scope', /scope creep: statements also touch tenants/],
    ['dml_rider_on_other_table.sql', 'scope', /scope creep: statements also touch tenants \(target expenses\)/],
    ['no_down.sql', 'read', /no down direction/],
    ['drop_table.sql', 'drop-guard', /DROP TABLE pending_transactions \(up\) without an explicit override/],
  ])('fails %s at the %s check, naming the reason', async (file, step, reason) => {
    const events: RunnerEvent[] = [];
    const result = await runOne(migrationReview, db, { migrationFile: proposed(file), events });
    expect(result.verdict).toBe('fail');
    expect(failedSteps(migrationReview, events)).toEqual([step]);
    expect(result.reason).toMatch(reason);
  });

  it('records an explicit drop override, and still fails the drop of another table as scope creep', async () => {
    const result = await runOne(migrationReview, db, { migrationFile: proposed('drop_table_with_override.sql') });
    expect(result.notes.join(' ')).toMatch(/drop override: pending_transactions is replaced/);
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/scope creep: statements also touch pending_transactions/);
  });

  it('an overridden drop of its own target passes the guard and is tried on the branch', async () => {
    const { writeFile } = await import('node:fs/promises');
    const dir = scratchDir('migration-');
    const file = path.join(dir, 'truncate.sql');
    await writeFile(
      file,
      '-- migrate:up\n-- sor-drills: allow-drop reason: expenses are re-imported nightly\nalter table expenses add column notes text;\ntruncate expenses;\n-- migrate:down\nalter table expenses drop column notes;\n',
    );
    const result = await runOne(migrationReview, db, { migrationFile: file });
    expect(result.notes).toContain('drop override: expenses are re-imported nightly');
    expect(result.verdict, result.reason).toBe('pass');
    const { rows } = await sql('select count(*)::int as n from expenses');
    expect(rows[0].n).toBe(78);
  });

  it('fails a file that does not parse, with the parser position', async () => {
    const { writeFile } = await import('node:fs/promises');
    const dir = scratchDir('migration-');
    const file = path.join(dir, 'bad.sql');
    await writeFile(file, '-- migrate:up\nalter table expenses add column notes text;\nalter tabel expenses;\n-- migrate:down\nalter table expenses drop column notes;\n');
    const result = await runOne(migrationReview, db, { migrationFile: file });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/up migration does not parse: syntax error at or near "tabel" at line 3/);
  });
});
