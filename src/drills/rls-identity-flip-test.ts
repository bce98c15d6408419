// Drill 7, rls_identity_flip_test (Lesson 7, RLS). As a role that is neither
// superuser nor BYPASSRLS (and neither the table owner nor a member of it, unless
// RLS is forced), read expenses with the tenant context set to Alice, to Bob, and
// unset, and with a context that names no tenant but is a LIKE pattern ('%'); each
// context must see exactly its own rows, and none when unset or a pattern. The same
// flip runs as the worker role (the one the tool server uses) when it may read
// expenses: a policy scoped to that role leaks just as well. The
// expected counts are read from the database first, as the connecting (owner)
// role, outside RLS. The reader's attributes decide the verdict on their own: on
// data where nothing could leak, a reader that skips the policies still proves nothing.
import { ident, sqlState, withPgClient } from '../postgres/pg.js';
import { CouldNotDetermine } from './runner.js';
import { withEvidence } from './evidence.js';
import { query } from './sql.js';
import { need, type Drill, type DrillContext, type Step, type VerdictResult } from './types.js';

interface ContextRead {
  /** rows per tenant_id seen in this context */
  seen: Record<string, number>;
  total: number;
  code?: string;
  /** Where the attempt failed: becoming the role, or the read itself. */
  stage?: 'role' | 'read';
  /** An unset-context read refused with 42704: no row shown, the policy fails closed. */
  failsClosed?: true;
}

/** The contexts of one flip: each tenant, none, and a pattern that names no tenant. */
const contexts = ['alice', 'bob', 'unset', 'pattern'] as const;
type ContextName = (typeof contexts)[number];
type Reads = Partial<Record<ContextName, ContextRead>>;

/** The value app.tenant_id gets in a context; null leaves it unset. */
function contextValue(name: ContextName): string | null {
  if (name === 'unset') return null;
  if (name === 'pattern') return '%';
  return name;
}

const tenants = ['alice', 'bob'] as const;
type Tenant = (typeof tenants)[number];

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
  /** Rows per tenant, counted outside RLS: the expected answers. */
  truth: Record<string, number>;
  /** Whether the connecting role skips RLS itself, so that its counts are the truth. */
  countedOutsideRls: boolean;
  /** What the reader saw in each tenant's context. */
  reads: Partial<Record<Tenant, ContextRead>>;
  /** What the reader saw with no tenant context. */
  unset?: ContextRead;
  /** What the reader saw with app.tenant_id = '%'. */
  pattern?: ContextRead;
  /** Whether the worker role exists and has SELECT on expenses, so that its flip runs. */
  workerReadsExpenses: boolean;
  /** What the worker role saw in each context. */
  workerReads: Reads;
}

async function readAs(ctx: DrillContext, role: string, policies: string[], tenant: string | null): Promise<ContextRead> {
  // A deliberate break: the policy replaced by a permissive one, inside the rolled-back transaction.
  const prelude = ctx.broken
    ? policies.map((name) => `drop policy ${ident(name)} on expenses`).concat([
        `create policy sor_drills_break_leak on expenses for select using (true)`,
      ])
    : [];
  let seen: Record<string, number> = {};
  let total = 0;
  const sql = `select tenant_id, count(*)::int as n from expenses group by tenant_id order by tenant_id`;
  const attempt = await attemptAsRows(ctx, role, tenant, sql, prelude, (rows) => {
    seen = Object.fromEntries(rows.map((row) => [row.tenant_id, row.n]));
    total = rows.reduce((sum, row) => sum + row.n, 0);
  });
  if (!attempt) return { seen, total };
  // A missing setting refused (current_setting without missing_ok) shows no row: that fails closed.
  if (tenant === null && attempt.code === '42704' && attempt.stage === 'read') {
    return { seen: {}, total: 0, code: attempt.code, failsClosed: true };
  }
  return { seen, total, ...attempt };
}

/** Reads one context as `role`, observed under `label`: exactly its own rows, none where no tenant is named. */
async function flip(ctx: DrillContext, state: State, role: string, name: ContextName, label: string): Promise<ContextRead> {
  const read = await readAs(ctx, role, state.policies, contextValue(name));
  const own = name === 'alice' || name === 'bob' ? name : null;
  const expected = own ? (state.truth[own] ?? 0) : 0;
  const clean = read.total === expected && read.total === (own ? (read.seen[own] ?? 0) : 0);
  ctx.observe(label, read, (!read.code || read.failsClosed === true) && clean);
  if (read.failsClosed) ctx.notes.push(`${role}, ${name} context: refused with ${read.code}: fails closed`);
  return read;
}

