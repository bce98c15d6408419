// Drill 1, migration_review (Lesson 1, migrations). The agent's proposed
// migration (a nullable notes column on expenses) is read without running it,
// with the real PostgreSQL parser: both directions present, the drop guard, no
// rider on another table. Then it is applied on branch cap-migration-1 (never on
// the target): up must add exactly the notes column, down must restore the
// schema exactly; the branch is dropped afterwards.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fixturesDir, splitMigration } from '../postgres/migrations.js';
import { BranchUnavailable, createNeonBranch, createTemplateBranch, type Branch } from '../postgres/branch.js';
import { inTransaction, withPgClient } from '../postgres/pg.js';
import { readCatalog, type Catalog } from '../oracle/index.js';
import { onCleanup } from '../util/lifecycle.js';
import { catalogDiff } from './catalog-diff.js';
import { withEvidence } from './evidence.js';
import { reviewStatically, type StaticReview } from './migration-static.js';
import { CouldNotDetermine } from './runner.js';
import { need, type Drill } from './types.js';

export const branchName = 'cap-migration-1';
export const defaultMigration = path.join(fixturesDir, 'proposed', 'add_expense_notes.sql');
/** What the proposal must do to the schema, and nothing else. */
export const expectedChange = 'expenses: + column notes text nullable';

async function publicTables(url: string): Promise<string[]> {
  return withPgClient(url, async (client) => {
    const { rows } = await client.query<{ name: string }>(
      `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') order by c.relname`,
    );
    return rows.map((row) => row.name);
  });
}

async function catalogOf(url: string): Promise<Catalog> {
  const tables = await publicTables(url);
  return withPgClient(url, (client) => readCatalog(client, tables));
}

interface State {
  /** The migration file's text, as read (up and down are split from it when applied). */
  text?: string;
  /** The parser's reading of the migration: directions, drop guard, riders. */
  review?: StaticReview;
  /** The branch the migration is applied on (template copy or Neon). */
  branch?: Branch;
  /** The branch's schema before the up, which the down must give back. */
  catalogBefore?: Catalog;
  /** Schema changes the up made on the branch. */
  upDiff: string[];
  /** Schema differences left after the down, against the catalog before the up. */
  downDiff: string[];
}

