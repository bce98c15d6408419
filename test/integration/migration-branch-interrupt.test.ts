// The migration drill's branch is a full copy of the target: an interrupted run
// (Ctrl-C, SIGTERM, a closed terminal) must not leave it behind on the operator's
// server. Every exit path runs the process lifecycle's cleanups
// (src/util/lifecycle.ts); here they are run while the drill is still on the
// branch, exactly as the signal handlers run them, and the branch must be gone.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runOne } from '../helpers/drills.js';
import { scratchDir } from '../helpers/scratch.js';
import { migrationReview } from '../../src/drills/migration-review.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { runCleanups } from '../../src/util/lifecycle.js';
import { waitFor } from '../../src/util/wait.js';

// A branch name is cluster-wide: this file's own, so the other files' migration drills never meet it.
const branchName = `cap-migration-test-${randomBytes(4).toString('hex')}`;
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await withPgClient(db.adminUrl, (client) => client.query(`drop database if exists "${branchName}" with (force)`));
  await db?.dispose();
});

const branchExists = () =>
  withPgClient(db.adminUrl, async (client) => {
    const { rows } = await client.query(`select 1 from pg_database where datname = $1`, [branchName]);
    return rows.length > 0;
  });

describe('migration_review interrupted while it is on its branch', () => {
  it('the exit path drops the branch it made', async () => {
    // An up that takes a while on the branch: the interrupt lands while the branch exists.
    const file = path.join(scratchDir('migration-'), 'slow_notes.sql');
    writeFileSync(
      file,
      '-- migrate:up\nalter table expenses add column notes text;\nselect pg_sleep(3);\n\n-- migrate:down\nalter table expenses drop column notes;\n',
    );
    const running = runOne(migrationReview, db, { migrationFile: file, branchName });
    await waitFor('the branch', async () => (await branchExists()) || undefined, { timeoutMs: 30_000 });
    // What SIGINT, SIGTERM and SIGHUP run before the process exits (without exiting the test).
    await runCleanups();
    expect(await branchExists()).toBe(false);
    await running.catch(() => undefined);
  });
});
