// Drill 1's proposal as the console shows it before the drill runs: the migration's
// up and down sections, each statement marked with what the parser found on it (a
// destructive statement, one touching a table other than the migration's own, a DO
// block whose statements cannot be read) and a missing direction. The marks are the
// drill's own reading (reviewStatically), so what the screen marks is what the drill
// judges.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fixturesDir } from '../postgres/migrations.js';
import { reviewStatically, reversesCreate, type ParsedStatement, type StaticReview } from './migration-static.js';
import type { DrillOptions, Proposal, ProposalMark, ProposalSection } from './types.js';
import { shownPath } from '../util/paths.js';

export const defaultMigration = path.join(fixturesDir, 'proposed', 'add_expense_notes.sql');
/** The deliberate break's proposal: a rider on another table. */
export const brokenMigration = path.join(fixturesDir, 'proposed', 'rider_on_other_table.sql');

/** The migration drill 1 reviews: the break's, the operator's (--migration), or the default proposal. */
export function proposedFile(options: Pick<DrillOptions, 'migrationFile'>, broken: boolean): string {
  return broken ? brokenMigration : (options.migrationFile ?? defaultMigration);
}

export { shownPath } from '../util/paths.js';

function marksOf(review: StaticReview, direction: 'up' | 'down', statement: ParsedStatement, createdByUp: ReadonlySet<string>): ProposalMark[] {
  const marks: ProposalMark[] = [];
  if (statement.destructive) {
    if (direction === 'down' && reversesCreate(statement, createdByUp)) {
      marks.push({ kind: 'guarded', text: `${statement.destructive}: the reverse of the up's CREATE TABLE` });
    } else if (review.override) {
      marks.push({ kind: 'guarded', text: `${statement.destructive}: allowed by the override (${review.override})` });
    } else {
      marks.push({ kind: 'destructive', text: `destructive: ${statement.destructive}, with no allow-drop override` });
    }
  }
  if (review.target) {
    for (const relation of statement.relations) {
      if (relation !== review.target) marks.push({ kind: 'other-table', text: `touches ${relation}, not ${review.target} (the migration's own table)` });
    }
  }
  if (statement.kind === 'DoStmt') marks.push({ kind: 'opaque', text: 'a DO block: the parser cannot read what its statements touch' });
  return marks;
}

export async function migrationProposal(options: Pick<DrillOptions, 'migrationFile'>, broken: boolean): Promise<Proposal> {
  const file = proposedFile(options, broken);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return { file: shownPath(file), sections: [], error: `cannot read ${shownPath(file)}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  const review = await reviewStatically(text);
  if (review.parseError) return { file: shownPath(file), sections: [], error: review.parseError };
  const createdByUp = new Set(review.up.map((statement) => statement.creates).filter((name): name is string => Boolean(name)));
  const section = (direction: 'up' | 'down', present: boolean, statements: ParsedStatement[]): ProposalSection => ({
    direction,
    present,
    statements: statements.map((statement) => ({ text: statement.text, marks: marksOf(review, direction, statement, createdByUp) })),
  });
  return { file: shownPath(file), sections: [section('up', review.hasUp, review.up), section('down', review.hasDown, review.down)] };
}
