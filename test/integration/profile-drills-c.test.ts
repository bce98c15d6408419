// The migration review, RLS and MCP boundary drills through a profile, on
// fixtures/other-reconciler (users with uuid keys, app.current_user_id cast to uuid
// by the policies, memo for the description, tables owned by a NOLOGIN worker_admin):
// each passes through the fixture's profile, and each fails when its mechanism is
// removed from that database. Every sabotage is undone afterwards.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { runOne, type TestSystem } from '../helpers/drills.js';
import { useOtherTarget, type OtherRoles } from '../helpers/other-reconciler.js';
import { scratchDir } from '../helpers/scratch.js';
import { mcpBoundaryTest } from '../../src/drills/mcp-boundary-test/index.js';
import { migrationReview } from '../../src/drills/migration-review.js';
import { rlsIdentityFlipTest } from '../../src/drills/rls-identity-flip-test.js';
import type { Drill, DrillResult, RunnerEvent } from '../../src/drills/types.js';
import { ident, withPgClient } from '../../src/postgres/pg.js';
import { type ProfileInUse, resolveProfile } from '../../src/postgres/profile/index.js';

let db: TestDatabase;
let system: TestSystem;
let profile: ProfileInUse;
let roles: OtherRoles;
useOtherTarget((target) => ({ db, system, profile, roles } = target));

const alice = '00000000-0000-4000-8000-00000000a11c';
const bob = '00000000-0000-4000-8000-000000000b0b';

const sql = (text: string, params: unknown[] = []) => withPgClient(db.url, (client) => client.query(text, params));

/** Applies a sabotage, runs the drill through the fixture's profile, then undoes it. */
async function sabotaged(drill: Drill, apply: string[], undo: string[], events?: RunnerEvent[]): Promise<DrillResult> {
  for (const statement of apply) await sql(statement);
  try {
    return await runOne(drill, db, { profile, events });
  } finally {
    for (const statement of undo) await sql(statement);
  }
}

function observed(events: RunnerEvent[], label: string): { value: unknown; ok?: boolean } {
  const found = events.find((event) => event.type === 'observation' && event.label === label);
  if (!found || found.type !== 'observation') throw new Error(`no observation ${label}`);
  // Strings are shown as they are; everything else as JSON (src/drills/runner.ts).
  let value: unknown = found.value;
  try {
    value = JSON.parse(found.value);
  } catch {
    // a plain string
  }
  return { value, ok: found.ok };
}

/** A branch name of this file's own: branch names are cluster-wide, and other files use cap-migration-1. */
const branchName = () => `cap-migration-other-${randomBytes(3).toString('hex')}`;

describe('migration_review through the other Reconciler’s profile', () => {
  it('passes the default notes-column proposal: the other schema also calls its table expenses', async () => {
    const branch = branchName();
    const result = await runOne(migrationReview, db, { profile, branchName: branch });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(
      `Migration adds notes column, downgrade drops it cleanly, applied and rolled back on branch ${branch} (template copy). No scope creep.`,
    );
    const { rows } = await sql(`select 1 from information_schema.columns where table_name = 'expenses' and column_name = 'notes'`);
    expect(rows).toHaveLength(0);
  });

  it('could not determine, naming --migration, where the expenses table has another name; the target’s own migration then passes', async () => {
    await sql('alter table expenses rename to expense_lines');
    try {
      const renamed = { ...profile.profile, expenses: { ...profile.profile.expenses, table: 'expense_lines' } };
      const inUse = await withPgClient(db.url, (client) => resolveProfile(client, renamed, 'renamed.json', true));
      expect(inUse.problems).toEqual([]);
      const events: RunnerEvent[] = [];
      const misfit = await runOne(migrationReview, db, { profile: inUse, branchName: branchName(), events });
      expect(misfit.verdict, misfit.reason).toBe('could-not-determine');
      expect(misfit.reason).toContain("adds a column to expenses, but this target's expenses table is public.expense_lines");
      expect(misfit.reason).toContain("pass --migration with the target's own migration");
      expect(events.some((event) => event.type === 'step-started' && migrationReview.steps[event.index]!.id === 'branch')).toBe(false);

      const file = path.join(await mkdtemp(path.join(scratchDir('migration-'), 'own-')), 'add_expense_line_notes.sql');
      await writeFile(
        file,
        '-- migrate:up\nalter table expense_lines add column notes text;\n-- migrate:down\nalter table expense_lines drop column notes;\n',
      );
      const own = await runOne(migrationReview, db, { profile: inUse, migrationFile: file, branchName: branchName() });
      expect(own.verdict, own.reason).toBe('pass');
      expect(own.evidence).toMatch(/^Migration adds notes column, downgrade drops it cleanly, applied and rolled back on branch /);

      // A given migration is held to its own table: a column on users beside it is scope creep.
      const rider = path.join(path.dirname(file), 'with_rider.sql');
      await writeFile(
        rider,
        '-- migrate:up\nalter table expense_lines add column notes text;\nalter table users add column plan text;\n' +
          '-- migrate:down\nalter table users drop column plan;\nalter table expense_lines drop column notes;\n',
      );
      const crept = await runOne(migrationReview, db, { profile: inUse, migrationFile: rider, branchName: branchName() });
      expect(crept.verdict).toBe('fail');
      expect(crept.reason).toMatch(/scope creep: statements also touch users \(target expense_lines\)/);
    } finally {
      await sql('alter table expense_lines rename to expenses');
    }
  });

  it('fails its deliberate break (a rider on another table) on this target too, from the text alone', async () => {
    const result = await runOne(migrationReview, db, { profile, broken: true, branchName: branchName() });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/scope creep: statements also touch tenants/);
  });
});

