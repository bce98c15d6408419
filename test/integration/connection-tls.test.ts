// Reaching a server the way psql does: a second embedded cluster, started here
// with ssl=on, a self-signed certificate made here with openssl, and pg_hba.conf
// letting only TLS connections in (hostssl). Through the built CLI and in
// process: every sslmode with libpq's meaning, keyword/value strings, PG*
// variables and a password file filling a URL's gaps, and no password, stack
// trace or driver warning on the terminal.
//
// The certificate is issued for the name `localhost` only, not for 127.0.0.1,
// so the same server shows what verify-full adds to verify-ca: the host name.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { scratchDir } from '../helpers/scratch.js';
import { startEmbedded, type EmbeddedCluster } from '../../src/postgres/embedded.js';
import { connect, literal, sqlState, withPgClient } from '../../src/postgres/pg.js';
import { parseUrl, withCredentials, withSslMode } from '../../src/postgres/url.js';

let cluster: EmbeddedCluster;
let certDir: string;
let certFile: string;
/** The CLI's HOME: an empty directory, so this machine's ~/.pgpass and ~/.postgresql stay out. */
let home: string;
let password: string;
let port: number;
/** The superuser URL over 127.0.0.1 (no sslmode: libpq's prefer). */
let baseUrl: string;
const kvRole = `conn_kv_${process.pid}`;
const kvPassword = `it's a s3cret ${process.pid}`;

/** The same URL reaching the server by the name the certificate lists. */
const viaLocalhost = (url: string) => url.replace('@127.0.0.1:', '@localhost:');

async function waitFor(what: string, condition: () => Promise<boolean>, deadlineMs = 15_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'server.crt');
  const key = path.join(dir, 'server.key');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
      .concat(['-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost']),
    { stdio: 'pipe' },
  );
  // postgres refuses a key others can read; as root it runs as the postgres user, whose key it must be.
  chmodSync(key, 0o600);
  if (userInfo().uid === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(key, id('-u'), id('-g'));
  }
  return { cert, key };
}

/** Lets only TLS connections in, and waits until a plain one is refused by the server. */
async function requireTls(): Promise<void> {
  const hba = path.join(cluster.dir, 'data', 'pg_hba.conf');
  writeFileSync(hba, readFileSync(hba, 'utf8').replace(/^host(\s)/gm, 'hostssl$1'));
  await withPgClient(withSslMode(baseUrl, 'require'), (client) => client.query('select pg_reload_conf()'));
  await waitFor('plain connections to be refused', async () => {
    try {
      const client = await connect(withSslMode(baseUrl, 'disable'));
      await client.end();
      return false;
    } catch (error) {
      return (error as { code?: string }).code === '28000';
    }
  });
}

async function sslInUse(url: string): Promise<boolean> {
  return withPgClient(url, async (client) => {
    const { rows } = await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    return rows[0]!.ssl;
  });
}

function cli(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { env: { HOME: home, ...env } });
}

/** Nothing secret and no driver or Node warning anywhere in the output. */
function expectQuiet(result: { stdout: string; stderr: string }, secrets: string[] = [password]): void {
  const output = `${result.stdout}\n${result.stderr}`;
  for (const secret of secrets) expect(output).not.toContain(secret);
  expect(output).not.toMatch(/SECURITY WARNING|\(node:\d+\)|DeprecationWarning/);
}

/** A failure as the operator reads it: exactly one line on stderr, no stack. */
function expectOneLine(result: { stderr: string }, pattern: RegExp): void {
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^sor-drills: /);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/^\s+at /m);
}

beforeAll(async () => {
  // Not under the test scratch root: that directory is private to root, and postgres reads these files as its own user.
  certDir = mkdtempSync(path.join(tmpdir(), 'sor-test-tls-'));
  chmodSync(certDir, 0o755);
  const { cert, key } = makeCertificate(certDir);
  certFile = cert;
  home = scratchDir('tls-home-');
  cluster = await startEmbedded({ settings: { ssl: 'on', ssl_cert_file: cert, ssl_key_file: key } });
  port = cluster.port;
  baseUrl = cluster.url;
  password = parseUrl(cluster.url, {}).password;
  await requireTls();
  await withPgClient(withSslMode(baseUrl, 'require'), (client) =>
    client.query(`create role ${kvRole} login superuser password ${literal(kvPassword)}`),
  );
});

