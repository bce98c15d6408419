// `--keep`: how to reach the embedded cluster left running, for `setup`, `run` and
// the console alike, without printing its password (it is in the pgpass file).
import type { EmbeddedCluster } from './embedded.js';

/** Tells the operator how to reach a kept cluster without printing its password. */
export function printKept(cluster: EmbeddedCluster): void {
  process.stderr.write(
    [
      `kept the embedded cluster in ${cluster.dir}`,
      `  psql: PGPASSFILE=${cluster.passFile} psql 'postgres://postgres@127.0.0.1:${cluster.port}/sor_drills'`,
      `  stop it: kill -INT $(head -1 ${cluster.dir}/data/postmaster.pid) && rm -rf ${cluster.dir}`,
      '',
    ].join('\n'),
  );
}
