// Issue 12's "done when", as a new user would do it: a learner's Reconciler written
// in the course's vocabulary (fixtures/other-reconciler, not the reference schema),
// on a server sor-drills did not create, with a password on its worker role. It is
// drafted with `sor-drills profile`, run unedited with `--profile`, and all nine
// drills pass; with its unique key dropped the idempotency drill fails through the
// same profile; its roles still log in, and no role or setting of the server changed.
//
// The server is a cluster of this file's own (pg_authid and pg_settings can be
// compared exactly only where nothing else runs), with pg_stat_statements preloaded
// and installed: on a URL target that is the boundary drill's statement log.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { exampleDir, exampleProfile, installOtherReconciler, otherProfile, otherRoles } from '../helpers/other-reconciler.js';
import { scratchDir } from '../helpers/scratch.js';
import { parseBundle } from '../../src/drills/bundle.js';
import { bundleKeys } from '../../src/drills/types.js';
import { startEmbedded, type EmbeddedCluster } from '../../src/postgres/embedded.js';
import { ident, literal, sqlState, withPgClient } from '../../src/postgres/pg.js';
import { withCredentials } from '../../src/postgres/url.js';

const roles = otherRoles('learner');
const workerPassword = `learner-${randomBytes(9).toString('base64url')}`;
let cluster: EmbeddedCluster;
let target: string;
let dir: string;
let profileFile: string;

beforeAll(async () => {
  dir = scratchDir('profile-run-');
  cluster = await startEmbedded({ database: 'learner', settings: { shared_preload_libraries: 'pg_stat_statements' } });
  target = cluster.url;
  await installOtherReconciler(target, roles);
  await withPgClient(target, async (client) => {
    await client.query('create extension pg_stat_statements');
    await client.query(`alter role ${ident(roles.worker_write)} password ${literal(workerPassword)}`);
  });
  profileFile = path.join(dir, 'profile.json');
});
afterAll(async () => {
  await cluster?.stop();
});

/** What a run must leave alone, cluster-wide. */
async function serverState() {
  return withPgClient(target, async (client) => {
    const rows = async (sql: string) => (await client.query(sql)).rows;
    return {
      roles: await rows(
        `select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolpassword, rolvaliduntil
           from pg_authid order by rolname`,
      ),
      memberships: await rows(
        `select r.rolname as role, m.rolname as member from pg_auth_members a
           join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member order by 1, 2`,
      ),
      settings: await rows(`select name, setting from pg_settings order by name`),
      tables: await rows(`select relname from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r' order by 1`),
    };
  });
}

async function logIn(role: string, password: string): Promise<string> {
  try {
    return await withPgClient(withCredentials(target, role, password), async (client) => {
      const { rows } = await client.query<{ who: string }>('select current_user as who');
      return `logged in as ${rows[0]?.who}`;
    });
  } catch (error) {
    return `refused: ${sqlState(error) ?? 'unknown'}`;
  }
}

async function run(args: string[]) {
  const out = path.join(dir, `bundle-${randomBytes(3).toString('hex')}.md`);
  const result = await runCli(['run', '--db', target, '--yes', '--pace', '0', '--out', out, ...args], { cwd: dir, timeout: 300_000 });
  const written = await readFile(out, 'utf8').catch(() => undefined);
  if (written === undefined) throw new Error(`the run wrote no bundle (exit ${result.exitCode}): ${result.stderr.trim()}`);
  return { ...result, bundle: parseBundle(written).bundle };
}

describe("a learner's own Reconciler, drafted and drilled", () => {
  it('sor-drills profile drafts it right with no edits', async () => {
    const drafted = await runCli(['profile', '--db', target, '--out', profileFile], { cwd: dir });
    expect(drafted.exitCode, drafted.stderr).toBe(0);
    const { $schema: _schema, ...written } = JSON.parse(await readFile(profileFile, 'utf8'));
    const { $schema: _expected, ...expected } = await otherProfile(roles);
    expect(written).toEqual(expected);
  });

  it('all nine drills pass through it, and the server is as it was: roles, passwords, settings, tables', async () => {
    const before = await serverState();
    const result = await run(['--profile', profileFile]);
    const verdicts = Object.fromEntries(bundleKeys.map((key) => [key, result.bundle[key]]));
    expect(result.exitCode, `${result.stderr}\n${JSON.stringify(verdicts, null, 1)}`).toBe(0);
    for (const key of bundleKeys) expect(String(result.bundle[key]), key).toMatch(/^pass\b/);
    expect(result.stderr).toContain(`profile: ${profileFile} fits the target`);
    expect(await serverState()).toEqual(before);
    expect(await logIn(roles.worker_write, workerPassword)).toBe(`logged in as ${roles.worker_write}`);
  });

  it('with its unique idempotency key dropped, the idempotency drill fails through the same profile', async () => {
    await withPgClient(target, (client) => client.query('alter table expenses drop constraint expenses_idempotency_key_key'));
    try {
      const result = await run(['--profile', profileFile, '--only', 'idempotency_retry_test']);
      expect(result.exitCode).toBe(1);
      expect(String(result.bundle.idempotency_retry_test)).toMatch(/^fail\b/);
    } finally {
      await withPgClient(target, (client) =>
        client.query('alter table expenses add constraint expenses_idempotency_key_key unique (idempotency_key)'),
      );
    }
  });

  it("with the example's own Worker side named in the profile, all nine pass, each naming whose process was drilled", async () => {
    const example = await exampleProfile(roles);
    // Written beside the drafted one, so its commands are made absolute.
    const processes = structuredClone(example.processes!);
    for (const spec of [processes.tool_server, processes.worker, processes.relay]) {
      if (spec) spec.command = spec.command.map((part) => (part.endsWith('.mjs') ? path.join(exampleDir, part) : part));
    }
    const file = path.join(dir, 'example-profile.json');
    await import('node:fs/promises').then((fs) => fs.writeFile(file, JSON.stringify({ ...example, processes })));
    const result = await run(['--profile', file]);
    const verdicts = Object.fromEntries(bundleKeys.map((key) => [key, result.bundle[key]]));
    expect(result.exitCode, `${result.stderr}\n${JSON.stringify(verdicts, null, 1)}`).toBe(0);
    for (const key of ['run_journal_resume_drill', 'idempotency_retry_test', 'concurrency_claim_test', 'mcp_boundary_test']) {
      expect(result.stderr, key).toMatch(new RegExp(`= PASS: .*the operator's (Worker|tool server) \`node ${exampleDir}/`));
    }
    expect(result.stderr).toMatch(/= PASS: The operator's relay `node /);
    expect(await logIn(roles.worker_write, workerPassword)).toBe(`logged in as ${roles.worker_write}`);
  });

  it('a profile that does not fit is refused before any drill, naming the key (exit 2)', async () => {
    const wrong = path.join(dir, 'wrong.json');
    const profile = JSON.parse(await readFile(profileFile, 'utf8'));
    profile.runs.status.values.finished = 'finished';
    await import('node:fs/promises').then((fs) => fs.writeFile(wrong, JSON.stringify(profile)));
    const result = await runCli(['run', '--db', target, '--yes', '--profile', wrong], { cwd: dir });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(
      "runs.status.values.finished is 'finished', which the CHECK runs_status_check on runs.status does not allow (it allows 'running', 'completed', 'failed')",
    );
    expect(result.stderr.trim().split('\n').filter((line) => line.startsWith('sor-drills:'))).toHaveLength(1);
  });
});
