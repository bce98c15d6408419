// Running single drills against a test database, the way the runner does.
import type { Profile, ProfileInUse } from '../../src/postgres/profile/index.js';
import { runDrill } from '../../src/drills/runner.js';
import { defaultRoles } from '../../src/postgres/roles.js';
import type { BundleKey, Drill, DrillResult, RunnerEvent } from '../../src/drills/types.js';
import type { DrillSystem } from '../../src/drills/processes.js';
import { afterAll, beforeAll, expect } from 'vitest';
import { createTestDatabase, type TestDatabase } from './db.js';
import { isAlive } from '../../src/reconciler/supervisor.js';
import { scratchDir } from './scratch.js';
import path from 'node:path';

/** For drills that start no process: any attempt to start one fails the test. */
const refuse = async (): Promise<never> => {
  throw new Error('this drill was not expected to start a process');
};
export const noProcesses: DrillSystem = {
  list: () => [],
  kill: refuse,
  restart: refuse,
  subscribe: () => () => {},
  stopAll: async () => {},
  stop: async () => {},
  supervisor: () => {
    throw new Error('this drill was not expected to start a process');
  },
  workerUrl: refuse,
  toolServer: refuse,
  sharedToolServer: refuse,
  stopShared: async () => {},
  sharedPid: () => undefined,
  emailService: refuse,
};

export async function runOne(
  drill: Drill,
  db: TestDatabase,
  options: {
    broken?: boolean;
    migrationFile?: string;
    branchName?: string;
    system?: DrillSystem;
    events?: RunnerEvent[];
    serverLog?: string;
    /** The profile the drill goes through (resolveProfile); the reference one when absent. */
    profile?: ProfileInUse;
  } = {},
): Promise<DrillResult> {
  const breaks = new Set<BundleKey>(options.broken ? [drill.key] : []);
  return runDrill(drill, {
    url: db.url,
    display: db.name,
    database: db.name,
    embedded: true,
    serverLog: options.serverLog,
    roles: options.profile?.profile.roles ?? defaultRoles,
    profile: options.profile,
    options: {
      paceMs: 0,
      // The race drill holds A's row until it has seen B lock or wait: no visible hold is needed here.
      claimHoldMs: 0,
      evidenceRoot: path.join(scratchDir('evidence-'), 'oracle'),
      migrationFile: options.migrationFile,
      branchName: options.branchName,
    },
    operator: { request: async (_ask, perform) => perform() },
    breaks,
    system: options.system ?? noProcesses,
    emit: (event) => options.events?.push(event),
  });
}

/**
 * The real Reconciler processes for a test database. The Worker side logs in
 * through a throwaway member of worker_write, so parallel test files never
 * rotate each other's worker_write password.
 */
export async function testSystem(db: Pick<TestDatabase, 'url'>, profile?: Profile): Promise<TestSystem> {
  const { createDrillSystem } = await import('../../src/drills/processes.js');
  const { createWorkerLogin } = await import('../../src/reconciler/launch.js');
  const roles = profile?.roles ?? defaultRoles;
  const login = await createWorkerLogin(db.url, roles);
  const system = createDrillSystem({
    url: db.url,
    roles,
    profile,
    logDir: scratchDir('processes-'),
    workerUrl: async () => login.url,
  });
  return Object.assign(system, {
    async dispose() {
      await system.stopAll();
      await login.drop();
    },
  });
}

export type TestSystem = DrillSystem & { dispose(): Promise<void> };

/**
 * The processes still running, but the session's shared tool server: a drill leaves
 * that one running for the next (src/drills/processes.ts), and nothing else.
 */
export function leftRunning(system: DrillSystem) {
  const shared = system.sharedPid();
  return system
    .list()
    .filter((process) => process.state === 'running' || process.state === 'starting')
    .filter((process) => !(process.name === 'tool-server' && process.pid !== undefined && process.pid === shared));
}

/**
 * A test file's database and Reconciler processes: made before its tests, and
 * afterwards every process stopped (checked by pid) and the database disposed.
 */
export function useDrillTarget(ready: (target: { db: TestDatabase; system: TestSystem }) => void): void {
  let db: TestDatabase | undefined;
  let system: TestSystem | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    system = await testSystem(db);
    ready({ db, system });
  });
  afterAll(async () => {
    const pids = system?.supervisor().startedPids() ?? [];
    await system?.dispose();
    await db?.dispose();
    expect(pids.filter(isAlive)).toEqual([]);
  });
}
