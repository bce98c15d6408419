// Running single drills against a test database, the way the runner does.
import { runDrill } from '../../src/drills/runner.js';
import { defaultRoles } from '../../src/target/roles.js';
import type { BundleKey, Drill, DrillResult, RunnerEvent } from '../../src/drills/types.js';
import type { DrillSystem } from '../../src/drills/system.js';
import type { TestDatabase } from './db.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** For drills that start no process. */
export const noProcesses: DrillSystem = {
  list: () => [],
  kill: async () => {},
  restart: async () => {},
  subscribe: () => () => {},
  stopAll: async () => {},
};

export async function runOne(
  drill: Drill,
  db: TestDatabase,
  options: { broken?: boolean; migrationFile?: string; system?: DrillSystem; events?: RunnerEvent[] } = {},
): Promise<DrillResult> {
  const breaks = new Set<BundleKey>(options.broken ? [drill.key] : []);
  return runDrill(drill, {
    url: db.url,
    display: db.name,
    database: db.name,
    embedded: true,
    roles: defaultRoles,
    options: {
      paceMs: 0,
      claimHoldMs: 600,
      evidenceRoot: path.join(mkdtempSync(path.join(tmpdir(), 'sor-evidence-')), 'oracle'),
      migrationFile: options.migrationFile,
    },
    operator: { request: async (_ask, perform) => perform() },
    breaks,
    system: options.system ?? noProcesses,
    emit: (event) => options.events?.push(event),
  });
}
