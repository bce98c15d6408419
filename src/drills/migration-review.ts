// Drill 1, migration_review (Lesson 1, migrations). The agent's proposed
// migration (a nullable notes column on expenses) is read without running it,
// with the real PostgreSQL parser: both directions present, the drop guard, no
// rider on another table. Then it is applied on branch cap-migration-1 (never on
// the target): up must add exactly the notes column, down must restore the
// schema exactly; the branch is dropped afterwards.
//
// The default proposal is written for the reference schema: it alters `expenses`.
// On a target whose expenses table (the profile's expenses.table) is called
// something else it does not fit, and the drill says so (could-not-determine: pass
// --migration with the target's own migration) instead of failing the habit. A
// migration given with --migration is held to what it says itself: its up changes
// something, on its own table only, and its down gives the schema back exactly.
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { splitMigration } from '../postgres/migrations.js';
import { BranchUnavailable, createNeonBranch, createTemplateBranch, type Branch } from '../postgres/branch.js';
import { inTransaction, withPgClient } from '../postgres/pg.js';
import { readCatalog, type Catalog } from '../oracle/index.js';
import { onCleanup } from '../util/lifecycle.js';
import { catalogDiff } from './catalog-diff.js';
import { withEvidence } from './evidence.js';
import { reviewStatically, type StaticReview } from './migration-static.js';
import { defaultMigration, migrationProposal, proposedFile, shownPath } from './migration-proposal.js';

export { defaultMigration } from './migration-proposal.js';
import { CouldNotDetermine } from './runner.js';
import { need, type Drill, type DrillContext } from './types.js';

export const branchName = 'cap-migration-1';
/** The table the default proposal alters, in the schema its unqualified name resolves to. */
const defaultTable = { schema: 'public', table: 'expenses' };
/** What the default proposal must do to the schema, and nothing else. */
export const expectedChange = 'expenses: + column notes text nullable';

/** What the up must change: one table; for the default proposal, exactly the notes column. */
interface Expected {
  schema: string;
  table: string;
  /** The one change the default proposal must make; absent for a given migration. */
  exact?: string;
}

/** The schema's tables and their catalog. */
async function catalogOf(client: pg.Client, schema: string): Promise<Catalog> {
  const { rows } = await client.query<{ name: string }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') order by c.relname`,
    [schema],
  );
  return readCatalog(client, rows.map((row) => row.name), schema);
}

/** Why the default proposal does not fit this target (its expenses table is not public.expenses), or undefined. */
function defaultMisfit(ctx: DrillContext): string | undefined {
  const schema = ctx.profile.profile.schema;
  const table = ctx.profile.names.expenses.tableName;
  if (schema === defaultTable.schema && table === defaultTable.table) return undefined;
  return (
    `the default proposal ${shownPath(defaultMigration)} adds a column to ${defaultTable.table}, but this target's expenses table ` +
    `is ${schema}.${table} (the profile's expenses.table): pass --migration with the target's own migration`
  );
}


/** The table the up must change, and how much: exactly the notes column for the default proposal. */
function expectedOf(ctx: DrillContext, review: StaticReview): Expected {
  if (!ctx.broken && ctx.options.migrationFile === undefined) return { ...defaultTable, exact: expectedChange };
  if (!review.target) {
    throw new CouldNotDetermine('the migration names no table, so what it changes cannot be read from a table\u2019s catalog');
  }
  const [schema, table] = review.target.includes('.') ? review.target.split('.', 2) : [ctx.profile.profile.schema, review.target];
  return { schema: schema!, table: table! };
}

/** The table as the oracle resolves it (search_path: public needs no qualifier). */
function oracleName(expected: Expected): string {
  return expected.schema === 'public' ? expected.table : `${expected.schema}.${expected.table}`;
}

/** Whether one catalog-diff line is about the expected table (`expenses: + column ...`, `+ table expenses`). */
function onTable(change: string, table: string): boolean {
  return change.startsWith(`${table}: `) || change === `+ table ${table}` || change === `- table ${table}`;
}

/** Why the up's changes are not what was expected, or undefined when they are. */
function upMismatch(upDiff: string[], expected: Expected): string | undefined {
  if (expected.exact !== undefined) {
    if (upDiff.length === 1 && upDiff[0] === expected.exact) return undefined;
    return `up changed ${upDiff.length === 0 ? 'nothing' : upDiff.join('; ')} (expected only ${expected.exact})`;
  }
  if (upDiff.length === 0) return `up changed nothing in ${expected.table}`;
  const elsewhere = upDiff.filter((change) => !onTable(change, expected.table));
  if (elsewhere.length > 0) return `up changed ${elsewhere.join('; ')} (expected changes to ${expected.table} only)`;
  return undefined;
}

