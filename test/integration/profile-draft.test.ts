// `sor-drills profile`: a profile drafted from the catalog. The reference schema drafts
// to exactly the built-in reference profile; fixtures/other-reconciler drafts to exactly
// its profile.json; a third schema mixing the vocabulary the other way drafts right;
// what is ambiguous is a TODO that parseProfile refuses, naming the key; and the CLI
// writes the file, refuses to overwrite it, and prints the mapping with its evidence.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dropOtherRoles, installOtherReconciler, otherProfile, otherRoles, withVariables } from '../helpers/other-reconciler.js';
import { scratchDir } from '../helpers/scratch.js';
import { ident, withPgClient } from '../../src/postgres/pg.js';
import { type DraftResult, draftProfile } from '../../src/postgres/profile/draft/index.js';
import { parseProfile, type Profile, ProfileError, profileProblems, referenceProfile } from '../../src/postgres/profile/index.js';

const otherRoleNames = otherRoles();
const suffix = randomBytes(4).toString('hex');
const mixedRoles = { mixed_owner: `mixed_owner_${suffix}`, mixed_app: `mixed_app_${suffix}`, mixed_dash: `mixed_dash_${suffix}` };

// Tenants with app.tenant_id, but uuid keys; outbox_messages with columns for the message;
// 'finished' runs; a composite idempotency key with integer cents; events named run_events
// and read in an identity column's order; words the reference schema does not use
// (in_progress, reconciled, errored, queued, delivered).
const mixedSchema = `
create role :"mixed_owner" nologin;
create role :"mixed_app" login;
create role :"mixed_dash" login;
create table tenants (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  slug text not null unique
);
create table pending_transactions (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references tenants (id),
  amount_cents integer not null,
  description text not null,
  status text not null default 'pending' check (status in ('pending', 'in_progress', 'reconciled')),
  claimed_by text,
  lease_until timestamptz,
  reconciled_at timestamptz
);
create table expenses (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references tenants (id),
  idempotency_key text not null,
  amount_cents bigint not null,
  note text,
  source_txn uuid references pending_transactions (id),
  unique (tenant_id, idempotency_key)
);
create table runs (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references tenants (id),
  worker_name text not null,
  status text not null check (status in ('running', 'finished', 'errored')),
  turn_count integer,
  error text,
  started_at timestamptz not null default now(),
  finished_at timestamptz
);
create table turns (
  id uuid primary key default gen_random_uuid(),
  run_id uuid not null references runs (id),
  turn_number integer not null,
  status text not null check (status in ('running', 'completed', 'failed')),
  started_at timestamptz not null default now()
);
create table tool_calls (
  id uuid primary key default gen_random_uuid(),
  turn_id uuid not null references turns (id),
  run_id uuid not null references runs (id),
  turn_number integer not null,
  call_index integer not null,
  tool text not null,
  args jsonb not null,
  result jsonb,
  status text not null check (status in ('started', 'completed', 'failed')),
  error_code text,
  duration_ms integer
);
create table outbox_messages (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references tenants (id),
  run_id uuid references runs (id),
  dedupe_key text not null unique,
  recipient text not null,
  subject text not null,
  body text not null,
  status text not null default 'queued' check (status in ('queued', 'delivered', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  delivered_at timestamptz
);
create table run_events (
  seq bigint generated always as identity primary key,
  run_id uuid not null references runs (id),
  tenant_id uuid not null,
  kind text not null,
  data jsonb not null default '{}',
  recorded_at timestamptz not null default now()
);
create function run_events_refuse() returns trigger language plpgsql as $$
begin
  raise exception 'run_events is append-only';
end
$$;
create trigger run_events_append_only before update or delete on run_events for each row execute function run_events_refuse();
alter table tenants owner to :"mixed_owner";
alter table pending_transactions owner to :"mixed_owner";
alter table expenses owner to :"mixed_owner";
alter table runs owner to :"mixed_owner";
alter table turns owner to :"mixed_owner";
alter table tool_calls owner to :"mixed_owner";
alter table outbox_messages owner to :"mixed_owner";
alter table run_events owner to :"mixed_owner";
grant select on tenants to :"mixed_app", :"mixed_dash";
grant select, insert on expenses to :"mixed_app";
grant select, update on pending_transactions to :"mixed_app";
grant select, insert, update on runs, turns, tool_calls, outbox_messages to :"mixed_app";
grant select, insert on run_events to :"mixed_app";
grant select on expenses to :"mixed_dash";
alter table expenses enable row level security;
alter table expenses force row level security;
create policy expenses_tenant on expenses
  using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
alter table pending_transactions enable row level security;
alter table pending_transactions force row level security;
create policy pending_tenant on pending_transactions
  using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

-- A schema where two tables could each be expenses: both have a unique idempotency key and RLS.
create schema ambiguous;
create table ambiguous.accounts (id text primary key);
create table ambiguous.ledger_entries (
  id bigint generated always as identity primary key,
  account_id text not null references ambiguous.accounts (id),
  idempotency_key text not null,
  amount_cents integer not null,
  unique (account_id, idempotency_key)
);
create table ambiguous.expense_items (
  id bigint generated always as identity primary key,
  account_id text not null references ambiguous.accounts (id),
  idempotency_key text not null,
  amount_cents integer not null,
  unique (account_id, idempotency_key)
);
alter table ambiguous.ledger_entries enable row level security;
create policy ledger_by_account on ambiguous.ledger_entries using (account_id = current_setting('app.account_id', true));
alter table ambiguous.expense_items enable row level security;
create policy items_by_account on ambiguous.expense_items using (account_id = current_setting('app.account_id', true));
`;

