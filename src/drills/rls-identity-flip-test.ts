// Drill 7, rls_identity_flip_test (Lesson 7, RLS). As a role that is neither
// superuser nor BYPASSRLS (and neither the table owner nor a member of it, unless
// RLS is forced), read the expenses table with the tenant context set to each of two
// tenants, and unset, and with a context that names no tenant but is a LIKE pattern
// ('%'); each context must see exactly its own rows, and none when unset or a pattern.
// The same flip runs as the worker role (the one the tool server uses) when it may
// read expenses: a policy scoped to that role leaks just as well.
//
// Everything comes from the target: the two tenants are the two with the most
// expenses (filled from the tenants table when fewer have rows), and the expected
// counts are read first, as the connecting (owner) role, outside RLS. The names are
// the profile's (the expenses table, its tenant column, the session setting the
// policies read). The reader's attributes decide the verdict on their own: on data
// where nothing could leak, a reader that skips the policies still proves nothing.
import { ident, sqlState, errorMessage, withPgClient } from '../postgres/pg.js';
import { identifier, type Sql, sql } from '../postgres/sql.js';
import { CouldNotDetermine } from './runner.js';
import { withEvidence } from './evidence.js';
import { query, shownSql } from './sql.js';
import { need, type Drill, type DrillContext, type Step, type VerdictResult } from './types.js';

interface ContextRead {
  /** rows per tenant key seen in this context */
  seen: Record<string, number>;
  total: number;
  code?: string;
  /** Where the attempt failed: becoming the role, or the read itself. */
  stage?: 'role' | 'read';
  /**
   * A read refused in a context that names no tenant: no row shown, the policy fails
   * closed (the unset context's 42704, or the policy's own cast refusing the pattern).
   */
  failsClosed?: true;
  /** Why a refusal other than the unset context's 42704 counts as no rows visible. */
  closedBy?: string;
}

/** The contexts of one flip: each of two tenants, none, and a pattern that names no tenant. */
const slots = ['first', 'second', 'unset', 'pattern'] as const;
type Slot = (typeof slots)[number];
const tenantSlots = ['first', 'second'] as const;
type TenantSlot = (typeof tenantSlots)[number];
type Reads = Partial<Record<Slot, ContextRead>>;

/** A tenant the flip reads as: its key (what the setting holds) and the word it is shown as. */
interface FlipTenant {
  id: string;
  word: string;
}

/** One context of a flip: its name in observations and reasons, the setting's value, and whose rows it owns. */
interface Context {
  slot: Slot;
  name: string;
  /** The value the session setting gets; null leaves it unset. */
  value: string | null;
  /** The tenant whose rows this context must see; null: none. */
  own: string | null;
}

interface State {
  /** The reader role's attributes: each one would let it skip the policies. */
  readerSuperuser: boolean;
  readerBypassrls: boolean;
  /** The role that owns expenses, as pg_class says. */
  owner?: string;
  readerIsOwner: boolean;
  /**
   * pg_has_role(reader, owner, 'USAGE'): the reader has the owner's privileges (it is the
   * owner or an inheriting member of it), which for RLS counts as owning the table.
   */
  readerHasOwnerPrivileges: boolean;
  /** Row-level security on expenses, as pg_class says. */
  rlsEnabled: boolean;
  rlsForced: boolean;
  /** The policies on expenses, which the break drops inside its rolled-back transaction. */
  policies: string[];
  /** Rows per tenant key, counted outside RLS: the expected answers. */
  truth: Record<string, number>;
  /** Whether the connecting role skips RLS itself, so that its counts are the truth. */
  countedOutsideRls: boolean;
  /** The two tenants of the flip: the most expenses first. */
  tenants: Partial<Record<TenantSlot, FlipTenant>>;
  /** How each tenant key is shown: the key itself when it is text, else the tenant's name when the profile maps one. */
  words: Record<string, string>;
  /** What the reader saw in each context. */
  reads: Reads;
  /** Whether the worker role exists and has SELECT on expenses, so that its flip runs. */
  workerReadsExpenses: boolean;
  /** What the worker role saw in each context. */
  workerReads: Reads;
}

