// A target is the PostgreSQL database the drills run against: the embedded
// cluster by default, or any URL the operator owns.
import { startEmbedded, type EmbeddedCluster } from './embedded.js';
import { connect, TargetError } from './pg.js';
import { maskUrl, parseUrl } from './url.js';
import { onCleanup } from '../util/lifecycle.js';

export interface Target {
  kind: 'embedded' | 'url';
  /** The full URL, password included: for connections only, never for display. */
  url: string;
  /** The masked URL, for screens, logs and files. */
  display: string;
  database: string;
  /** For the embedded target, its cluster (log file, kept directory). */
  cluster?: EmbeddedCluster;
  close(): Promise<void>;
}

export interface ResolveOptions {
  db?: string;
  keep?: boolean;
  onProgress?: (message: string) => void;
}

/** --db URL, else DATABASE_URL, else a fresh embedded cluster. */
export async function resolveTarget(options: ResolveOptions): Promise<Target> {
  const url = options.db ?? process.env.DATABASE_URL;
  if (url) {
    const parsed = parseUrl(url);
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
  const cluster = await startEmbedded({ keep: options.keep, onProgress: options.onProgress });
  const forget = onCleanup('embedded postgres', () => cluster.stop());
  return {
    kind: 'embedded',
    url: cluster.url,
    display: cluster.display,
    database: 'sor_drills',
    cluster,
    close: async () => {
      forget();
      await cluster.stop();
    },
  };
}