export const migrationReview: Drill<State> = {
  number: 1,
  key: 'migration_review',
  title: 'Migration review',
  lesson: 1,
  habit: 'reviewed, reversible migrations',
  tables: [],
  needs: [], // the proposal names its own tables; one the target lacks fails its up on the branch with 42P01
  needsExclusiveDatabase: true,
  breakDescription: 'the proposal replaced by one with a rider on another table (tenants gains a column)',
  fix: 'split the proposal so it only adds the nullable notes column to expenses, with a down that drops it, and no DROP TABLE without an explicit override',
  init: () => ({ upDiff: [], downDiff: [] }),
  steps: [
    {
      id: 'read',
      title: 'Read the proposed migration without running it',
      why: 'A migration is reviewed as text first: the PostgreSQL parser tells what each statement does before anything touches a database.',
      async run(ctx, state) {
        const file = ctx.broken
          ? path.join(fixturesDir, 'proposed', 'rider_on_other_table.sql')
          : (ctx.options.migrationFile ?? defaultMigration);
        ctx.observe('file', path.relative(process.cwd(), file) || file);
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (error) {
          throw new Error(`cannot read the migration ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
        }
        state.text = text;
        const result = await reviewStatically(text);
        state.review = result;
        for (const statement of [...result.up, ...result.down]) ctx.showSql(statement.text);
        ctx.observe('up_statements', result.up.length, result.up.length > 0);
        ctx.observe('down_statements', result.down.length, result.down.length > 0);
        if (result.parseError) throw new Error(result.parseError);
        if (!result.hasUp || result.up.length === 0) throw new Error('the migration has no up direction (-- migrate:up with statements)');
        if (!result.hasDown || result.down.length === 0) throw new Error('the migration has no down direction: it cannot be rolled back');
      },
    },
    {
      id: 'drop-guard',
      title: 'Check the drop guard',
      why: 'DROP TABLE, DROP SCHEMA and TRUNCATE destroy data; they need an explicit override with a reason.',
      async run(ctx, state) {
        const result = need(state.review, 'the static review');
        ctx.observe('destructive', result.unguardedDrops, result.unguardedDrops.length === 0);
        if (result.override) {
          ctx.observe('drop_override', result.override);
          ctx.notes.push(`drop override: ${result.override}`);
        }
        if (result.unguardedDrops.length > 0) {
          throw new Error(`${result.unguardedDrops.join(', ')} without an explicit override (-- sor-drills: allow-drop reason: ...)`);
        }
      },
    },
    {
      id: 'scope',
      title: 'Check that nothing rides along',
      why: 'Every statement must touch only the migration\u2019s own target table; an unrelated change hides in a reviewed diff, and a data change on another table leaves no trace in the schema.',
      async run(ctx, state) {
        const result = need(state.review, 'the static review');
        ctx.observe('target_table', result.target ?? 'none');
        ctx.observe('riders', result.riders.map((rider) => `${rider.relation} (${rider.direction}: ${rider.statement})`), result.riders.length === 0);
        ctx.observe('opaque_statements', result.opaque.map((block) => `${block.direction}: ${block.statement}`), result.opaque.length === 0);
        if (result.riders.length > 0) {
          const relations = [...new Set(result.riders.map((rider) => rider.relation))];
          throw new Error(`scope creep: statements also touch ${relations.join(', ')} (target ${result.target})`);
        }
        // A DO block could change any table's rows without a catalog trace: its scope cannot be reviewed.
        if (result.opaque.length > 0) {
          throw new Error(`scope cannot be read: ${result.opaque.length} DO block(s) hide their statements from the parser; write them as plain statements`);
        }
      },
    },
    {
      id: 'branch',
      title: `Make branch ${branchName}`,
      why: 'The migration is applied on a branch of the target, never on the target itself.',
      sql: [`create database "${branchName}" template <target>`],
      async run(ctx, state) {
        const making = ctx.options.neon
          ? createNeonBranch(ctx.options.neon, ctx.database, ctx.options.branchName ?? branchName)
          : createTemplateBranch(ctx.url, ctx.database, ctx.options.branchName ?? branchName);
        // A branch is a full copy of the target: it must not outlive an interrupted run either.
        // Registered before the copy starts, so a Ctrl-C during CREATE DATABASE waits for it to
        // end and then drops what it made.
        const forget = onCleanup(`drop branch ${ctx.options.branchName ?? branchName}`, async () => {
          const made = await making.catch(() => undefined);
          await made?.drop();
        });
        let branch: Branch;
        try {
          branch = await making;
        } catch (error) {
          forget();
          if (error instanceof BranchUnavailable) throw new CouldNotDetermine(error.message);
          throw error;
        }
        ctx.defer(async () => {
          await branch.drop();
          forget();
        });
        state.branch = branch;
        ctx.observe('branch_made', branch.describe, true);
      },
    },
    {
      id: 'up',
      title: 'Apply the up migration on the branch',
      why: 'The schema diff after up must be exactly the new nullable notes column.',
      async run(ctx, state) {
        const branch = need(state.branch, 'the branch');
        const { up } = splitMigration(need(state.text, 'the migration text'));
        const before = await catalogOf(branch.url);
        state.catalogBefore = before;
        ctx.showSql(up);
        await withEvidence(
          ctx,
          {
            label: `apply the up migration on ${branch.name}`,
            url: branch.url,
            tables: [{ name: 'expenses', rows: false, schema: true }],
            expect: ['expenses:+column:notes'],
          },
          async (log) => {
            await withPgClient(branch.url, (client) => inTransaction(client, () => client.query(up)));
            log(`applied the up migration on ${branch.describe}`);
          },
        );
        const after = await catalogOf(branch.url);
        const changes = catalogDiff(before, after);
        state.upDiff = changes;
        ctx.observe('up_diff', changes, changes.length === 1 && changes[0] === expectedChange);
      },
    },
    {
      id: 'down',
      title: 'Apply the down migration on the branch',
      why: 'Rolling back must give back exactly the schema from before the up.',
      async run(ctx, state) {
        const branch = need(state.branch, 'the branch');
        const { down } = splitMigration(need(state.text, 'the migration text'));
        ctx.showSql(down);
        await withEvidence(
          ctx,
          {
            label: `apply the down migration on ${branch.name}`,
            url: branch.url,
            tables: [{ name: 'expenses', rows: false, schema: true }],
            expect: ['expenses:-column:notes'],
          },
          async (log) => {
            await withPgClient(branch.url, (client) => inTransaction(client, () => client.query(down)));
            log(`applied the down migration on ${branch.describe}`);
          },
        );
        const after = await catalogOf(branch.url);
        const changes = catalogDiff(need(state.catalogBefore, 'the catalog before the up'), after);
        state.downDiff = changes;
        ctx.observe('down_diff', changes, changes.length === 0);
      },
    },
    {
      id: 'drop-branch',
      title: `Drop branch ${branchName}`,
      why: 'The branch was only for trying the migration; the target was never touched.',
      async run(ctx, state) {
        const branch = need(state.branch, 'the branch');
        await branch.drop();
        ctx.observe('branch_dropped', branch.name, true);
      },
    },
  ],
  verdict(_ctx, { upDiff, downDiff, branch, review }) {
    const reasons: string[] = [];
    if (!(upDiff.length === 1 && upDiff[0] === expectedChange)) {
      reasons.push(`up changed ${upDiff.length === 0 ? 'nothing' : upDiff.join('; ')} (expected only ${expectedChange})`);
    }
    if (downDiff.length > 0) reasons.push(`down did not restore the schema: ${downDiff.join('; ')}`);
    // The catalog diff decides; the oracle's folders hold the before/after evidence of each direction.
    if (reasons.length > 0) {
      const reason = reasons.join('; ');
      return { verdict: 'fail', evidence: reason, reason };
    }
    // The drop-guard step recorded this override; it stays in the review.
    const override = review?.override;
    const name = branch?.name ?? branchName;
    const where = branch?.kind === 'neon' ? `Neon branch ${name}` : `branch ${name} (template copy)`;
    return {
      verdict: 'pass',
      evidence:
        `Migration adds notes column, downgrade drops it cleanly, applied and rolled back on ${where}. ` +
        `No scope creep${override ? `; drop override recorded: ${override}` : ''}.`,
    };
  },
};