function contextOf(state: State, slot: Slot): Context | undefined {
  if (slot === 'unset') return { slot, name: 'unset', value: null, own: null };
  if (slot === 'pattern') return { slot, name: 'pattern', value: '%', own: null };
  const tenant = state.tenants[slot];
  return tenant && { slot, name: tenant.word, value: tenant.id, own: tenant.id };
}

async function readAs(ctx: DrillContext, role: string, policies: string[], context: Context): Promise<ContextRead> {
  const e = ctx.profile.names.expenses;
  // A deliberate break: the policy replaced by a permissive one, inside the rolled-back transaction.
  const prelude = ctx.broken
    ? policies
        .map((name) => sql`drop policy ${identifier(name)} on ${e.table}`)
        .concat([sql`create policy sor_drills_break_leak on ${e.table} for select using (true)`])
    : [];
  let seen: Record<string, number> = {};
  let total = 0;
  const read = sql`select ${e.tenant}::text as tenant_id, count(*)::int as n from ${e.table} group by 1 order by 1`;
  const attempt = await attemptAsRows(ctx, role, context.value, read, prelude, (rows) => {
    seen = Object.fromEntries(rows.map((row) => [row.tenant_id, row.n]));
    total = rows.reduce((sum, row) => sum + row.n, 0);
  });
  if (!attempt) return { seen, total };
  // A missing setting refused (current_setting without missing_ok) shows no row: that fails closed.
  if (context.slot === 'unset' && attempt.code === '42704' && attempt.stage === 'read') {
    return { seen: {}, total: 0, code: attempt.code, failsClosed: true };
  }
  // A policy that casts the setting (to uuid, to bigint) refuses '%' with 22P02: the read itself
  // casts nothing, so the refusal is the policy's, and it shows no row: a closed door, not a leak.
  if (context.slot === 'pattern' && attempt.code === '22P02' && attempt.stage === 'read') {
    const closedBy = `the policy's cast of ${ctx.profile.names.setting} refused '%' (${attempt.message})`;
    return { seen: {}, total: 0, code: attempt.code, failsClosed: true, closedBy };
  }
  return { seen, total, code: attempt.code, stage: attempt.stage };
}

/** Reads one context as `role`, observed under `label`: exactly its own rows, none where no tenant is named. */
async function flip(ctx: DrillContext, state: State, role: string, context: Context, label: string): Promise<ContextRead> {
  const read = await readAs(ctx, role, state.policies, context);
  const own = context.own;
  const expected = own ? (state.truth[own] ?? 0) : 0;
  const clean = read.total === expected && read.total === (own ? (read.seen[own] ?? 0) : 0);
  ctx.observe(label, read, (!read.code || read.failsClosed === true) && clean);
  if (read.failsClosed) {
    ctx.notes.push(
      read.closedBy
        ? `${role}, ${context.name} context: refused with ${read.code}: ${read.closedBy}: no rows visible, fails closed`
        : `${role}, ${context.name} context: refused with ${read.code}: fails closed`,
    );
  }
  return read;
}

/** Reads as `role` inside BEGIN ... ROLLBACK, with the tenant context set (or not). */
async function attemptAsRows(
  ctx: DrillContext,
  role: string,
  tenant: string | null,
  read: Sql,
  prelude: Sql[],
  onRows: (rows: Array<{ tenant_id: string; n: number }>) => void,
): Promise<{ code: string; stage: 'role' | 'read'; message: string } | undefined> {
  return withPgClient(ctx.url, async (client) => {
    await client.query('begin');
    try {
      for (const statement of prelude) {
        ctx.showSql(shownSql(statement));
        await client.query(statement);
      }
      ctx.showSql(`set local role ${ident(role)}`);
      try {
        await client.query(`set local role ${ident(role)}`);
      } catch (error) {
        return { code: sqlState(error) ?? 'unknown', stage: 'role', message: errorMessage(error) };
      }
      if (tenant !== null) {
        const setting = sql`select set_config(${ctx.profile.names.setting}, ${tenant}, true)`;
        ctx.showSql(shownSql(setting));
        await client.query(setting);
      }
      ctx.showSql(shownSql(read));
      const { rows } = await client.query<{ tenant_id: string; n: number }>(read);
      onRows(rows);
      return undefined;
    } catch (error) {
      return { code: sqlState(error) ?? 'unknown', stage: 'read', message: errorMessage(error) };
    } finally {
      await client.query('rollback').catch(() => {});
    }
  });
}