/** Reads as `role` inside BEGIN ... ROLLBACK, with the tenant context set (or not). */
async function attemptAsRows(
  ctx: DrillContext,
  role: string,
  tenant: string | null,
  sql: string,
  prelude: string[],
  onRows: (rows: Array<{ tenant_id: string; n: number }>) => void,
): Promise<{ code: string; stage: 'role' | 'read' } | undefined> {
  return withPgClient(ctx.url, async (client) => {
    await client.query('begin');
    try {
      for (const statement of prelude) {
        ctx.showSql(statement);
        await client.query(statement);
      }
      ctx.showSql(`set local role ${ident(role)}`);
      try {
        await client.query(`set local role ${ident(role)}`);
      } catch (error) {
        return { code: sqlState(error) ?? 'unknown', stage: 'role' };
      }
      if (tenant !== null) {
        ctx.showSql(`select set_config('app.tenant_id', '${tenant}', true)`);
        await client.query(`select set_config('app.tenant_id', $1, true)`, [tenant]);
      }
      ctx.showSql(sql);
      const { rows } = await client.query<{ tenant_id: string; n: number }>(sql);
      onRows(rows);
      return undefined;
    } catch (error) {
      return { code: sqlState(error) ?? 'unknown', stage: 'read' };
    } finally {
      await client.query('rollback').catch(() => {});
    }
  });
}

