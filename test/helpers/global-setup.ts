// One embedded cluster per test run. A template database holds the reference
// schema and seed rows; each test file clones it (see db.ts). The cluster is
// stopped in teardown whether the tests passed or not.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbedded } from '../../src/postgres/embedded.js';
import { setup } from '../../src/postgres/setup.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { withDatabase } from '../../src/postgres/url.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the cluster's maintenance database. */
    pgAdminUrl: string;
    /** Name of the database with the reference schema applied, to clone. */
    pgTemplate: string;
    /** The cluster's log file (statement logging is read from it by the MCP boundary drill). */
    pgLogFile: string;
    /** Where tests put temporary files (test/helpers/scratch.ts); removed after the run. */
    scratchRoot: string;
  }
}

export const templateName = 'sor_template';

export default async function globalSetup(project: TestProject) {
  const scratchRoot = await mkdtemp(path.join(tmpdir(), 'sor-test-'));
  const cluster = await startEmbedded({ database: 'sor_scratch' });
  try {
    await withPgClient(cluster.adminUrl, (client) => client.query(`create database ${templateName}`));
    await setup(withDatabase(cluster.adminUrl, templateName), { embedded: true, yes: true });
  } catch (error) {
    await cluster.stop();
    await rm(scratchRoot, { recursive: true, force: true });
    throw error;
  }
  project.provide('pgAdminUrl', cluster.adminUrl);
  project.provide('pgTemplate', templateName);
  project.provide('pgLogFile', cluster.logFile);
  project.provide('scratchRoot', scratchRoot);
  return async () => {
    await cluster.stop();
    await rm(scratchRoot, { recursive: true, force: true });
  };
}
