// The migration review against riders that change no catalog. A data change on
// another table (`update tenants ...` beside the notes column) leaves the schema
// diff exactly the expected column, so only the static review can catch it: the
// drill must fail at that step, before any branch is made.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOne } from '../helpers/drills.js';
import { migrationReview } from '../../src/drills/migration-review.js';
import type { RunnerEvent } from '../../src/drills/types.js';
import { fixturesDir } from '../../src/postgres/migrations.js';
import { withPgClient } from '../../src/postgres/pg.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.dispose();
});

/** The ids of the steps that started, and of the one that failed, from the runner's events. */
function stepsOf(events: RunnerEvent[]): { started: string[]; failed: string[] } {
  const id = (index: number) => migrationReview.steps[index]!.id;
  return {
    started: events.flatMap((event) => (event.type === 'step-started' ? [id(event.index)] : [])),
    failed: events.flatMap((event) => (event.type === 'step-finished' && !event.ok ? [id(event.index)] : [])),
  };
}

function observation(events: RunnerEvent[], label: string) {
  const found = events.find((event) => event.type === 'observation' && event.label === label);
  if (!found || found.type !== 'observation') throw new Error(`no observation ${label}`);
  // Strings are shown as they are; everything else as JSON (src/drills/runner.ts).
  const value = found.value.startsWith('[') || found.value.startsWith('{') ? (JSON.parse(found.value) as unknown) : found.value;
  return { value, ok: found.ok };
}

const branchCount = async () => {
  const { rows } = await withPgClient(db.adminUrl, (client) =>
    client.query(`select count(*)::int as n from pg_database where datname = 'cap-migration-1'`),
  );
  return rows[0].n as number;
};

describe('migration_review with a rider that changes no catalog', () => {
  it('fails dml_rider_on_other_table.sql at the scope check, before a branch is made', async () => {
    const events: RunnerEvent[] = [];
    const result = await runOne(migrationReview, db, {
      migrationFile: path.join(fixturesDir, 'proposed', 'dml_rider_on_other_table.sql'),
      events,
    });
    expect(result.verdict).toBe('fail');
    const steps = stepsOf(events);
    expect(steps.failed).toEqual(['scope']);
    expect(steps.started).not.toContain('branch');
    expect(observation(events, 'target_table')).toEqual({ value: 'expenses', ok: undefined });
    expect(observation(events, 'riders')).toEqual({
      value: [`tenants (up: update tenants set name = 'Alice (notes beta)' where id = 'alice')`],
      ok: false,
    });
    expect(result.reason).toContain('scope creep: statements also touch tenants (target expenses)');
    expect(result.evidenceDirs).toEqual([]);
    expect(await branchCount()).toBe(0);
    const { rows } = await withPgClient(db.url, (client) => client.query(`select name from tenants where id = 'alice'`));
    expect(rows).toEqual([{ name: 'Alice Ltd' }]);
  });

  it('fails a DO block at the scope check: its statements cannot be read', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { scratchDir } = await import('../helpers/scratch.js');
    const file = path.join(await mkdtemp(path.join(scratchDir('migration-'), 'do-')), 'do_block.sql');
    await writeFile(
      file,
      "-- migrate:up\nalter table expenses add column notes text;\ndo $$ begin update tenants set name = 'x'; end $$;\n-- migrate:down\nalter table expenses drop column notes;\n",
    );
    const events: RunnerEvent[] = [];
    const result = await runOne(migrationReview, db, { migrationFile: file, events });
    expect(result.verdict).toBe('fail');
    expect(stepsOf(events).failed).toEqual(['scope']);
    expect(observation(events, 'opaque_statements').ok).toBe(false);
    expect(await branchCount()).toBe(0);
  });
});
