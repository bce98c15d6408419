// Drill 1's proposal as the console shows it before the drill runs: read with the real
// parser from the fixtures' files, each statement marked as the drill judges it.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrationProposal } from '../../src/drills/migration-proposal.js';
import { fixturesDir } from '../../src/postgres/migrations.js';

const file = (name: string) => path.join(fixturesDir, 'proposed', name);

describe('the migration proposal', () => {
  it('the default proposal: its up and down, nothing marked', async () => {
    const proposal = await migrationProposal({}, false);
    expect(proposal.file).toBe(path.join('fixtures', 'proposed', 'add_expense_notes.sql'));
    expect(proposal.sections).toEqual([
      { direction: 'up', present: true, statements: [{ text: expect.stringMatching(/^alter table expenses add column notes text/), marks: [] }] },
      { direction: 'down', present: true, statements: [{ text: expect.stringMatching(/^alter table expenses drop column notes/), marks: [] }] },
    ]);
  });

  it('the break: a rider on another table, marked in both directions', async () => {
    const proposal = await migrationProposal({}, true);
    expect(proposal.file).toContain('rider_on_other_table.sql');
    const marks = proposal.sections.flatMap((section) => section.statements.flatMap((statement) => statement.marks));
    expect(marks).toEqual([
      { kind: 'other-table', text: "touches tenants, not expenses (the migration's own table)" },
      { kind: 'other-table', text: "touches tenants, not expenses (the migration's own table)" },
    ]);
  });

  it('a DROP TABLE without the override is destructive; with it, allowed and said why', async () => {
    const bare = await migrationProposal({ migrationFile: file('drop_table.sql') }, false);
    expect(bare.sections[0]!.statements[1]!.marks).toContainEqual({
      kind: 'destructive',
      text: 'destructive: DROP TABLE pending_transactions, with no allow-drop override',
    });
    const allowed = await migrationProposal({ migrationFile: file('drop_table_with_override.sql') }, false);
    expect(allowed.sections[0]!.statements[1]!.marks[0]).toMatchObject({ kind: 'guarded' });
    expect(allowed.sections[0]!.statements[1]!.marks[0]!.text).toContain('replaced by the claims table');
  });

  it('a down with no statement is shown empty; an unreadable file says so in one line', async () => {
    const noDown = await migrationProposal({ migrationFile: file('no_down.sql') }, false);
    expect(noDown.sections[1]!.statements).toEqual([]);
    const missing = await migrationProposal({ migrationFile: file('does-not-exist.sql') }, false);
    expect(missing.error).toMatch(/^cannot read .*does-not-exist\.sql: ENOENT$/);
  });
});
