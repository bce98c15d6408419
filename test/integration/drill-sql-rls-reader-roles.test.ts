// The RLS drill's reader checks decide the verdict on their own. On a table with no
// rows nothing can leak, so a reader that skips the policies (a superuser, a BYPASSRLS
// role, the owner or a member of the owner while FORCE is off) would read exactly what
// a good reader reads: only the check of the reader stands between it and a verdict
// that is not fail. Each test makes its own role (roles are cluster-wide, and other test
// files share the cluster) and passes it as the drill's reader.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { noProcesses } from '../helpers/drills.js';
import { scratchDir } from '../helpers/scratch.js';
import { rlsIdentityFlipTest } from '../../src/drills/rls-identity-flip-test.js';
import { runDrill } from '../../src/drills/runner.js';
import type { DrillResult, RunnerEvent } from '../../src/drills/types.js';
import { ident, withPgClient } from '../../src/postgres/pg.js';
import { defaultRoles } from '../../src/postgres/roles.js';

/** Expenses emptied: nothing can leak. */
let empty: TestDatabase;
/** Bob's expenses deleted: only Alice's rows. */
let aliceOnly: TestDatabase;
/** The seed as it is: Alice's 47 and Bob's 31. */
let seeded: TestDatabase;
/** Alice's expenses deleted, a tenant Carol with one expense: Alice's context must return none. */
let bobAndCarol: TestDatabase;

beforeAll(async () => {
  [empty, aliceOnly, seeded, bobAndCarol] = await Promise.all([
    createTestDatabase(),
    createTestDatabase(),
    createTestDatabase(),
    createTestDatabase(),
  ]);
  await withPgClient(empty.url, (client) => client.query('delete from expenses'));
  await withPgClient(aliceOnly.url, (client) => client.query(`delete from expenses where tenant_id <> 'alice'`));
  await withPgClient(bobAndCarol.url, async (client) => {
    await client.query(`delete from expenses where tenant_id = 'alice'`);
    await client.query(`insert into tenants (id, name) values ('carol', 'Carol GmbH')`);
    await client.query(
      `insert into expenses (tenant_id, idempotency_key, amount_cents, description) values ('carol', 'carol-1', 1200, 'train')`,
    );
  });
});
afterAll(async () => {
  await Promise.all([empty?.dispose(), aliceOnly?.dispose(), seeded?.dispose(), bobAndCarol?.dispose()]);
});

const run = (db: TestDatabase, text: string) => withPgClient(db.url, (client) => client.query(text));

/** Runs the drill with `reader` as its reader role, the way the runner does, keeping its events. */
async function runAs(db: TestDatabase, reader: string): Promise<{ result: DrillResult; events: RunnerEvent[] }> {
  const events: RunnerEvent[] = [];
  const result = await runDrill(rlsIdentityFlipTest, {
    url: db.url,
    display: db.name,
    database: db.name,
    embedded: true,
    roles: { ...defaultRoles, reader },
    options: { paceMs: 0, claimHoldMs: 1_500, evidenceRoot: path.join(scratchDir('evidence-'), 'oracle') },
    operator: { request: async (_ask, perform) => perform() },
    breaks: new Set(),
    system: noProcesses,
    emit: (event) => events.push(event),
  });
  return { result, events };
}

/** What an observation recorded: its value as JSON and whether it was ok. */
function observed(events: RunnerEvent[], label: string): { value: unknown; ok?: boolean } {
  const found = events.find((event) => event.type === 'observation' && event.label === label);
  if (!found || found.type !== 'observation') throw new Error(`no observation ${label}`);
  return { value: JSON.parse(found.value), ok: found.ok };
}

/** A fresh role for one test, dropped afterwards whatever happened. */
async function withRole<T>(attributes: string, body: (role: string) => Promise<T>): Promise<T> {
  const role = `sor_t_reader_${randomBytes(4).toString('hex')}`;
  await run(seeded, `create role ${ident(role)} nologin ${attributes}`);
  try {
    return await body(role);
  } finally {
    await run(seeded, `drop role ${ident(role)}`);
  }
}

/** FORCE ROW LEVEL SECURITY off on expenses for the body, back on afterwards. */
async function withoutForce<T>(db: TestDatabase, body: () => Promise<T>): Promise<T> {
  await run(db, 'alter table expenses no force row level security');
  try {
    return await body();
  } finally {
    await run(db, 'alter table expenses force row level security');
  }
}