function leakText(read: ContextRead, own: string | null, words: Record<string, string>): string {
  const others = Object.entries(read.seen).filter(([tenant]) => tenant !== own);
  return others.map(([tenant, n]) => `${n} ${words[tenant] ?? tenant}`).join(', ');
}

/** A tenant key is shown as itself when it is text ('alice'); a uuid or number reads better as the tenant's name. */
function keyIsText(type: string): boolean {
  return type === 'text' || /^(character varying|varchar|character|char)\b/.test(type);
}

/**
 * The two tenants of the flip: the two with the most expenses (ties in key order), then,
 * when fewer than two have rows, tenants from the tenants table in key order. Also how
 * every tenant key met is shown.
 */
async function chooseTenants(ctx: DrillContext, truth: Record<string, number>): Promise<{ chosen: string[]; words: Record<string, string> }> {
  const t = ctx.profile.names.tenants;
  const chosen = Object.entries(truth)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, 2)
    .map(([id]) => id);
  if (chosen.length < 2) {
    try {
      const more = await query<{ id: string }>(
        ctx,
        sql`select ${t.key}::text as id from ${t.table} where not (${t.key}::text = any(${chosen}::text[]))
             order by ${t.key}::text collate "C" limit ${2 - chosen.length}`,
      );
      chosen.push(...more.map((row) => row.id));
    } catch (error) {
      // Only the wording of a verdict that cannot pass anyway (fewer than two tenants have rows) depends on it.
      ctx.notes.push(`the tenants table ${t.tableName} could not be read for a second tenant: ${errorMessage(error)}`);
    }
  }
  const ids = [...new Set([...Object.keys(truth), ...chosen])];
  const names = new Map<string, string>();
  if (!keyIsText(ctx.profile.keys.tenants.type) && t.name && ids.length > 0) {
    const rows = await query<{ id: string; name: string | null }>(
      ctx,
      sql`select ${t.key}::text as id, ${t.name}::text as name from ${t.table} where ${t.key}::text = any(${ids}::text[])`,
    );
    for (const row of rows) if (row.name) names.set(row.id, row.name);
  }
  const words = Object.fromEntries(ids.map((id) => [id, names.get(id) ?? id]));
  // The two flipped tenants must read apart, and apart from the unset and pattern contexts.
  const shown = chosen.map((id) => words[id]!);
  if (new Set(shown).size < shown.length || shown.some((word) => word === 'unset' || word === 'pattern')) {
    for (const id of chosen) words[id] = id;
  }
  return { chosen, words };
}

