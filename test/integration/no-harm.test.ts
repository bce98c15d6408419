// No harm to a server sor-drills did not create: a run on a target given by --db
// changes no role (password, attributes, memberships, per-role settings), adds
// or drops none, and changes no server setting. The tool server and relay act as
// the worker role by SET ROLE from the connecting role, or log in with
// SOR_WORKER_URL; a connecting role that may not SET ROLE gets could-not-determine.
//
// The target is a cluster of this file's own, started here: to the program it is
// a URL target like any staging server (it did not start it). Roles and settings
// are cluster-wide, and on the shared test cluster other files create throwaway
// roles and the boundary drill turns log_statement on with ALTER SYSTEM while they
// run, so "pg_authid and pg_settings unchanged" can only be compared exactly, with
// no filter, on a cluster nothing else touches.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { scratchDir } from '../helpers/scratch.js';
import { parseBundle } from '../../src/drills/bundle.js';
import { startEmbedded, type EmbeddedCluster } from '../../src/postgres/embedded.js';
import { ident, literal, sqlState, withPgClient } from '../../src/postgres/pg.js';
import { setup } from '../../src/postgres/setup.js';
import { withCredentials } from '../../src/postgres/url.js';

let cluster: EmbeddedCluster;
let dir: string;
/** The superuser URL of the target database: what an operator passes as --db. */
let target: string;
/** worker_write's password, set before any run the way an operator's own Worker would have it. */
const workerPassword = `known-${randomBytes(9).toString('base64url')}`;
/**
 * A login that may not act as the worker role: a member of the schema's owner, not of worker_write.
 * BYPASSRLS, so the drill's own counts (read outside any tenant) see the rows FORCE would hide from the owner.
 */
const outsider = `sor_noharm_outsider_${randomBytes(3).toString('hex')}`;
const outsiderPassword = `outsider-${randomBytes(9).toString('base64url')}`;

const processDrills = ['idempotency_retry_test', 'concurrency_claim_test', 'outbox_relay_retry_test'] as const;

beforeAll(async () => {
  dir = scratchDir('no-harm-');
  cluster = await startEmbedded({ database: 'staging' });
  target = cluster.url;
  await setup(target, { embedded: false, yes: true });
  await withPgClient(target, async (client) => {
    await client.query(`alter role worker_write password ${literal(workerPassword)}`);
    await client.query(`create role ${ident(outsider)} login bypassrls password ${literal(outsiderPassword)} in role reconciler_owner`);
    // The run reads which migrations are installed before any drill; setup's table belongs to the installer.
    await client.query(`grant select on schema_migrations to ${ident(outsider)}`);
  });
});
afterAll(async () => {
  await cluster?.stop();
});

/** Everything cluster-wide a run must leave alone, each read on a fresh connection. */
async function serverState(url: string) {
  return withPgClient(url, async (client) => {
    const rows = async (sql: string) => (await client.query(sql)).rows;
    return {
      roles: await rows(
        `select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
                rolpassword, rolvaliduntil
           from pg_authid order by rolname`,
      ),
      memberships: await rows(
        `select r.rolname as role, m.rolname as member, a.admin_option
           from pg_auth_members a join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member
          order by 1, 2`,
      ),
      roleSettings: await rows(
        `select coalesce(d.datname, '') as database, coalesce(r.rolname, '') as role, s.setconfig
           from pg_db_role_setting s left join pg_database d on d.oid = s.setdatabase left join pg_roles r on r.oid = s.setrole
          order by 1, 2`,
      ),
      settings: await rows(`select name, setting from pg_settings order by name`),
      fileSettings: await rows(`select * from pg_file_settings order by seqno`),
    };
  });
}

/** Logs in as a role with a password; the SQLSTATE when the server refuses it. */
async function logIn(role: string, password: string): Promise<string> {
  try {
    return await withPgClient(withCredentials(target, role, password), async (client) => {
      const { rows } = await client.query<{ who: string }>('select current_user as who');
      return `logged in as ${rows[0]?.who}`;
    });
  } catch (error) {
    return `refused: ${sqlState(error) ?? (error as { code?: string }).code ?? 'unknown'}`;
  }
}

async function run(db: string, drills: readonly string[], env: Record<string, string> = {}) {
  const out = path.join(dir, `bundle-${randomBytes(3).toString('hex')}.md`);
  const result = await runCli(
    ['run', '--db', db, '--yes', '--pace', '0', '--out', out, ...drills.flatMap((key) => ['--only', key])],
    { cwd: dir, env, timeout: 300_000 },
  );
  const written = await readFile(out, 'utf8').catch(() => undefined);
  if (written === undefined) throw new Error(`the run wrote no bundle (exit ${result.exitCode}): ${result.stderr.trim()}`);
  return { ...result, bundle: parseBundle(written).bundle };
}

describe('a run on a server sor-drills did not create', () => {
  it('the login check can fail: a wrong password for worker_write is refused', async () => {
    expect(await logIn('worker_write', workerPassword)).toBe('logged in as worker_write');
    expect(await logIn('worker_write', `${workerPassword}-wrong`)).toBe('refused: 28P01');
  });

  it('drills that start the tool server and relay pass acting as worker_write by SET ROLE, and change no role or setting', async () => {
    const before = await serverState(target);
    const result = await run(target, processDrills);
    for (const key of processDrills) expect(result.bundle[key], `${key}: ${result.stderr}`).toBe('pass');
    expect(result.exitCode, result.stderr).toBe(1); // BLOCKED only by the six drills --only left out
    expect(await logIn('worker_write', workerPassword)).toBe('logged in as worker_write');
    expect(await serverState(target)).toEqual(before);
  }, 360_000);

  it('a connecting role that may not SET ROLE worker_write: could-not-determine naming the grant, nothing changed; SOR_WORKER_URL is the way out', async () => {
    const outsiderUrl = withCredentials(target, outsider, outsiderPassword);
    const before = await serverState(target);

    const refused = await run(outsiderUrl, ['idempotency_retry_test']);
    expect(refused.bundle.idempotency_retry_test, refused.stderr).toBe(
      `fail: could not determine: the connecting role ${outsider} may not SET ROLE worker_write ` +
        '(neither superuser nor a member of worker_write), so the tool server and relay cannot act as the Worker role; ' +
        `have the operator run \`grant worker_write to ${outsider}\`, or set SOR_WORKER_URL to a login of worker_write`,
    );
    expect(refused.exitCode).toBe(1);
    expect(await serverState(target)).toEqual(before);

    // The second way out: the operator's own credentials for the worker role.
    const given = await run(outsiderUrl, ['idempotency_retry_test'], {
      SOR_WORKER_URL: withCredentials(target, 'worker_write', workerPassword),
    });
    expect(given.bundle.idempotency_retry_test, given.stderr).toBe('pass');
    expect(await logIn('worker_write', workerPassword)).toBe('logged in as worker_write');
    expect(await serverState(target)).toEqual(before);
  }, 360_000);
});