const mixedProfile = (): Profile => ({
  version: 1,
  schema: 'public',
  roles: { worker: mixedRoles.mixed_app, reader: mixedRoles.mixed_dash, owner: mixedRoles.mixed_owner },
  tenants: { table: 'tenants', key: 'id', name: 'name', setting: 'app.tenant_id', required: { slug: '{key}' } },
  expenses: {
    table: 'expenses',
    key: 'id',
    tenant: 'tenant_id',
    idempotency_key: ['tenant_id', 'idempotency_key'],
    amount: { column: 'amount_cents', unit: 'cents' },
    description: 'note',
    transaction: 'source_txn',
  },
  pending_transactions: {
    table: 'pending_transactions',
    key: 'id',
    tenant: 'tenant_id',
    amount: { column: 'amount_cents', unit: 'cents' },
    description: 'description',
    status: { column: 'status', values: { pending: 'pending', claimed: 'in_progress', processed: 'reconciled' } },
    claimed_by: 'claimed_by',
    lease_until: 'lease_until',
    processed_at: 'reconciled_at',
  },
  runs: {
    table: 'runs',
    key: 'id',
    tenant: 'tenant_id',
    worker: 'worker_name',
    status: { column: 'status', values: { running: 'running', finished: 'finished', failed: 'errored' } },
    total_turns: 'turn_count',
    error: 'error',
    started_at: 'started_at',
    finished_at: 'finished_at',
  },
  turns: {
    table: 'turns',
    key: 'id',
    run: 'run_id',
    number: 'turn_number',
    status: { column: 'status', values: { running: 'running', completed: 'completed', failed: 'failed' } },
    started_at: 'started_at',
  },
  tool_calls: {
    table: 'tool_calls',
    key: 'id',
    turn: 'turn_id',
    run: 'run_id',
    turn_number: 'turn_number',
    number: 'call_index',
    tool: 'tool',
    arguments: 'args',
    result: 'result',
    status: { column: 'status', values: { started: 'started', completed: 'completed', failed: 'failed' } },
    error_code: 'error_code',
    duration_ms: 'duration_ms',
  },
  outbox: {
    table: 'outbox_messages',
    key: 'id',
    tenant: 'tenant_id',
    run: 'run_id',
    dedup_key: 'dedupe_key',
    recipient: 'recipient',
    subject: 'subject',
    body: 'body',
    status: { column: 'status', values: { pending: 'queued', dispatched: 'delivered', failed: 'failed' } },
    attempts: 'attempts',
    next_attempt_at: 'next_attempt_at',
    dispatched_at: 'delivered_at',
  },
  events: { table: 'run_events', key: 'seq', run: 'run_id', tenant: 'tenant_id', type: 'kind', payload: 'data', created_at: 'recorded_at' },
});

let reference: TestDatabase;
let other: TestDatabase;
let mixed: TestDatabase;

beforeAll(async () => {
  [reference, other, mixed] = await Promise.all([createTestDatabase(), createTestDatabase({ empty: true }), createTestDatabase({ empty: true })]);
  await installOtherReconciler(other.url, otherRoleNames);
  await withPgClient(mixed.url, (client) => client.query(withVariables(mixedSchema, mixedRoles)));
});