export const rlsIdentityFlipTest: Drill<State> = {
  number: 7,
  key: 'rls_identity_flip_test',
  title: 'RLS identity flip',
  lesson: 7,
  habit: 'row-level security per tenant',
  tables: ['expenses'],
  needs: [{ table: 'expenses', columns: ['tenant_id'] }],
  breakDescription: 'the tenant policy on expenses replaced by a permissive USING (true) policy (inside a rolled-back transaction): rows leak',
  fix: (n) =>
    `enable and force row-level security on ${n.expenses.tableName} with a policy USING (${n.expenses.tenant.name} = ` +
    `nullif(current_setting('${n.setting}', true), '')), and read as a role that is neither superuser nor BYPASSRLS`,
  init: () => ({
    readerSuperuser: false,
    readerBypassrls: false,
    readerIsOwner: false,
    readerHasOwnerPrivileges: false,
    rlsEnabled: false,
    rlsForced: false,
    policies: [],
    truth: {},
    countedOutsideRls: false,
    tenants: {},
    words: {},
    reads: {},
    workerReadsExpenses: false,
    workerReads: {},
  }),
  steps: [
    {
      id: 'role-check',
      title: 'Check the reader role',
      why: 'Superusers and BYPASSRLS roles skip every policy, and the table owner (or a member of it) skips them unless RLS is forced: such a role proves nothing.',
      hint: {
        look: 'reader_superuser and reader_bypassrls must be false, and reader_is_owner false unless rls_forced is true. rls_enabled must be true and policies must list the tenant policy; these decide before any row is read.',
        mistake: 'Running the RLS test as a superuser or as the table owner. Superusers and BYPASSRLS roles skip every policy, and the owner skips them unless FORCE ROW LEVEL SECURITY is set, so the test passes without proving anything.',
      },
      sql: (n) => [
        `select rolsuper, rolbypassrls from pg_roles where rolname = '<reader>'`,
        `select relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner), pg_has_role('<reader>', relowner, 'USAGE') from pg_class where oid = '${n.expenses.table}'::regclass`,
        `select has_table_privilege('<worker>', '${n.expenses.table}', 'select')`,
      ],
      async run(ctx, state) {
        const e = ctx.profile.names.expenses;
        const roles = await query<{ rolsuper: boolean; rolbypassrls: boolean }>(
          ctx,
          sql`select rolsuper, rolbypassrls from pg_roles where rolname = ${ctx.roles.reader}`,
        );
        const role = roles[0];
        if (!role) {
          const where = ctx.profile.given ? `the profile's roles.reader in ${ctx.profile.source}` : '--reader-role';
          throw new CouldNotDetermine(`the reader role ${ctx.roles.reader} does not exist (name it with ${where})`);
        }
        const table = await query<TableSecurity>(
          ctx,
          sql`select c.relrowsecurity as enabled, c.relforcerowsecurity as forced, pg_get_userbyid(c.relowner) as owner,
                     pg_has_role(${ctx.roles.reader}::name, c.relowner, 'USAGE') as owner_privileges,
                     array(select polname::text from pg_policy where polrelid = c.oid order by polname) as policies
                from pg_class c where c.oid = ${e.table.toString()}::regclass`,
        );
        const info = table[0]!;
        const isOwner = info.owner === ctx.roles.reader;
        state.readerSuperuser = role.rolsuper;
        state.readerBypassrls = role.rolbypassrls;
        state.owner = info.owner;
        state.readerIsOwner = isOwner;
        state.readerHasOwnerPrivileges = info.owner_privileges;
        state.rlsEnabled = info.enabled;
        state.rlsForced = info.forced;
        state.policies = info.policies;
        ctx.observe('reader_superuser', role.rolsuper, !role.rolsuper);
        ctx.observe('reader_bypassrls', role.rolbypassrls, !role.rolbypassrls);
        ctx.observe(`${e.tableName}_owner`, info.owner);
        ctx.observe('reader_is_owner', isOwner, !isOwner || info.forced);
        ctx.observe('reader_has_owner_privileges', info.owner_privileges, !info.owner_privileges || info.forced);
        ctx.observe('rls_enabled', info.enabled, info.enabled);
        ctx.observe('rls_forced', info.forced);
        ctx.observe('policies', info.policies);
        const worker = await query<{ reads: boolean }>(
          ctx,
          sql`select has_table_privilege(r.oid, ${e.table.toString()}::regclass, 'select') as reads from pg_roles r where r.rolname = ${ctx.roles.worker}`,
        );
        state.workerReadsExpenses = worker[0]?.reads === true;
        // Recorded, not judged: without SELECT the worker cannot leak rows, and the reader decides alone.
        ctx.observe(`worker_${ctx.roles.worker}_reads_${e.tableName}`, worker[0] ? worker[0].reads : 'no such role');
      },
    },
    {
      id: 'truth',
      title: 'Count each tenant\u2019s rows outside RLS',
      why: 'The expected answers, and the two tenants to flip between (the two with the most rows), come from the database itself, read on the drill\u2019s own login, which must be a superuser or hold BYPASSRLS (a table owner is filtered too once RLS is forced), not from a constant.',
      hint: {
        look: "truth is the row count per tenant read with RLS bypassed (on the seed alice 47 and bob 31, beside the drill tenants' few rows), counted_outside_rls must be true, and flip_tenants names the two tenants with the most rows.",
        mistake: "Taking the expected counts from the lesson text. A target's numbers differ, and a read of 47 rows proves nothing unless 47 is what that tenant truly owns, counted by a role that is not itself filtered by RLS.",
      },
      sql: (n) => [`select ${n.expenses.tenant}, count(*) from ${n.expenses.table} group by ${n.expenses.tenant}`],
      async run(ctx, state) {
        const e = ctx.profile.names.expenses;
        const rows = await query<{ tenant_id: string; n: number }>(
          ctx,
          sql`select ${e.tenant}::text as tenant_id, count(*)::int as n from ${e.table} group by 1 order by 1`,
        );
        const truth = Object.fromEntries(rows.map((row) => [row.tenant_id, row.n]));
        state.truth = truth;
        ctx.observe('truth', truth);
        const superuser = await query<{ bypass: boolean }>(
          ctx,
          `select rolsuper or rolbypassrls as bypass from pg_roles where rolname = current_user`,
        );
        // Kept for the verdict rather than thrown: the reader's attributes decide it first.
        state.countedOutsideRls = superuser[0]?.bypass === true;
        ctx.observe('counted_outside_rls', state.countedOutsideRls, state.countedOutsideRls);
        const { chosen, words } = await chooseTenants(ctx, truth);
        state.words = words;
        chosen.forEach((id, index) => (state.tenants[tenantSlots[index]!] = { id, word: words[id]! }));
        ctx.observe(
          'flip_tenants',
          chosen.map((id) => `${words[id]} (${truth[id] ?? 0} rows)`),
        );
      },
    },
    ...tenantSlots.map((slot): Step<State> => ({
      id: `as-${slot}-tenant`,
      title: `Set the tenant context to the ${slot} tenant and read expenses`,
      why: `Within a tenant's context the reader must see all of that tenant's rows and nobody else's (the ${slot} tenant: the ${slot === 'first' ? 'most' : 'second most'} expenses).`,
      hint:
        slot === 'first'
          ? {
              look: 'The read_ line of the first tenant (read_alice on the seed) lists rows per tenant id seen. It must hold that tenant only, with the same count as truth; any other tenant id in it is a leak.',
              mistake: 'Setting the context with a session-level SET instead of set_config(name, value, true) inside the transaction. On a pooled connection a session setting outlives the request, and the next request runs as the last tenant.',
            }
          : {
              look: 'The read_ line of the second tenant (read_bob on the seed) must hold only that tenant, with its count from truth. Same query, another setting, other rows: the policy follows the context.',
              mistake: "Checking only that fewer rows came back than the table holds. 31 rows could be anyone's; the check is that every row seen carries this tenant's id and that the count equals the tenant's own.",
            },
      sql: (n) => [
        `begin; set local role <reader>; select set_config('${n.setting}', '<${slot} tenant>', true); select * from ${n.expenses.table}; rollback`,
      ],
      async run(ctx, state) {
        const context = contextOf(state, slot);
        if (!context) {
          ctx.notes.push(`no ${slot} tenant to read as: ${ctx.profile.names.tenants.tableName} holds fewer than two tenants`);
          return;
        }
        state.reads[slot] = await flip(ctx, state, ctx.roles.reader, context, `read_${context.name}`);
      },
    })),
    {
      id: 'pattern',
      title: "Set the tenant context to the pattern '%' and read expenses",
      why: "A context that names no tenant must show no rows: a policy comparing with LIKE shows every tenant's rows to '%'.",
      hint: {
        look: "read_pattern must show no rows, or a refusal such as 22P02 when the policy casts the setting to a uuid or a number, which fails closed too. Any rows here mean the policy matched '%' as a pattern.",
        mistake: "Writing the policy with LIKE, as in tenant_id LIKE current_setting('app.tenant_id'). A context of '%' then matches every tenant; the comparison must be plain equality.",
      },
      sql: (n) => [
        `begin; set local role <reader>; select set_config('${n.setting}', '%', true); select * from ${n.expenses.table}; rollback`,
      ],
      async run(ctx, state) {
        state.reads.pattern = await flip(ctx, state, ctx.roles.reader, contextOf(state, 'pattern')!, 'read_pattern');
      },
    },
    {
      id: 'as-worker',
      title: 'Run the same flip as the worker role',
      why: 'The tool server reads as the worker role: a policy that lets that role see every tenant leaks through the Worker.',
      hint: {
        look: "The worker_read_ lines repeat the contexts as the worker role the tool server uses: own rows only, none when unset or '%'. If that role has no SELECT on expenses, a note says so and the reader decides alone.",
        mistake: 'Testing RLS only as a special reader role. A policy written TO that reader alone, or a worker role given BYPASSRLS for convenience, leaves the role that actually serves the Worker reading every tenant.',
      },
      sql: (n) => [
        `begin; set local role <worker>; select set_config('${n.setting}', ..., true); select * from ${n.expenses.table}; rollback`,
      ],
      async run(ctx, state) {
        if (!state.workerReadsExpenses) {
          ctx.notes.push(`${ctx.roles.worker} has no SELECT on ${ctx.profile.names.expenses.tableName}: the reader's flip decides alone`);
          return;
        }
        for (const slot of slots) {
          const context = contextOf(state, slot);
          if (context) state.workerReads[slot] = await flip(ctx, state, ctx.roles.worker, context, `worker_read_${context.name}`);
        }
      },
    },
    {
      id: 'unset',
      title: 'Unset the tenant context and read expenses',
      why: 'No context must mean no rows: a policy that treats an empty setting as "all tenants" leaks everything.',
      hint: {
        look: 'read_unset must show 0 rows; a refusal with 42704 (the setting does not exist) counts as failing closed too. The oracle confirms the reads changed nothing in expenses.',
        mistake: "A policy that reads an empty setting as all tenants. On a connection that set it before, current_setting(name, true) returns an empty string, not NULL; wrap it in nullif(..., '') so that no context means no rows.",
      },
      sql: (n) => [`begin; set local role <reader>; select * from ${n.expenses.table}; rollback`],
      async run(ctx, state) {
        const table = ctx.profile.names.expenses.tableName;
        // Reads change nothing: the oracle checks that from committed state around this last flip.
        await withEvidence(
          ctx,
          {
            label: `read ${table} as ${ctx.roles.reader} with no tenant context`,
            tables: [{ name: table, rows: false }],
            expect: [`${table}:+0`],
          },
          async (log) => {
            const read = await flip(ctx, state, ctx.roles.reader, contextOf(state, 'unset')!, 'read_unset');
            state.reads.unset = read;
            log(`unset context: ${read.failsClosed ? `refused with ${read.code}: fails closed` : read.code ? `failed with ${read.code}` : `${read.total} rows`}`);
          },
        );
      },
    },
  ],
  verdict(ctx, state) {
    const table = ctx.profile.names.expenses.tableName;
    const attributes = attributeReasons(ctx.roles.reader, table, state);
    if (!state.countedOutsideRls) {
      if (attributes.length > 0) return broken(attributes);
      return undetermined('the connecting role is subject to RLS itself, so it cannot count rows per tenant');
    }
    const judged = [judgeFlip(state, state.reads, ''), judgeFlip(state, state.workerReads, `as ${ctx.roles.worker}: `)];
    const reasons = [...attributes, ...judged.flatMap((flipJudged) => flipJudged.reasons)];
    if (reasons.length > 0) return broken(reasons);
    const refused = [
      ...refusals(judged[0]!.refused, ctx.roles.reader, table),
      ...refusals(judged[1]!.refused, ctx.roles.worker, table),
    ];
    if (refused.length > 0) return undetermined(refused.join('; '));
    if (Object.keys(state.truth).length < 2) {
      // Without a second tenant's rows a leak could not show.
      return undetermined(`${table} holds rows of fewer than two tenants, so no leak could show`);
    }
    const unset = need(state.reads.unset, 'the unset read');
    need(state.reads.pattern, 'the pattern read');
    const contexts = tenantSlots.map((slot) => {
      const tenant = need(state.tenants[slot], `the ${slot} tenant`);
      const read = need(state.reads[slot], `the ${slot} tenant's read`);
      return `${title(tenant.word)} context returned ${rows(read.total)} (${tenantsSeen(read, state.words)}).`;
    });
    return {
      verdict: 'pass',
      evidence:
        `${contexts.join(' ')} Unset context returned ${rows(unset.total)}. No cross-tenant leakage in any flip ` +
        `(as ${ctx.roles.reader}: ${attributeWords(state)}; RLS ${state.rlsForced ? 'forced' : 'enabled'}).`,
    };
  },
};

