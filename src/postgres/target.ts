// A target is the PostgreSQL database the drills run against: the embedded
// cluster by default, or any connection string the operator owns. The target
// comes only from --db or DATABASE_URL: PG* variables and ~/.pgpass fill in
// what that string leaves out (as libpq does), but never name a target of their
// own, so a shell with PGHOST set still gets the embedded cluster by default.
import { startEmbedded, type EmbeddedCluster } from './embedded.js';
import { connect, TargetError } from './pg.js';
import { maskUrl, parseUrl, withSslMode } from './url.js';
import { onCleanup } from '../util/lifecycle.js';

export interface Target {
  kind: 'embedded' | 'url';
  /** The canonical URL, password included: for connections only, never for display. */
  url: string;
  /** The masked URL, for screens, logs and files. */
  display: string;
  database: string;
  /** For the embedded target, its cluster (log file, kept directory). */
  cluster?: EmbeddedCluster;
  /**
   * The embedded target only: whether close() (and every exit path) keeps the cluster's
   * data for a later start of the same home (EmbeddedCluster.retain); absent for a URL target.
   */
  retain?(yes: boolean): void;
  close(): Promise<void>;
}

export interface ResolveOptions {
  db?: string;
  keep?: boolean;
  onProgress?: (message: string) => void;
  /** The embedded target only: a named home for its cluster, started again by a later console (StartOptions.home). */
  home?: string;
}

/** --db, else DATABASE_URL (a URL or keyword/value string), else an embedded cluster (a fresh one, or the home's). */
export async function resolveTarget(options: ResolveOptions): Promise<Target> {
  const given = options.db ?? process.env.DATABASE_URL;
  if (given) {
    const parsed = parseUrl(given);
    const url = parsed.url;
    // Reach it once now so an unreachable target fails before anything else starts.
    const client = await connect(url);
    try {
      const { rows } = await client.query<{ version: number }>(
        `select current_setting('server_version_num')::int as version`,
      );
      const version = rows[0]?.version ?? 0;
      if (version < 140000) {
        throw new TargetError(
          `${maskUrl(url)} runs PostgreSQL ${Math.floor(version / 10000)}; sor-drills needs 14 or newer`,
        );
      }
    } finally {
      await client.end().catch(() => {});
    }
    return { kind: 'url', url, display: maskUrl(url), database: parsed.database, close: async () => {} };
  }
  const cluster = await startEmbedded({ keep: options.keep, onProgress: options.onProgress, home: options.home });
  const forget = onCleanup('embedded postgres', () => cluster.stop());
  return {
    kind: 'embedded',
    // The embedded cluster has no TLS: say so, rather than trying TLS first (libpq's prefer) on every connection.
    url: withSslMode(cluster.url, 'disable'),
    display: cluster.display,
    database: 'sor_drills',
    cluster,
    retain: (yes) => cluster.retain(yes),
    close: async () => {
      forget();
      await cluster.stop();
    },
  };
}