describe('rls_identity_flip_test through the other Reconciler’s profile', () => {
  const line = (mode: 'forced' | 'enabled') =>
    'Alice context returned 47 rows (all Alice). Bob context returned 31 rows (all Bob). Unset context returned 0 rows. ' +
    `No cross-tenant leakage in any flip (as ${roles.worker_read}: not superuser, not BYPASSRLS; RLS ${mode}).`;
  const policy =
    `create policy expenses_by_user on expenses ` +
    `using (user_id = nullif(current_setting('app.current_user_id', true), '')::uuid) ` +
    `with check (user_id = nullif(current_setting('app.current_user_id', true), '')::uuid)`;

  it('passes: the two users with the most expenses, flipped through app.current_user_id; the uuid cast refusing % is a closed door', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(rlsIdentityFlipTest, db, { profile, events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(line('forced'));
    expect(observed(events, 'truth').value).toEqual({ [alice]: 47, [bob]: 31 });
    expect(observed(events, 'read_Alice')).toEqual({ value: { seen: { [alice]: 47 }, total: 47 }, ok: true });
    expect(observed(events, 'worker_read_Bob')).toEqual({ value: { seen: { [bob]: 31 }, total: 31 }, ok: true });
    // The policy casts the setting to uuid: '%' is refused (22P02), which shows no row.
    for (const label of ['read_pattern', 'worker_read_pattern']) {
      const pattern = observed(events, label);
      expect(pattern.ok).toBe(true);
      expect(pattern.value).toMatchObject({ seen: {}, total: 0, code: '22P02', failsClosed: true });
      expect((pattern.value as { closedBy: string }).closedBy).toMatch(/the policy's cast of app\.current_user_id refused '%'/);
    }
    expect(result.notes).toContainEqual(expect.stringMatching(new RegExp(`^${roles.worker_read}, pattern context: refused with 22P02: .*no rows visible, fails closed$`)));
    // Every statement went through the profile's names and setting.
    const statements = events.flatMap((event) => (event.type === 'sql' ? [event.sql] : []));
    expect(statements).toContainEqual(expect.stringContaining(`set_config('app.current_user_id', '${alice}', true)`));
    expect(statements.join('\n')).not.toContain('app.tenant_id');
  });

  it('fails with its deliberate break: rows leak', async () => {
    const result = await runOne(rlsIdentityFlipTest, db, { profile, broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/Alice context also saw 31 Bob/);
  });

  it('fails when the policy expenses_by_user is dropped (RLS on, no policy: reads see nothing)', async () => {
    const result = await sabotaged(rlsIdentityFlipTest, ['drop policy expenses_by_user on expenses'], [policy]);
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/Alice context saw 0 of 47 rows/);
  });

  it('fails when row-level security is disabled on expenses', async () => {
    const result = await sabotaged(
      rlsIdentityFlipTest,
      ['alter table expenses disable row level security'],
      ['alter table expenses enable row level security'],
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/row-level security is not enabled on expenses/);
    expect(result.reason).toMatch(/Alice context also saw 31 Bob/);
  });

  // The tables belong to worker_admin (NOLOGIN). FORCE binds only the owner and its members;
  // the drill reads as worker_read and worker_write, neither of which is either.
  it('passes with FORCE removed: neither role it reads as owns expenses, and it says RLS enabled, not forced', async () => {
    const events: RunnerEvent[] = [];
    const result = await sabotaged(
      rlsIdentityFlipTest,
      ['alter table expenses no force row level security'],
      ['alter table expenses force row level security'],
      events,
    );
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(line('enabled'));
    expect(observed(events, 'rls_forced').value).toBe(false);
    expect(observed(events, 'reader_has_owner_privileges')).toEqual({ value: false, ok: true });
  });

  it('fails with FORCE removed once the reader is a member of the owner worker_admin', async () => {
    const result = await sabotaged(
      rlsIdentityFlipTest,
      ['alter table expenses no force row level security', `grant ${ident(roles.worker_admin)} to ${ident(roles.worker_read)}`],
      [`revoke ${ident(roles.worker_admin)} from ${ident(roles.worker_read)}`, 'alter table expenses force row level security'],
    );
    expect(result.verdict).toBe('fail');
    expect(result.reason).toContain(
      `${roles.worker_read} is a member of ${roles.worker_admin}, which owns expenses, and RLS is not forced`,
    );
    expect(result.reason).toMatch(/Alice context also saw 31 Bob/);
  });
});

describe('mcp_boundary_test through the other Reconciler’s profile', () => {
  const boundary = (events?: RunnerEvent[]) =>
    runOne(mcpBoundaryTest, db, { profile, system, serverLog: inject('pgLogFile'), events });

  it('passes: the SQL-looking strings land in expenses.memo of the drill’s own user, and the catalog is unchanged', async () => {
    const events: RunnerEvent[] = [];
    const result = await boundary(events);
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toMatch(
      /^Worker env has no DATABASE_URL \(pid \d+: \d+ variables read from \/proc, no PG\* and no postgres URL\)\. Tool surface lists four allowed operations \(claim, write, queue, read\)\. Disallowed drop_table call refused at MCP layer with tool-not-found error \(-32602, 0 statements reached the database\)\. SQL-looking strings stored as data: expenses \+2, catalog unchanged \(\d+ relations\)\. Database connection logs show no rogue queries \(\d+ statements in the window, \d+ from the tool server, 0 DROP\)\.$/,
    );
    const { rows } = await sql(
      `select e.memo, u.display_name from expenses e join users u on u.id = e.user_id where e.memo in ($1, $2) order by e.memo`,
      [`'); DROP TABLE expenses; --`, 'COMMIT; DROP TABLE expenses'],
    );
    expect(rows).toHaveLength(2);
    expect(rows.every((row: { display_name: string }) => row.display_name === 'Drill tenant for mcp_boundary_test')).toBe(true);
    expect(observed(events, 'sql_strings').value).toMatchObject({ column: 'memo', storedVerbatim: 2, delta: 2, readFoundNothing: true });
  });

  it('fails when the target turns an SQL-looking memo into a statement, and leaves the trigger in place', async () => {
    await sql(`create table sor_canary (id int)`);
    await sql(`create function sor_run_memo() returns trigger language plpgsql security definer as $$
      begin
        if new.memo ~* 'drop table' then execute 'drop table if exists sor_canary'; end if;
        return new;
      end $$`);
    await sql(`create trigger sor_run_memo before insert on expenses for each row execute function sor_run_memo()`);
    try {
      const result = await boundary();
      expect(result.verdict).toBe('fail');
      expect(result.reason).toMatch(/SQL-looking strings changed the catalog \(public\.sor_canary gone\)/);
      const { rows } = await sql(`select 1 from pg_trigger where tgname = 'sor_run_memo'`);
      expect(rows).toHaveLength(1);
    } finally {
      await sql('drop trigger if exists sor_run_memo on expenses');
      await sql('drop function if exists sor_run_memo()');
      await sql('drop table if exists sor_canary');
    }
  });

  it('fails with its deliberate break: the raw SQL tool and the leaked DATABASE_URL', async () => {
    const result = await runOne(mcpBoundaryTest, db, { profile, system, serverLog: inject('pgLogFile'), broken: true });
    expect(result.verdict).toBe('fail');
    expect(result.reason).toMatch(/Worker env has DATABASE_URL/);
    expect(result.reason).toMatch(/not allowed: sql/);
  });
});