interface TableSecurity {
  enabled: boolean;
  forced: boolean;
  owner: string;
  owner_privileges: boolean;
  policies: string[];
}

/** The reader's attributes and the table's settings that let a reader skip the policies, each one a reason. */
function attributeReasons(reader: string, table: string, state: State): string[] {
  const reasons: string[] = [];
  if (state.readerSuperuser) reasons.push(`${reader} is a superuser`);
  if (state.readerBypassrls) reasons.push(`${reader} has BYPASSRLS`);
  if (!state.rlsForced && !state.readerSuperuser) {
    if (state.readerIsOwner) reasons.push(`${reader} owns ${table} and RLS is not forced`);
    else if (state.readerHasOwnerPrivileges) {
      reasons.push(`${reader} is a member of ${String(state.owner)}, which owns ${table}, and RLS is not forced`);
    }
  }
  if (!state.rlsEnabled) reasons.push(`row-level security is not enabled on ${table}`);
  return reasons;
}

interface FlipJudged {
  /** What a context saw that it should not have (or failed to see), each one a reason. */
  reasons: string[];
  /** The refusals that leave the flip unjudged: the role could not be taken, or may not read expenses. */
  refused: Array<{ context: string; code: string; stage: 'role' | 'read' }>;
}

/** Judges one role's flip; `prefix` names the role in each reason ('' for the reader, as before). */
function judgeFlip(state: State, reads: Reads, prefix: string): FlipJudged {
  const judged: FlipJudged = { reasons: [], refused: [] };
  for (const slot of slots) {
    const read = reads[slot];
    const context = contextOf(state, slot);
    if (!read || !context || read.failsClosed) continue;
    const { own, name } = context;
    const expected = own === null ? 0 : (state.truth[own] ?? 0);
    if (read.code && (read.stage === 'role' || read.code === '42501')) {
      judged.refused.push({ context: name, code: read.code, stage: read.stage ?? 'read' });
    } else if (read.code) judged.reasons.push(`${prefix}${name} context failed with ${read.code}`);
    else if (own === null && read.total > 0) {
      judged.reasons.push(`${prefix}${name} context saw ${read.total} rows (${leakText(read, null, state.words)})`);
    } else if (own !== null && read.total !== (read.seen[own] ?? 0)) {
      judged.reasons.push(`${prefix}${name} context also saw ${leakText(read, own, state.words)}`);
    } else if (own !== null && read.total !== expected) judged.reasons.push(`${prefix}${name} context saw ${read.total} of ${expected} rows`);
  }
  return judged;
}