afterAll(async () => {
  await reference?.dispose();
  await other?.dispose();
  await mixed?.dispose();
  if (other) await dropOtherRoles(other.adminUrl, otherRoleNames);
  if (mixed) {
    await withPgClient(mixed.adminUrl, async (client) => {
      for (const role of Object.values(mixedRoles)) await client.query(`drop role if exists ${ident(role)}`);
    });
  }
});

const draftOf = (url: string, schema?: string) => withPgClient(url, (client) => draftProfile(client, { schema }));

/** The draft with its lists, for a failure message that says what was decided from what. */
function shown(draft: DraftResult): string {
  return [...draft.undecided.map((item) => `undecided ${item.key}: ${item.why}`), ...draft.leftOut.map((item) => `left out ${item.key}: ${item.why}`)].join('\n');
}

describe('draftProfile', () => {
  it('drafts the reference schema to exactly the built-in reference profile', async () => {
    const draft = await draftOf(reference.url);
    expect(draft.undecided, shown(draft)).toEqual([]);
    expect(draft.profile).toEqual(referenceProfile);
    expect(draft.mapped).toContainEqual({
      key: 'expenses.idempotency_key',
      value: ['tenant_id', 'idempotency_key'],
      evidence: 'the unique key expenses_tenant_idempotency_key of expenses',
    });
    expect(draft.mapped.find((line) => line.key === 'tenants.setting')?.evidence).toMatch(/current_setting\('app\.tenant_id'\) in the policies/);
  });

  it('drafts fixtures/other-reconciler to exactly its profile.json (with this file\'s role names)', async () => {
    const draft = await draftOf(other.url);
    expect(draft.undecided, shown(draft)).toEqual([]);
    const { $schema: _hint, ...expected } = await otherProfile(otherRoleNames);
    expect(draft.profile).toEqual(expected);
    expect(draft.leftOut).toContainEqual({ key: 'runs.total_turns', why: 'no column of runs named total_turns, turn_count, turns_total, num_turns' });
    expect(draft.mapped.find((line) => line.key === 'runs.status.values.finished')).toEqual({
      key: 'runs.status.values.finished',
      value: 'completed',
      evidence: "the CHECK runs_status_check on runs.status allows 'completed', a word for finished (finished, completed, succeeded, done)",
    });
    expect(draft.mapped.find((line) => line.key === 'expenses.amount')?.evidence).toMatch(/numeric: major units/);
  });

  it('drafts a schema mixing the vocabulary the other way: tenants with uuid keys, outbox_messages, finished, a composite key in cents', async () => {
    const draft = await draftOf(mixed.url);
    expect(draft.undecided, shown(draft)).toEqual([]);
    expect(draft.profile).toEqual(mixedProfile());
    const fits = await withPgClient(mixed.url, (client) => profileProblems(client, mixedProfile()));
    expect(fits.problems).toEqual([]);
  });

  it('two tables that could each be expenses: a TODO naming both, which parseProfile refuses naming the key', async () => {
    const draft = await draftOf(mixed.url, 'ambiguous');
    const todo = draft.profile.expenses as { table: string };
    expect(todo.table).toMatch(/^TODO: 2 tables could be expenses: .*expense_items.*ledger_entries.*; write the one it is$/);
    expect(draft.undecided.map((item) => item.key)).toContain('expenses.table');
    expect(() => parseProfile(JSON.stringify(draft.profile), 'drafted.json')).toThrow(ProfileError);
    expect(() => parseProfile(JSON.stringify(draft.profile), 'drafted.json')).toThrow(/expenses\.table \(2 tables could be expenses/);
  });

  it('a status CHECK with no word for processed: a TODO for that value alone', async () => {
    const draft = await withPgClient(mixed.url, async (client) => {
      await client.query('begin');
      try {
        await client.query(`alter table pending_transactions drop constraint pending_transactions_status_check`);
        await client.query(`alter table pending_transactions add constraint pending_status check (status in ('pending', 'in_progress', 'archived'))`);
        return await draftProfile(client);
      } finally {
        await client.query('rollback');
      }
    });
    expect(draft.undecided.map((item) => item.key)).toEqual(['pending_transactions.status.values.processed']);
    const values = (draft.profile.pending_transactions as { status: { values: Record<string, string> } }).status.values;
    expect(values).toMatchObject({ pending: 'pending', claimed: 'in_progress' });
    expect(values.processed).toMatch(/^TODO: no value of the CHECK pending_status on pending_transactions\.status means processed \(it allows 'pending', 'in_progress', 'archived'/);
    expect(() => parseProfile(JSON.stringify(draft.profile), 'drafted.json')).toThrow(
      /profile drafted\.json has an undecided key: pending_transactions\.status\.values\.processed \(no value of the CHECK/,
    );
  });
});

describe('sor-drills profile', () => {
  it('writes the draft with --out ("$schema" first), prints each mapping with its evidence, and refuses to overwrite', async () => {
    const dir = scratchDir('profile-draft-');
    const file = path.join(dir, 'profile.json');
    const first = await runCli(['profile', '--db', reference.url, '--out', file]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toBe('');
    const text = readFileSync(file, 'utf8');
    expect(Object.keys(JSON.parse(text))[0]).toBe('$schema');
    expect(text).toMatch(/^\{\n {2}"\$schema": "[^"]*profile\.schema\.json",\n {2}"version": 1,/);
    const { $schema, ...written } = JSON.parse(text) as Profile;
    // A path from the file's folder to the published schema, so an editor finds it.
    expect(path.resolve(dir, String($schema))).toBe(path.resolve(import.meta.dirname, '../../profile.schema.json'));
    expect(written).toEqual(referenceProfile);
    expect(first.stderr).toContain('mapped     expenses.idempotency_key = ["tenant_id","idempotency_key"]  (the unique key expenses_tenant_idempotency_key of expenses)');
    expect(first.stderr).toMatch(/^mapped {5}runs\.status\.values\.finished = "finished"  \(the CHECK runs_status_check on runs\.status allows 'finished'\)$/m);
    expect(first.stderr).toMatch(/complete: nothing left undecided/);

    const again = await runCli(['profile', '--db', reference.url, '--out', file]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toBe(`sor-drills: --out ${file} already exists; add --force to overwrite it, or name another file; see sor-drills profile --help`);
    const forced = await runCli(['profile', '--db', reference.url, '--out', file, '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
  });

  it('prints the draft on stdout without --out, and reads DATABASE_URL like the other commands', async () => {
    const result = await runCli(['profile'], { env: { DATABASE_URL: other.url } });
    expect(result.exitCode, result.stderr).toBe(0);
    const { $schema: _hint, ...expected } = await otherProfile(otherRoleNames);
    const { $schema, ...printed } = JSON.parse(result.stdout) as Profile;
    expect(String($schema)).toMatch(/profile\.schema\.json$/);
    expect(printed).toEqual(expected);
    expect(result.stderr).toMatch(/^left out {3}runs\.total_turns {2}\(no column of runs named total_turns/m);
  });

  it('a draft with TODOs: written all the same, each undecided key listed, exit 4, and a run refuses the file', async () => {
    const dir = scratchDir('profile-todo-');
    const file = path.join(dir, 'profile.json');
    const result = await runCli(['profile', '--db', mixed.url, '--schema', 'ambiguous', '--out', file]);
    expect(result.exitCode, result.stderr).toBe(4);
    expect(existsSync(file)).toBe(true);
    expect(result.stderr).toMatch(/^undecided  expenses\.table  \(2 tables could be expenses/m);
    expect(result.stderr).toMatch(/keys? undecided: edit each TODO in .*profile\.json; a run refuses the profile until then/);
    expect(() => parseProfile(readFileSync(file, 'utf8'), file)).toThrow(/expenses\.table/);
  });

  it('needs a target, and refuses bad input before it connects', async () => {
    const none = await runCli(['profile']);
    expect(none).toMatchObject({ exitCode: 2, stdout: '' });
    expect(none.stderr).toBe('sor-drills: profile needs a target: --db URL (or DATABASE_URL); see sor-drills profile --help');
    const dir = scratchDir('profile-bad-');
    writeFileSync(path.join(dir, 'taken.json'), '{}');
    const taken = await runCli(['profile', '--db', 'postgres://u:pw@127.0.0.1:1/db', '--out', path.join(dir, 'taken.json')]);
    expect(taken.exitCode).toBe(2);
    expect(taken.stderr).toMatch(/already exists; add --force/);
    const schema = await runCli(['profile', '--db', reference.url, '--schema', '']);
    expect(schema.exitCode).toBe(2);
    expect(schema.stderr).toMatch(/^sor-drills: --schema "": expected a schema name/);
  });
});
