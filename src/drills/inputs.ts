// What a drill writes into the target before it acts, so it can run again on the
// same target: a tenant of its own (its rows never touch Alice's and Bob's, which
// the RLS drill counts) and pending transactions for it. Written as the connecting
// role, inside the tenant's RLS context (a non-superuser owner is subject to the
// forced policies), through the profile's names.
//
// Keys: a tenant key without a default is made here (`drill-<label>-<hex>`, or a
// uuid); one with a default is left to it and read back. Pending transactions on a
// text key without a default are numbered after the highest T-number already there
// (T-111, ...), as the reference seed numbers them; other keys are the column's
// default or a made one.
import { randomBytes } from 'node:crypto';
import { inTransaction, withPgClient } from '../postgres/pg.js';
import { amountValue, insertList, newKey, requiredInsert } from '../postgres/profile/index.js';
import { type Identifier, join, sql } from '../postgres/sql.js';
import { shownSql, withDrillClient } from './sql.js';
import type { DrillContext } from './types.js';

export interface DrillTenant {
  /** The tenant's key: what the session setting holds and what SOR_TENANT gets. */
  id: string;
  /** The Worker name the drill's runs use: unique, so no earlier crashed run is resumed by mistake. */
  worker: string;
}

/** A token unique to a row whose key the column's default makes: what a `required` template's {key} gets. */
function rowToken(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** The INSERT's columns, its values and the `required` templates' columns, as one statement. */
function insertRow(
  table: Identifier,
  key: Identifier,
  pairs: ReadonlyArray<readonly [Identifier | undefined, unknown]>,
  required: { columns: Identifier[]; values: string[] },
) {
  const { columns, values } = insertList([...pairs, ...required.columns.map((column, index) => [column, required.values[index]] as const)]);
  return sql`insert into ${table} (${columns}) values (${values}) returning ${key}::text as id`;
}

export async function createDrillTenant(ctx: DrillContext, label: string): Promise<DrillTenant> {
  const t = ctx.profile.names.tenants;
  const suffix = randomBytes(3).toString('hex');
  const given = newKey(ctx.profile.keys.tenants, `drill-${label}`);
  const pairs = [
    [given === undefined ? undefined : t.key, given],
    [t.name, `Drill tenant for ${ctx.key}`],
  ] as const;
  const token = given ?? rowToken(`drill-${label}`);
  const required = requiredInsert(t, { key: token, tenant: given }, [t.key, ...(t.name ? [t.name] : [])]);
  const q = insertRow(t.table, t.key, pairs, required);
  ctx.showSql(shownSql(q));
  const id = await withDrillClient(ctx, async (client) => (await client.query<{ id: string }>(q)).rows[0]!.id);
  ctx.observe('tenant', id);
  return { id, worker: `reconciler-${label}-${suffix}` };
}

export interface PendingInput {
  amount_cents: number;
  description: string;
}

/** A text key without a default: the reference's T-numbers fit it. */
function numberedKey(key: { type: string; hasDefault: boolean }): boolean {
  return !key.hasDefault && (key.type === 'text' || /^(character varying|varchar)/.test(key.type));
}

/** Inserts pending transactions for the tenant and returns their keys, in claim order (key order). */
export async function insertPending(ctx: DrillContext, tenant: string, items: PendingInput[]): Promise<string[]> {
  const n = ctx.profile.names;
  const p = n.pending_transactions;
  const keyInfo = ctx.profile.keys.pending_transactions;
  const numbered = numberedKey(keyInfo);
  const shownColumns = join([...(keyInfo.hasDefault ? [] : [p.key]), p.tenant, p.amount, ...(p.description ? [p.description] : [])]);
  ctx.showSql(shownSql(`insert into ${p.table} (${shownColumns.text}) values ...  -- ${items.length} rows`));
  // A connection of its own: once a session has set the tenant setting, even locally, it reads
  // '' where a fresh one reads NULL (PITFALLS.md), so the drill's shared one never sets it.
  return withPgClient(ctx.url, (client) =>
    inTransaction(client, async () => {
      await client.query(sql`select set_config(${n.setting}, ${tenant}, true)`);
      let next = 0;
      if (numbered) {
        // The lock keeps two drill runs on one target from picking the same numbers.
        await client.query(`select pg_advisory_xact_lock(hashtext('sor-drills pending numbers'))`);
        const { rows } = await client.query<{ next: number }>(
          sql`select coalesce(max(substring(${p.key} from ${'^T-(\\d+)$'}::text)::int), 100) + 1 as next
                from ${p.table} where ${p.key} ~ ${'^T-\\d+$'}::text`,
        );
        next = Math.max(rows[0]?.next ?? 101, 111);
      }
      const ids: string[] = [];
      for (const item of items) {
        const given = numbered ? `T-${next++}` : newKey(keyInfo, 'T');
        const pairs = [
          [given === undefined ? undefined : p.key, given],
          [p.tenant, tenant],
          [p.amount, amountValue(p, item.amount_cents)],
          [p.description, item.description],
        ] as const;
        const alreadySet = [p.key, p.tenant, p.amount, ...(p.description ? [p.description] : [])];
        const required = requiredInsert(p, { key: given ?? rowToken('drill-pending'), tenant }, alreadySet);
        const { rows } = await client.query<{ id: string }>(insertRow(p.table, p.key, pairs, required));
        ids.push(rows[0]!.id);
      }
      if (numbered) return ids;
      // Keys the default made (or random uuids) are claimed in key order, not insertion order.
      const { rows } = await client.query<{ id: string }>(
        sql`select ${p.key}::text as id from ${p.table} where ${p.key}::text = any(${ids}::text[]) order by ${p.table}.${p.key}`,
      );
      return rows.map((row) => row.id);
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