/** The reasons the reader's own attributes gave, and nothing from a read: the verdict came from the check. */
function expectOnlyRoleReasons(result: DrillResult, fragments: string[]) {
  expect(result.verdict, result.reason).toBe('fail');
  const reasons = (result.reason ?? '').replace(/^tenant isolation broken: /, '').split('; ');
  expect(reasons).toEqual(fragments);
}

describe('rls_identity_flip_test: the reader checks decide even where nothing leaks', () => {
  it('a reader that obeys the policies on an empty table: could not determine (so each fail below is the check alone)', async () => {
    await withRole('in role tenant_reader', async (role) => {
      const { result, events } = await runAs(empty, role);
      expect(result.verdict, result.reason).toBe('could-not-determine');
      expect(result.reason).toContain('fewer than two tenants');
      expect(observed(events, 'read_alice').value).toEqual({ seen: {}, total: 0 });
      expect(observed(events, 'read_unset').value).toEqual({ seen: {}, total: 0 });
    });
  });

  it('a superuser reader fails', async () => {
    await withRole('superuser', async (role) => {
      const { result, events } = await runAs(empty, role);
      expectOnlyRoleReasons(result, [`${role} is a superuser`]);
      expect(observed(events, 'reader_superuser')).toEqual({ value: true, ok: false });
      expect(observed(events, 'read_unset').value).toEqual({ seen: {}, total: 0 });
    });
  });

  it('a BYPASSRLS reader fails', async () => {
    await withRole('bypassrls in role tenant_reader', async (role) => {
      const { result, events } = await runAs(empty, role);
      expectOnlyRoleReasons(result, [`${role} has BYPASSRLS`]);
      expect(observed(events, 'reader_bypassrls')).toEqual({ value: true, ok: false });
    });
  });

  it('the owner as reader with FORCE off fails', async () => {
    await withoutForce(empty, async () => {
      const { result, events } = await runAs(empty, defaultRoles.owner);
      expectOnlyRoleReasons(result, [`${defaultRoles.owner} owns expenses and RLS is not forced`]);
      expect(observed(events, 'reader_is_owner')).toEqual({ value: true, ok: false });
      expect(observed(events, 'rls_forced').value).toBe(false);
    });
  });

  it('a member of the owner role as reader with FORCE off fails (pg_has_role, not only relowner)', async () => {
    await withRole(`in role ${ident(defaultRoles.owner)}`, async (role) => {
      await withoutForce(empty, async () => {
        const { result, events } = await runAs(empty, role);
        expectOnlyRoleReasons(result, [`${role} is a member of ${defaultRoles.owner}, which owns expenses, and RLS is not forced`]);
        expect(observed(events, 'reader_is_owner')).toEqual({ value: false, ok: true });
        expect(observed(events, 'reader_has_owner_privileges')).toEqual({ value: true, ok: false });
      });
    });
  });

  it('on Alice-only rows a superuser reader fails for being a superuser, whatever else it saw', async () => {
    await withRole('superuser', async (role) => {
      const { result, events } = await runAs(aliceOnly, role);
      expect(result.verdict, result.reason).toBe('fail');
      const reasons = (result.reason ?? '').replace(/^tenant isolation broken: /, '').split('; ');
      expect(reasons[0]).toBe(`${role} is a superuser`);
      expect(observed(events, 'truth').value).toEqual({ alice: 47 });
    });
  });
});

describe('rls_identity_flip_test: a member of the owner is fine while FORCE is on', () => {
  it('passes on the seed with a member of the owner as reader, RLS forced', async () => {
    await withRole(`in role ${ident(defaultRoles.owner)}`, async (role) => {
      const { result, events } = await runAs(seeded, role);
      expect(result.verdict, result.reason).toBe('pass');
      expect(observed(events, 'reader_has_owner_privileges')).toEqual({ value: true, ok: true });
      expect(result.evidence).toContain(`(as ${role}: not superuser, not BYPASSRLS; RLS forced)`);
    });
  });
});

describe('rls_identity_flip_test: the pass line is built from what each context returned', () => {
  it('flips between the two tenants with the most expenses, whoever they are, one row said as one', async () => {
    const { result } = await runAs(bobAndCarol, defaultRoles.reader);
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(
      'Bob context returned 31 rows (all Bob). Carol context returned 1 row (all Carol). Unset context returned 0 rows. ' +
        'No cross-tenant leakage in any flip (as tenant_reader: not superuser, not BYPASSRLS; RLS forced).',
    );
  });
});
