// The RLS drill against policies that fooled it before: a policy that lets the worker
// role see every tenant, a LIKE comparison that '%' matches, a reader refused SELECT
// (not a leak: the drill cannot look), and a current_setting without missing_ok that
// refuses the unset read (fails closed: no row shown). Each sabotage is undone afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOne } from '../helpers/drills.js';
import { rlsIdentityFlipTest } from '../../src/drills/rls-identity-flip-test.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { withPgClient } from '../../src/postgres/pg.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.dispose();
});

const sql = (text: string) => withPgClient(db.url, (client) => client.query(text));

const referencePolicy =
  `create policy expenses_tenant_isolation on expenses for all to public ` +
  `using (tenant_id = nullif(current_setting('app.tenant_id', true), '')) ` +
  `with check (tenant_id = nullif(current_setting('app.tenant_id', true), ''))`;

/** The reference tenant policy replaced by `using` for the body, restored afterwards. */
async function withPolicy<T>(using: string, body: () => Promise<T>): Promise<T> {
  await sql('drop policy expenses_tenant_isolation on expenses');
  await sql(`create policy expenses_tenant_isolation on expenses for all to public using (${using})`);
  try {
    return await body();
  } finally {
    await sql('drop policy expenses_tenant_isolation on expenses');
    await sql(referencePolicy);
  }
}

async function sabotaged(apply: string, undo: string, events: RunnerEvent[] = []) {
  await sql(apply);
  try {
    return await runOne(rlsIdentityFlipTest, db, { events });
  } finally {
    await sql(undo);
  }
}

function observed(events: RunnerEvent[], label: string): { value: unknown; ok?: boolean } {
  const found = events.find((event) => event.type === 'observation' && event.label === label);
  if (!found || found.type !== 'observation') throw new Error(`no observation ${label}`);
  return { value: JSON.parse(found.value), ok: found.ok };
}

const referenceLine =
  'Alice context returned 47 rows (all Alice). Bob context returned 31 rows (all Bob). Unset context returned 0 rows. ' +
  'No cross-tenant leakage in any flip (as tenant_reader: not superuser, not BYPASSRLS; RLS forced).';

describe('rls_identity_flip_test: more contexts, more roles', () => {
  it('passes on the reference schema with the seed line, the worker flip and the pattern context clean', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(rlsIdentityFlipTest, db, { events });
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(referenceLine);
    expect(observed(events, 'read_pattern')).toEqual({ value: { seen: {}, total: 0 }, ok: true });
    expect(observed(events, 'worker_read_alice')).toEqual({ value: { seen: { alice: 47 }, total: 47 }, ok: true });
    expect(observed(events, 'worker_read_pattern')).toEqual({ value: { seen: {}, total: 0 }, ok: true });
  });

  it('fails naming the worker role when a policy lets worker_write read every tenant', async () => {
    const events: RunnerEvent[] = [];
    const result = await sabotaged(
      'create policy worker_reads_all on expenses for select to worker_write using (true)',
      'drop policy worker_reads_all on expenses',
      events,
    );
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toMatch(/^tenant isolation broken: as worker_write: alice context also saw 31 bob/);
    expect(result.reason).toContain('as worker_write: unset context saw 78 rows');
    // The reader itself was clean: the leak is the worker's alone.
    expect(result.reason).not.toMatch(/(^|; )alice context/);
    expect(observed(events, 'worker_read_bob').ok).toBe(false);
  });

  it("fails when a LIKE policy shows every tenant to the pattern '%'", async () => {
    const result = await withPolicy(`tenant_id like nullif(current_setting('app.tenant_id', true), '')`, () =>
      runOne(rlsIdentityFlipTest, db),
    );
    expect(result.verdict, result.reason).toBe('fail');
    expect(result.reason).toMatch(/(^tenant isolation broken: |; )pattern context saw 78 rows \(47 alice, 31 bob\)/);
    expect(result.reason).toContain('as worker_write: pattern context saw 78 rows');
  });

  it('could not determine, not broken, when the reader may not read expenses (42501)', async () => {
    const result = await sabotaged('revoke select on expenses from tenant_reader', 'grant select on expenses to tenant_reader');
    expect(result.verdict, result.reason).toBe('could-not-determine');
    expect(result.reason).toContain('tenant_reader may not read expenses (42501 in the alice, bob, unset, pattern contexts)');
    expect(result.reason).toContain('grant it SELECT on expenses');
    expect(result.reason).not.toMatch(/isolation broken/);
  });

  it('passes when current_setting without missing_ok refuses the unset read (42704 fails closed)', async () => {
    const events: RunnerEvent[] = [];
    const result = await withPolicy(`tenant_id = current_setting('app.tenant_id')`, () =>
      runOne(rlsIdentityFlipTest, db, { events }),
    );
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(referenceLine);
    expect(observed(events, 'read_unset')).toEqual({
      value: { seen: {}, total: 0, code: '42704', failsClosed: true },
      ok: true,
    });
    expect(result.notes).toContain('tenant_reader, unset context: refused with 42704: fails closed');
  });

  it('judges on the reader alone, and says so, when the worker role has no SELECT on expenses', async () => {
    const events: RunnerEvent[] = [];
    const result = await sabotaged(
      'revoke select on expenses from worker_write',
      'grant select on expenses to worker_write',
      events,
    );
    expect(result.verdict, result.reason).toBe('pass');
    expect(result.evidence).toBe(referenceLine);
    expect(observed(events, 'worker_worker_write_reads_expenses').value).toBe(false);
    expect(result.notes).toContain("worker_write has no SELECT on expenses: the reader's flip decides alone");
    expect(events.some((event) => event.type === 'observation' && event.label.startsWith('worker_read_'))).toBe(false);
  });
});