/** One could-not-determine clause per kind of refusal, naming what to grant. */
function refusals(refused: FlipJudged['refused'], role: string, table: string): string[] {
  const clauses: string[] = [];
  const asRole = refused.filter((entry) => entry.stage === 'role');
  const reads = refused.filter((entry) => entry.stage === 'read');
  if (asRole.length > 0) {
    clauses.push(`the connecting role could not become ${role} (${asRole[0]!.code}): grant ${role} to the connecting role`);
  }
  if (reads.length > 0) {
    const where = reads.map((entry) => entry.context).join(', ');
    clauses.push(`${role} may not read ${table} (42501 in the ${where} context${reads.length > 1 ? 's' : ''}): grant it SELECT on ${table}`);
  }
  return clauses;
}

function broken(reasons: string[]): VerdictResult {
  const reason = `tenant isolation broken: ${reasons.join('; ')}`;
  return { verdict: 'fail', evidence: reason, reason };
}

function undetermined(why: string): VerdictResult {
  const reason = `could not determine: ${why}`;
  return { verdict: 'could-not-determine', evidence: reason, reason };
}

function title(tenant: string): string {
  return tenant.charAt(0).toUpperCase() + tenant.slice(1);
}

function rows(count: number): string {
  return `${count} ${count === 1 ? 'row' : 'rows'}`;
}

/** "all Alice", from the tenants the context actually returned rows of. */
function tenantsSeen(read: ContextRead, words: Record<string, string>): string {
  const seen = Object.keys(read.seen);
  return seen.length === 0 ? 'none' : `all ${seen.map((id) => title(words[id] ?? id)).join(' and ')}`;
}

/** "not superuser, not BYPASSRLS", from the reader's flags as pg_roles gave them. */
function attributeWords(state: State): string {
  return [state.readerSuperuser ? 'superuser' : 'not superuser', state.readerBypassrls ? 'BYPASSRLS' : 'not BYPASSRLS'].join(', ');
}