function leakText(read: ContextRead, own: string | null): string {
  const others = Object.entries(read.seen).filter(([tenant]) => tenant !== own);
  return others.map(([tenant, n]) => `${n} ${tenant}`).join(', ');
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
  fix: "enable and force row-level security on expenses with a policy USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')), and read as a role that is neither superuser nor BYPASSRLS",
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
    reads: {},
    workerReadsExpenses: false,
    workerReads: {},
  }),
  steps: [
    {
      id: 'role-check',
      title: 'Check the reader role',
      why: 'Superusers and BYPASSRLS roles skip every policy, and the table owner (or a member of it) skips them unless RLS is forced: such a role proves nothing.',
      sql: [
        `select rolsuper, rolbypassrls from pg_roles where rolname = '<reader>'`,
        `select relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner), pg_has_role('<reader>', relowner, 'USAGE') from pg_class where oid = 'expenses'::regclass`,
        `select has_table_privilege('<worker>', 'expenses', 'select')`,
      ],
      async run(ctx, state) {
        const roles = await query<{ rolsuper: boolean; rolbypassrls: boolean }>(
          ctx,
          `select rolsuper, rolbypassrls from pg_roles where rolname = $1`,
          [ctx.roles.reader],
        );
        const role = roles[0];
        if (!role) throw new CouldNotDetermine(`the reader role ${ctx.roles.reader} does not exist (name it with --reader-role)`);
        const table = await query<TableSecurity>(
          ctx,
          `select c.relrowsecurity as enabled, c.relforcerowsecurity as forced, pg_get_userbyid(c.relowner) as owner,
                  pg_has_role($1::name, c.relowner, 'USAGE') as owner_privileges,
                  array(select polname::text from pg_policy where polrelid = c.oid order by polname) as policies
             from pg_class c where c.oid = 'expenses'::regclass`,
          [ctx.roles.reader],
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
        ctx.observe('expenses_owner', info.owner);
        ctx.observe('reader_is_owner', isOwner, !isOwner || info.forced);
        ctx.observe('reader_has_owner_privileges', info.owner_privileges, !info.owner_privileges || info.forced);
        ctx.observe('rls_enabled', info.enabled, info.enabled);
        ctx.observe('rls_forced', info.forced);
        ctx.observe('policies', info.policies);
        const worker = await query<{ reads: boolean }>(
          ctx,
          `select has_table_privilege(r.oid, 'expenses'::regclass, 'select') as reads from pg_roles r where r.rolname = $1`,
          [ctx.roles.worker],
        );
        state.workerReadsExpenses = worker[0]?.reads === true;
        // Recorded, not judged: without SELECT the worker cannot leak rows, and the reader decides alone.
        ctx.observe(`worker_${ctx.roles.worker}_reads_expenses`, worker[0] ? worker[0].reads : 'no such role');
      },
    },
    {
      id: 'truth',
      title: 'Count each tenant\u2019s rows outside RLS',
      why: 'The expected answers come from the database itself, read as the owner with RLS bypassed, not from a constant.',
      sql: ['select tenant_id, count(*) from expenses group by tenant_id'],
      async run(ctx, state) {
        const rows = await query<{ tenant_id: string; n: number }>(
          ctx,
          `select tenant_id, count(*)::int as n from expenses group by tenant_id order by tenant_id`,
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
      },
    },
    ...tenants.map((tenant): Step<State> => ({
      id: `as-${tenant}`,
      title: `Set the tenant context to ${tenant} and read expenses`,
      why: `Within ${tenant}'s context the reader must see all of ${tenant}'s rows and nobody else's.`,
      sql: [`begin; set local role <reader>; select set_config('app.tenant_id', '${tenant}', true); select * from expenses; rollback`],
      async run(ctx, state) {
        state.reads[tenant] = await flip(ctx, state, ctx.roles.reader, tenant, `read_${tenant}`);
      },
    })),
    {
      id: 'pattern',
      title: "Set the tenant context to the pattern '%' and read expenses",
      why: "A context that names no tenant must show no rows: a policy comparing with LIKE shows every tenant's rows to '%'.",
      sql: [`begin; set local role <reader>; select set_config('app.tenant_id', '%', true); select * from expenses; rollback`],
      async run(ctx, state) {
        state.pattern = await flip(ctx, state, ctx.roles.reader, 'pattern', 'read_pattern');
      },
    },
    {
      id: 'as-worker',
      title: 'Run the same flip as the worker role',
      why: 'The tool server reads as the worker role: a policy that lets that role see every tenant leaks through the Worker.',
      sql: [`begin; set local role <worker>; select set_config('app.tenant_id', ..., true); select * from expenses; rollback`],
      async run(ctx, state) {
        if (!state.workerReadsExpenses) {
          ctx.notes.push(`${ctx.roles.worker} has no SELECT on expenses: the reader's flip decides alone`);
          return;
        }
        for (const name of contexts) {
          state.workerReads[name] = await flip(ctx, state, ctx.roles.worker, name, `worker_read_${name}`);
        }
      },
    },
    {
      id: 'unset',
      title: 'Unset the tenant context and read expenses',
      why: 'No context must mean no rows: a policy that treats an empty setting as "all tenants" leaks everything.',
      sql: ['begin; set local role <reader>; select * from expenses; rollback'],
      async run(ctx, state) {
        // Reads change nothing: the oracle checks that from committed state around this last flip.
        await withEvidence(
          ctx,
          {
            label: `read expenses as ${ctx.roles.reader} with no tenant context`,
            tables: [{ name: 'expenses', rows: false }],
            expect: ['expenses:='],
          },
          async (log) => {
            const read = await flip(ctx, state, ctx.roles.reader, 'unset', 'read_unset');
            state.unset = read;
            log(`unset context: ${read.failsClosed ? `refused with ${read.code}: fails closed` : read.code ? `failed with ${read.code}` : `${read.total} rows`}`);
          },
        );
      },
    },
  ],
  verdict(ctx, state) {
    const attributes = attributeReasons(ctx.roles.reader, state);
    if (!state.countedOutsideRls) {
      if (attributes.length > 0) return broken(attributes);
      return undetermined('the connecting role is subject to RLS itself, so it cannot count rows per tenant');
    }
    const reads = tenants.map((tenant) => [tenant, need(state.reads[tenant], `the ${tenant} read`)] as const);
    const unset = need(state.unset, 'the unset read');
    const readerReads: Reads = { ...Object.fromEntries(reads), unset, pattern: need(state.pattern, 'the pattern read') };
    const judged = [judgeFlip(state.truth, readerReads, ''), judgeFlip(state.truth, state.workerReads, `as ${ctx.roles.worker}: `)];
    const reasons = [...attributes, ...judged.flatMap((flipJudged) => flipJudged.reasons)];
    if (reasons.length > 0) return broken(reasons);
    const refused = [
      ...refusals(judged[0]!.refused, ctx.roles.reader),
      ...refusals(judged[1]!.refused, ctx.roles.worker),
    ];
    if (refused.length > 0) return undetermined(refused.join('; '));
    if (Object.keys(state.truth).length < 2) {
      // Without a second tenant's rows a leak could not show.
      return undetermined('expenses holds rows of fewer than two tenants, so no leak could show');
    }
    const contexts = reads.map(([tenant, read]) => `${title(tenant)} context returned ${read.total} rows (${tenantsSeen(read)}).`);
    return {
      verdict: 'pass',
      evidence:
        `${contexts.join(' ')} Unset context returned ${unset.total} rows. No cross-tenant leakage in any flip ` +
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
function attributeReasons(reader: string, state: State): string[] {
  const reasons: string[] = [];
  if (state.readerSuperuser) reasons.push(`${reader} is a superuser`);
  if (state.readerBypassrls) reasons.push(`${reader} has BYPASSRLS`);
  if (!state.rlsForced && !state.readerSuperuser) {
    if (state.readerIsOwner) reasons.push(`${reader} owns expenses and RLS is not forced`);
    else if (state.readerHasOwnerPrivileges) {
      reasons.push(`${reader} is a member of ${String(state.owner)}, which owns expenses, and RLS is not forced`);
    }
  }
  if (!state.rlsEnabled) reasons.push('row-level security is not enabled on expenses');
  return reasons;
}

interface FlipJudged {
  /** What a context saw that it should not have (or failed to see), each one a reason. */
  reasons: string[];
  /** The refusals that leave the flip unjudged: the role could not be taken, or may not read expenses. */
  refused: Array<{ context: ContextName; code: string; stage: 'role' | 'read' }>;
}

/** Judges one role's flip; `prefix` names the role in each reason ('' for the reader, as before). */
function judgeFlip(truth: Record<string, number>, reads: Reads, prefix: string): FlipJudged {
  const judged: FlipJudged = { reasons: [], refused: [] };
  for (const name of contexts) {
    const read = reads[name];
    if (!read || read.failsClosed) continue;
    const own = name === 'alice' || name === 'bob' ? name : null;
    if (read.code && (read.stage === 'role' || read.code === '42501')) {
      judged.refused.push({ context: name, code: read.code, stage: read.stage ?? 'read' });
    } else if (read.code) judged.reasons.push(`${prefix}${name} context failed with ${read.code}`);
    else if (own === null && read.total > 0) judged.reasons.push(`${prefix}${name} context saw ${read.total} rows (${leakText(read, null)})`);
    else if (own !== null && read.total !== (read.seen[own] ?? 0)) judged.reasons.push(`${prefix}${name} context also saw ${leakText(read, own)}`);
    else if (own !== null && read.total !== (truth[own] ?? 0)) judged.reasons.push(`${prefix}${name} context saw ${read.total} of ${truth[own] ?? 0} rows`);
  }
  return judged;
}

/** One could-not-determine clause per kind of refusal, naming what to grant. */
function refusals(refused: FlipJudged['refused'], role: string): string[] {
  const clauses: string[] = [];
  const asRole = refused.filter((entry) => entry.stage === 'role');
  const reads = refused.filter((entry) => entry.stage === 'read');
  if (asRole.length > 0) {
    clauses.push(`the connecting role could not become ${role} (${asRole[0]!.code}): grant ${role} to the connecting role`);
  }
  if (reads.length > 0) {
    const where = reads.map((entry) => entry.context).join(', ');
    clauses.push(`${role} may not read expenses (42501 in the ${where} context${reads.length > 1 ? 's' : ''}): grant it SELECT on expenses`);
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

/** "all Alice", from the tenant ids the context actually returned rows of. */
function tenantsSeen(read: ContextRead): string {
  const seen = Object.keys(read.seen);
  return seen.length === 0 ? 'none' : `all ${seen.map(title).join(' and ')}`;
}

/** "not superuser, not BYPASSRLS", from the reader's flags as pg_roles gave them. */
function attributeWords(state: State): string {
  return [state.readerSuperuser ? 'superuser' : 'not superuser', state.readerBypassrls ? 'BYPASSRLS' : 'not BYPASSRLS'].join(', ');
}