interface State {
  /** The migration file's text, as read (up and down are split from it when applied). */
  text?: string;
  /** The parser's reading of the migration: directions, drop guard, riders. */
  review?: StaticReview;
  /** What the up must change (set once the scope is read). */
  expected?: Expected;
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
  // Only CREATE DATABASE ... TEMPLATE wants no other session; up, down and the drop run on the branch.
  exclusiveThrough: 'branch',
  breakDescription: 'the proposal replaced by one with a rider on another table (tenants gains a column)',
  fix: 'split the proposal so it only adds the nullable notes column to expenses, with a down that drops it, and no DROP TABLE without an explicit override',
  proposal: migrationProposal,
  init: () => ({ upDiff: [], downDiff: [] }),
  steps: [
    {
      id: 'read',
      title: 'Read the proposed migration without running it',
      shows: 'proposal',
      why: 'A migration is reviewed as text first: the PostgreSQL parser tells what each statement does before anything touches a database.',
      hint: {
        look: 'up_statements and down_statements must both be above zero. Read each statement the parser printed: the default proposal is one ALTER TABLE expenses ADD COLUMN notes text in up, and the matching DROP COLUMN in down.',
        mistake: 'Reviewing a migration by running it to see what happens. The review reads the text with the PostgreSQL parser and touches no database; a file with no down section is rejected here, before anything is applied.',
      },
      async run(ctx, state) {
        const file = proposedFile(ctx.options, ctx.broken);
        ctx.observe('file', shownPath(file));
        // The break's file fails on its text alone (a rider), whatever the target calls its tables.
        const misfit = !ctx.broken && ctx.options.migrationFile === undefined ? defaultMisfit(ctx) : undefined;
        if (misfit) {
          ctx.observe('fits_target', misfit, false);
          throw new CouldNotDetermine(misfit);
        }
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
      hint: {
        look: 'destructive should be an empty list. A DROP TABLE, DROP SCHEMA or TRUNCATE passes only with a line -- sor-drills: allow-drop reason: ..., and drop_override then shows that reason, which the bundle records.',
        mistake: 'Thinking IF EXISTS or CASCADE makes a drop safe. IF EXISTS only silences the error when the table is missing, and CASCADE drops more; the data is destroyed either way. A drop needs an explicit override with a reason.',
      },
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
      hint: {
        look: 'target_table names the one table the migration is about; riders and opaque_statements must both be empty. A rider names the other table, the direction and the statement, such as tenants (up: alter table tenants add column plan text).',
        mistake: 'Trusting the schema diff alone. An UPDATE on another table changes no catalog, so no schema diff shows it, and a DO block hides its statements from the parser. Only reading every statement catches a rider.',
      },
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
        state.expected = expectedOf(ctx, result);
      },
    },
    {
      id: 'branch',
      title: `Make branch ${branchName}`,
      why: 'The migration is applied on a branch of the target, never on the target itself.',
      hint: {
        look: 'branch_made says where the migration will run: a Neon branch, or a template copy of the target, named cap-migration-1. Everything until the branch is dropped happens on that copy, never on the target.',
        mistake: 'Trying a migration on the shared database because it is only a nullable column. Note too that CREATE DATABASE ... TEMPLATE fails while any other session is connected to the target, so the console pauses its live counts here.',
      },
      // Which one runs is the environment's choice (run --help: NEON_API_KEY, NEON_PROJECT_ID), so both are shown.
      sql: [
        `create database "${branchName}" template <target>`,
        `-- with NEON_API_KEY and NEON_PROJECT_ID set, a Neon branch instead: POST https://console.neon.tech/api/v2/projects/<project>/branches`,
      ],
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
      why: 'The schema diff after up must be exactly what the proposal is for (the default one: the new nullable notes column), on its own table only.',
      hint: {
        look: "For the default proposal up_diff must be exactly one line: expenses: + column notes text nullable. The oracle's diff shows the table's schema before and after; any other line (an index, a default, another table) is scope creep.",
        mistake: 'Accepting a migration because it ran without an error. Running is not the test, the schema diff is: an extra index, a default or a column on another table runs just as cleanly and is still not what was proposed.',
      },
      async run(ctx, state) {
        const branch = need(state.branch, 'the branch');
        const expected = need(state.expected, 'the expected change');
        const { up } = splitMigration(need(state.text, 'the migration text'));
        // One connection reads the catalog before and after. The up runs on its own: a SET in it (search_path, role)
        // would otherwise change how the catalog after is read.
        const changes = await withPgClient(branch.url, async (client) => {
          const before = await catalogOf(client, expected.schema);
          state.catalogBefore = before;
          ctx.showSql(up);
          await withEvidence(
            ctx,
            {
              label: `apply the up migration on ${branch.name}`,
              url: branch.url,
              tables: [{ name: oracleName(expected), rows: false, schema: true }],
              // The default proposal's one change; a given migration is judged from the catalog diff below.
              expect: expected.exact ? [`${oracleName(expected)}:+column:notes`] : [],
            },
            async (log) => {
              await withPgClient(branch.url, (own) => inTransaction(own, () => own.query(up)));
              log(`applied the up migration on ${branch.describe}`);
            },
          );
          return catalogDiff(before, await catalogOf(client, expected.schema));
        });
        state.upDiff = changes;
        ctx.observe('up_diff', changes, upMismatch(changes, expected) === undefined);
      },
    },
    {
      id: 'down',
      title: 'Apply the down migration on the branch',
      why: 'Rolling back must give back exactly the schema from before the up.',
      hint: {
        look: 'down_diff compares the schema after the down with the schema from before the up, and must be empty. Anything listed there is something the rollback did not give back.',
        mistake: 'A down that only looks like the reverse: it drops the column but not the index or constraint the up added. A down is proven by comparing the catalog before the up with the one after the down, not by reading it and nodding.',
      },
      async run(ctx, state) {
        const branch = need(state.branch, 'the branch');
        const expected = need(state.expected, 'the expected change');
        const { down } = splitMigration(need(state.text, 'the migration text'));
        ctx.showSql(down);
        await withEvidence(
          ctx,
          {
            label: `apply the down migration on ${branch.name}`,
            url: branch.url,
            tables: [{ name: oracleName(expected), rows: false, schema: true }],
            expect: expected.exact ? [`${oracleName(expected)}:-column:notes`] : [],
          },
          async (log) => {
            await withPgClient(branch.url, (client) => inTransaction(client, () => client.query(down)));
            log(`applied the down migration on ${branch.describe}`);
          },
        );
        const after = await withPgClient(branch.url, (client) => catalogOf(client, expected.schema));
        const changes = catalogDiff(need(state.catalogBefore, 'the catalog before the up'), after);
        state.downDiff = changes;
        ctx.observe('down_diff', changes, changes.length === 0);
      },
    },
    {
      id: 'drop-branch',
      title: `Drop branch ${branchName}`,
      why: 'The branch was only for trying the migration; the target was never touched.',
      hint: {
        look: "branch_dropped names the branch that was removed. The target's own schema was never altered; the evidence of both directions stays in the oracle's folders.",
        mistake: "Leaving trial branches behind. A forgotten copy holds every tenant's real rows, takes the space of a whole database, and is easy to mistake later for the database the Worker really uses.",
      },
      async run(ctx, state) {
        const branch = need(state.branch, 'the branch');
        await branch.drop();
        ctx.observe('branch_dropped', branch.name, true);
      },
    },
  ],
  verdict(_ctx, { upDiff, downDiff, branch, review, expected }) {
    const reasons: string[] = [];
    const mismatch = upMismatch(upDiff, need(expected, 'the expected change'));
    if (mismatch) reasons.push(mismatch);
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
        `${describeUp(upDiff)}, applied and rolled back on ${where}. ` +
        `No scope creep${override ? `; drop override recorded: ${override}` : ''}.`,
    };
  },
};

/** "Migration adds notes column, downgrade drops it cleanly", from the up's diff. */
function describeUp(upDiff: string[]): string {
  const added = upDiff.length === 1 ? /^[^:]+: \+ column (\S+) /.exec(upDiff[0]!) : null;
  if (added) return `Migration adds ${added[1]} column, downgrade drops it cleanly`;
  const table = /^(?:[+-] table )?([^:]+)/.exec(upDiff[0] ?? '')?.[1] ?? 'its table';
  return `Migration changes ${table} (${upDiff.length} schema changes), downgrade restores the schema exactly`;
}