afterAll(async () => {
  await cluster?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

describe('sslmode as libpq means it', () => {
  it('require encrypts without verifying: setup --db installs through it', async () => {
    const result = await cli(['setup', '--db', `${baseUrl}?sslmode=require`]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/applied 20260101000003_security/);
    expect(result.stderr).toMatch(/target: postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/sor_drills\?sslmode=require/);
    expectQuiet(result);
    const { rows } = await withPgClient(withSslMode(baseUrl, 'require'), (client) =>
      client.query<{ n: number }>('select count(*)::int as n from expenses'),
    );
    expect(rows[0]?.n).toBe(78);
  });

  it('verify-full without sslrootcert exits 3 with one line naming the certificate problem and the sslmode to use', async () => {
    const result = await cli(['setup', '--db', viaLocalhost(`${baseUrl}?sslmode=verify-full`)]);
    expect(result.exitCode).toBe(3);
    expectOneLine(result, /cannot verify the TLS certificate .*self-signed certificate \(sslmode=verify-full\).*sslrootcert=FILE.*sslmode=require/);
    expectQuiet(result);
  });

  it('verify-full with sslrootcert naming the certificate connects by the name it is issued for', async () => {
    const url = viaLocalhost(`${baseUrl}?sslmode=verify-full&sslrootcert=${certFile}`);
    const result = await cli(['setup', '--db', url]);
    expect(result.exitCode, result.stderr).toBe(0);
    expectQuiet(result);
    expect(await sslInUse(url)).toBe(true);
  });

  it('verify-full refuses a host name the certificate does not list; verify-ca and require with a root certificate accept it', async () => {
    const result = await cli(['setup', '--db', `${baseUrl}?sslmode=verify-full&sslrootcert=${certFile}`]);
    expect(result.exitCode).toBe(3);
    expectOneLine(result, /TLS certificate of .* is not issued for 127\.0\.0\.1.*sslmode=verify-ca/);
    expectQuiet(result);
    expect(await sslInUse(`${baseUrl}?sslmode=verify-ca&sslrootcert=${certFile}`)).toBe(true);
    expect(await sslInUse(`${baseUrl}?sslmode=require&sslrootcert=${certFile}`)).toBe(true);
  });

  it('verify-ca without a root certificate checks the chain against the system store, and fails on this one', async () => {
    await expect(connect(`${baseUrl}?sslmode=verify-ca`)).rejects.toMatchObject({
      name: 'TargetError',
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
  });

  it('allow and prefer fall back; disable is refused by a server that takes only TLS', async () => {
    expect(await sslInUse(withSslMode(baseUrl, 'allow'))).toBe(true);
    expect(await sslInUse(baseUrl)).toBe(true);
    const refused = await connect(withSslMode(baseUrl, 'disable')).catch((error: unknown) => error);
    expect(refused).toMatchObject({ name: 'TargetError', code: '28000' });
    expect(sqlState((refused as { cause?: unknown }).cause)).toBe('28000');
    expect(String((refused as Error).message)).not.toContain(password);
  });
});

describe('keyword/value strings, PG* variables and the password file', () => {
  it('a keyword/value string connects, its quoted password included, and is never printed', async () => {
    const escaped = kvPassword.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
    const db = `host=localhost port=${port} dbname=sor_drills user=${kvRole} password='${escaped}' sslmode=verify-full sslrootcert='${certFile}'`;
    const result = await cli(['setup', '--db', db]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`target: postgres://${kvRole}:\\*\\*\\*@localhost:${port}/sor_drills\\?sslmode=verify-full`));
    expectQuiet(result, [kvPassword, "it's", encodeURIComponent(kvPassword)]);
  });

  it('DATABASE_URL may be a keyword/value string too', async () => {
    const result = await cli(['setup'], {
      DATABASE_URL: `host=127.0.0.1 port=${port} dbname=sor_drills user=postgres password=${password} sslmode=require`,
    });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/already installed/);
    expectQuiet(result);
  });

  it('PG* variables fill what the URL leaves out, and a URL part wins over its variable', async () => {
    const env = {
      PGHOST: 'localhost',
      PGPORT: String(port),
      PGUSER: 'postgres',
      PGPASSWORD: password,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: certFile,
    };
    const result = await cli(['setup', '--db', 'postgresql:///sor_drills'], env);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`target: postgres://postgres:\\*\\*\\*@localhost:${port}/sor_drills\\?sslmode=verify-full`));
    expectQuiet(result);
    // The URL names its own sslmode and host: PGSSLMODE and PGHOST give way.
    const named = await cli(['setup', '--db', `postgresql://127.0.0.1/sor_drills?sslmode=require`], { ...env, PGHOST: 'nowhere.invalid' });
    expect(named.exitCode, named.stderr).toBe(0);
    expectQuiet(named);
  });

  it('PGAPPNAME names the session unless the string does', async () => {
    const env = { PGPASSWORD: password, PGAPPNAME: 'from-pgappname', HOME: home };
    const appName = async (raw: string) =>
      withPgClient(parseUrl(raw, env).url, async (client) => (await client.query<{ name: string }>(`select current_setting('application_name') as name`)).rows[0]!.name);
    expect(await appName(`postgres://postgres@127.0.0.1:${port}/sor_drills?sslmode=require`)).toBe('from-pgappname');
    expect(await appName(`postgres://postgres@127.0.0.1:${port}/sor_drills?sslmode=require&application_name=mine`)).toBe('mine');
  });

  it('a password file (PGPASSFILE) supplies the password; one others can read is ignored, as libpq ignores it', async () => {
    const dir = scratchDir('pgpass-');
    const file = path.join(dir, 'pgpass');
    writeFileSync(file, `# ours\nelsewhere:5432:*:postgres:wrong\nlocalhost:${port}:*:postgres:${password.replace(/:/g, '\\:')}\n`, { mode: 0o600 });
    const url = `postgres://postgres@localhost:${port}/sor_drills?sslmode=require`;
    const result = await cli(['setup', '--db', url], { PGPASSFILE: file });
    expect(result.exitCode, result.stderr).toBe(0);
    expectQuiet(result);

    chmodSync(file, 0o644);
    const ignored = await cli(['setup', '--db', url], { PGPASSFILE: file });
    expect(ignored.exitCode).toBe(3);
    expectOneLine(ignored, /asks for a password and none was given.*PGPASSWORD or ~\/\.pgpass/);
    expectQuiet(ignored);
  });

  it('~/.pgpass is read from HOME when PGPASSFILE is unset', async () => {
    const ownHome = scratchDir('pgpass-home-');
    writeFileSync(path.join(ownHome, '.pgpass'), `*:*:*:${kvRole}:${kvPassword.replace(/\\/g, '\\\\').replace(/:/g, '\\:')}\n`, { mode: 0o600 });
    const url = `postgres://${kvRole}@127.0.0.1:${port}/sor_drills?sslmode=require`;
    const result = await runCli(['setup', '--db', url], { env: { HOME: ownHome } });
    expect(result.exitCode, result.stderr).toBe(0);
    expectQuiet(result, [kvPassword, "it's"]);
  });

  it('a wrong password is one line, exit 3, and the password given is not in it', async () => {
    const wrong = `Wr0ng-${process.pid}-pw`;
    const result = await cli(['setup', '--db', withCredentials(`${baseUrl}?sslmode=require`, 'postgres', wrong)]);
    expect(result.exitCode).toBe(3);
    expectOneLine(result, /authentication failed/);
    expectQuiet(result, [password, wrong]);
  });
});
