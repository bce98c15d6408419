// A branch of the target for trying a migration: a Neon branch when Neon
// credentials are configured, else a copy of the target database made with
// CREATE DATABASE ... TEMPLATE. The target itself is never migrated.
import type pg from 'pg';
import { connect, ident, literal, sqlState, withPgClient, errorMessage } from './pg.js';
import { withDatabase } from './url.js';

export interface Branch {
  name: string;
  kind: 'template' | 'neon';
  /** Connection URL of the branch (secret). */
  url: string;
  describe: string;
  drop(): Promise<void>;
}

export class BranchUnavailable extends Error {
  override name = 'BranchUnavailable';
}

const branchComment = 'sor-drills migration branch';

/**
 * A connection to the server's maintenance database, for CREATE/DROP DATABASE: postgres,
 * else template1. The probe's connection is the one used, not opened a second time.
 */
async function connectMaintenance(url: string): Promise<{ client: pg.Client; url: string }> {
  for (const database of ['postgres', 'template1']) {
    const candidate = withDatabase(url, database);
    try {
      return { client: await connect(candidate), url: candidate };
    } catch {
      // try the next one
    }
  }
  throw new BranchUnavailable('cannot connect to the maintenance database (postgres or template1) to create the branch');
}

export async function createTemplateBranch(url: string, database: string, name: string): Promise<Branch> {
  const { client, url: admin } = await connectMaintenance(url);
  try {
    const existing = await client.query<{ comment: string | null }>(
      `select shobj_description(oid, 'pg_database') as comment from pg_database where datname = $1`,
      [name],
    );
    if (existing.rows.length > 0) {
      if (existing.rows[0]?.comment !== branchComment) {
        throw new BranchUnavailable(`a database named ${name} already exists and is not a sor-drills branch; drop or rename it`);
      }
      await client.query(`drop database ${ident(name)} with (force)`);
    }
    try {
      await client.query(`create database ${ident(name)} template ${ident(database)}`);
    } catch (error) {
      const code = sqlState(error);
      if (code === '55006') {
        const sessions = await client.query<{ who: string }>(
          `select coalesce(nullif(application_name, ''), usename) || ' (pid ' || pid || ')' as who
             from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() order by pid`,
          [database],
        );
        throw new BranchUnavailable(
          `cannot copy ${database} while other sessions use it (55006): ${sessions.rows.map((row) => row.who).join(', ') || 'unknown'}; close them and retry`,
        );
      }
      if (code === '42501') throw new BranchUnavailable('missing privilege CREATEDB: needed to copy the target into the branch');
      throw new BranchUnavailable(`cannot create the branch ${name}: ${errorMessage(error)}`);
    }
    await client.query(`comment on database ${ident(name)} is ${literal(branchComment)}`);
  } finally {
    await client.end().catch(() => {});
  }
  // The drill drops the branch in its last step and again in its cleanup (for a step that failed first): once dropped, the second is a no-op.
  let dropped = false;
  return {
    name,
    kind: 'template',
    url: withDatabase(url, name),
    describe: `${name} (a copy of ${database} made with CREATE DATABASE ... TEMPLATE)`,
    async drop() {
      if (dropped) return;
      await withPgClient(admin, (client) => client.query(`drop database if exists ${ident(name)} with (force)`));
      dropped = true;
    },
  };
}

interface NeonBranchResponse {
  branch: { id: string; name: string };
  connection_uris?: Array<{ connection_uri: string }>;
}

/** A Neon branch through the Neon API (NEON_API_KEY, NEON_PROJECT_ID). */
export async function createNeonBranch(
  credentials: { apiKey: string; projectId: string },
  database: string,
  name: string,
): Promise<Branch> {
  const base = `https://console.neon.tech/api/v2/projects/${encodeURIComponent(credentials.projectId)}`;
  const headers = {
    authorization: `Bearer ${credentials.apiKey}`,
    'content-type': 'application/json',
    accept: 'application/json',
  };
  const response = await fetch(`${base}/branches`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ branch: { name }, endpoints: [{ type: 'read_write' }] }),
    signal: AbortSignal.timeout(30_000),
  });
  if (!response.ok) {
    throw new BranchUnavailable(`the Neon API refused to create branch ${name}: HTTP ${response.status}`);
  }
  const body = (await response.json()) as NeonBranchResponse;
  const uri = body.connection_uris?.[0]?.connection_uri;
  if (!uri) throw new BranchUnavailable(`the Neon API returned no connection URI for branch ${name}`);
  return {
    name,
    kind: 'neon',
    url: withDatabase(uri, database),
    describe: `Neon branch ${name} (${body.branch.id})`,
    async drop() {
      await fetch(`${base}/branches/${encodeURIComponent(body.branch.id)}`, {
        method: 'DELETE',
        headers,
        signal: AbortSignal.timeout(30_000),
      });
    },
  };
}
