// What a drill writes into the target before it acts, so it can run again on the
// same target: a tenant of its own (its rows never touch Alice's and Bob's, which
// the RLS drill counts) and pending transactions for it, numbered after the
// highest T-number already there. Written as the connecting role, inside the
// tenant's RLS context (a non-superuser owner is subject to the forced policies).
import { randomBytes } from 'node:crypto';
import { inTransaction, withPgClient } from '../postgres/pg.js';
import type { DrillContext } from './types.js';

export interface DrillTenant {
  id: string;
  /** The Worker name the drill's runs use: unique, so no earlier crashed run is resumed by mistake. */
  worker: string;
}

export async function createDrillTenant(ctx: DrillContext, label: string): Promise<DrillTenant> {
  const suffix = randomBytes(3).toString('hex');
  const id = `drill-${label}-${suffix}`;
  ctx.showSql(`insert into tenants (id, name) values ('${id}', 'Drill tenant for ${ctx.key}')`);
  await withPgClient(ctx.url, (client) =>
    client.query(`insert into tenants (id, name) values ($1, $2)`, [id, `Drill tenant for ${ctx.key}`]),
  );
  ctx.observe('tenant', id);
  return { id, worker: `reconciler-${label}-${suffix}` };
}

export interface PendingInput {
  amount_cents: number;
  description: string;
}

/** Inserts pending transactions for the tenant and returns their ids, in claim order. */
export async function insertPending(ctx: DrillContext, tenant: string, items: PendingInput[]): Promise<string[]> {
  ctx.showSql(`insert into pending_transactions (id, tenant_id, amount_cents, description) values ...  -- ${items.length} rows`);
  return withPgClient(ctx.url, (client) =>
    inTransaction(client, async () => {
      await client.query(`select set_config('app.tenant_id', $1, true)`, [tenant]);
      // The lock keeps two drill runs on one target from picking the same numbers.
      await client.query(`select pg_advisory_xact_lock(hashtext('sor-drills pending numbers'))`);
      const { rows } = await client.query<{ next: number }>(
        `select coalesce(max(substring(id from '^T-(\\d+)$')::int), 100) + 1 as next
           from pending_transactions where id ~ '^T-\\d+$'`,
      );
      let next = Math.max(rows[0]?.next ?? 101, 111);
      const ids: string[] = [];
      for (const item of items) {
        const id = `T-${next}`;
        next += 1;
        await client.query(
          `insert into pending_transactions (id, tenant_id, amount_cents, description) values ($1, $2, $3, $4)`,
          [id, tenant, item.amount_cents, item.description],
        );
        ids.push(id);
      }
      return ids;
    }),
  );
}

export const sampleTransactions: PendingInput[] = [
  { amount_cents: 1850, description: 'Coffee beans' },
  { amount_cents: 2499, description: 'Printer paper' },
  { amount_cents: 8420, description: 'Train ticket' },
  { amount_cents: 6375, description: 'Team lunch' },
  { amount_cents: 1200, description: 'Software subscription' },
];
