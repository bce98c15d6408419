// Connection strings as libpq reads them, without a server: both forms parsed
// into one canonical URL, libpq's defaults, PG* variables and the password file
// filling gaps, the TLS settings each sslmode yields, and masking.
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/scratch.js';
import { formatUrl, parseConnectionString, parseKeywordValue } from '../../src/postgres/connection-string.js';
import { readConnectionString, tlsAttempts } from '../../src/postgres/connection.js';
import { pgpassPassword } from '../../src/postgres/pgpass.js';
import { ident, literal } from '../../src/postgres/pg.js';
import { maskSecrets, maskUrl, parseUrl, withCredentials, withDatabase } from '../../src/postgres/url.js';

/** An environment with nothing in it but a HOME holding no .pgpass or ~/.postgresql. */
const bare = () => ({ HOME: scratchDir('home-') });

describe('keyword/value strings', () => {
  it("reads libpq's quoting: single quotes, backslash escapes, spaces around =, empty values", () => {
    expect(parseKeywordValue(`host=db port = 5433  dbname='my app' user=me password='it\\'s a \\\\ secret' options=`)).toEqual({
      host: 'db',
      port: '5433',
      dbname: 'my app',
      user: 'me',
      password: "it's a \\ secret",
      options: '',
    });
    expect(parseKeywordValue(`password=a\\ b`)).toEqual({ password: 'a b' });
  });

  it('refuses what libpq refuses, in one line naming the problem', () => {
    expect(() => parseConnectionString('mydb')).toThrow(/missing "=" after "mydb"/);
    expect(() => parseConnectionString(`host=db password='open`)).toThrow(/unterminated quoted value of password/);
    expect(() => parseConnectionString('host=db colour=blue')).toThrow(/unknown connection parameter "colour"/);
    expect(() => parseConnectionString('host=a,b')).toThrow(/several hosts/);
    expect(() => parseConnectionString('hostaddr=10.0.0.1')).toThrow(/hostaddr .* not supported/);
    expect(() => parseConnectionString('sslmode=on')).toThrow(/sslmode=on .* not accepted/);
    expect(() => parseConnectionString('port=54x')).toThrow(/port .* not a number/);
    expect(() => parseConnectionString('mysql://db/app')).toThrow(/scheme mysql:\/\//);
    expect(() => parseConnectionString('postgres://a:1,b:2/app')).toThrow(/several hosts/);
    for (const raw of ['mydb', 'host=a,b', 'postgres://db/app?colour=blue']) {
      expect(() => parseConnectionString(raw)).toThrow(expect.objectContaining({ name: 'UsageError' }));
    }
  });
});

describe('URLs', () => {
  it('take the authority from pg-connection-string and the query as libpq decodes it', () => {
    expect(parseConnectionString('postgresql://me:p%40ss@[::1]:5433/my%2Fdb?application_name=a+b&options=-c%20x%3Dy')).toEqual({
      user: 'me',
      password: 'p@ss',
      host: '::1',
      port: '5433',
      dbname: 'my/db',
      application_name: 'a+b',
      options: '-c x=y',
    });
    expect(parseConnectionString('postgres://%2Fvar%2Frun%2Fpostgresql/app')).toEqual({ host: '/var/run/postgresql', dbname: 'app' });
    expect(parseConnectionString('postgresql:///app?host=/tmp&port=5439')).toEqual({ dbname: 'app', host: '/tmp', port: '5439' });
    expect(parseConnectionString('postgres://db/app?ssl=true')).toEqual({ host: 'db', dbname: 'app', sslmode: 'require' });
  });

  it('come out canonical: parsing the canonical URL gives the same keywords back', () => {
    for (const raw of [
      'postgres://me:s3cret@db.example.com:5432/app?sslmode=require',
      `host=db port=5433 dbname='my app' user=me password='a b&c' sslmode=verify-full sslrootcert=/etc/ca.pem`,
      'postgresql://me@[::1]/app?options=-c%20search_path%3Dx',
      'host=/var/run/postgresql port=5439 dbname=app user=me',
    ]) {
      const keywords = parseConnectionString(raw);
      expect(parseConnectionString(formatUrl(keywords)), raw).toEqual(keywords);
    }
    expect(formatUrl(parseConnectionString('host=db dbname=app user=me sslmode=prefer'))).toBe('postgres://me@db/app');
  });
});

describe('defaults and the environment', () => {
  it("a missing database is the user's name, a missing port 5432, and sslmode prefers TLS", () => {
    expect(parseUrl('postgres://me@db.example.com', bare())).toMatchObject({
      url: 'postgres://me@db.example.com:5432/me',
      database: 'me',
      port: 5432,
      sslmode: 'prefer',
    });
    expect(parseUrl('host=db', { ...bare(), PGUSER: 'them' }).database).toBe('them');
  });

  it('PG* variables fill the gaps, never override what the string says, and are checked', () => {
    const env = { ...bare(), PGHOST: 'envhost', PGPORT: '6000', PGUSER: 'envuser', PGPASSWORD: 'envpw', PGSSLMODE: 'require', PGAPPNAME: 'envapp' };
    expect(parseUrl('dbname=app', env).url).toBe('postgres://envuser:envpw@envhost:6000/app?sslmode=require&application_name=envapp');
    expect(parseUrl('postgres://me:mine@db:5432/app?sslmode=disable&application_name=own', env).url).toBe(
      'postgres://me:mine@db:5432/app?sslmode=disable&application_name=own',
    );
    expect(() => parseUrl('dbname=app', { ...bare(), PGSSLMODE: 'sometimes' })).toThrow(/sslmode=sometimes in the PG\* environment variables/);
  });

  it('a string the program already holds takes nothing from the environment', () => {
    const saved = process.env.PGSSLMODE;
    process.env.PGSSLMODE = 'verify-full';
    try {
      expect(readConnectionString('postgres://me@db/app').sslmode).toBe('prefer');
    } finally {
      if (saved === undefined) delete process.env.PGSSLMODE;
      else process.env.PGSSLMODE = saved;
    }
  });

  it('refuses the combinations libpq refuses, and certificate files that are not there', () => {
    expect(() => parseUrl('postgres://db/app?sslmode=require&sslrootcert=system', bare())).toThrow(/use sslmode=verify-full/);
    expect(() => parseUrl('postgres://db/app?sslnegotiation=direct', bare())).toThrow(/sslnegotiation=direct/);
    expect(() => parseUrl('postgres://db/app?sslmode=verify-ca&sslrootcert=/no/such/ca.pem', bare())).toThrow(
      /sslrootcert file not found: \/no\/such\/ca\.pem/,
    );
  });
});

describe('the password file', () => {
  const writePgpass = (text: string, mode = 0o600) => {
    const file = path.join(scratchDir('pgpass-'), 'pgpass');
    writeFileSync(file, text, { mode });
    chmodSync(file, mode);
    return file;
  };
  const query = { host: 'db', port: '5432', database: 'app', user: 'me' };

  it("matches libpq's way: first matching line, * wildcards, \\: and \\\\ escapes, comments", () => {
    const file = writePgpass('# comment\nother:5432:app:me:nope\ndb:*:*:me:pa\\:ss\\\\word\n*:*:*:*:fallback\n');
    expect(pgpassPassword(file, query)).toBe('pa:ss\\word');
    expect(pgpassPassword(file, { ...query, user: 'you' })).toBe('fallback');
    expect(pgpassPassword(file, { ...query, host: '/var/run/postgresql' })).toBe('fallback');
  });

  it('a socket directory matches the localhost lines', () => {
    const file = writePgpass('localhost:5432:*:me:local\n');
    expect(pgpassPassword(file, { ...query, host: '/var/run/postgresql' })).toBe('local');
  });

  it('is ignored when group or others can read it, or when it is missing', () => {
    expect(pgpassPassword(writePgpass('*:*:*:*:open\n', 0o644), query)).toBeUndefined();
    expect(pgpassPassword('/no/such/pgpass', query)).toBeUndefined();
  });

  it('comes after the string and PGPASSWORD; passfile, PGPASSFILE and ~/.pgpass name it', () => {
    const file = writePgpass('*:*:*:*:from-file\n');
    const env = bare();
    expect(parseUrl(`host=db user=me passfile=${file}`, env).password).toBe('from-file');
    expect(parseUrl('host=db user=me', { ...env, PGPASSFILE: file }).password).toBe('from-file');
    expect(parseUrl('host=db user=me', { ...env, PGPASSFILE: file, PGPASSWORD: 'from-env' }).password).toBe('from-env');
    expect(parseUrl('postgres://me:given@db/app', { ...env, PGPASSFILE: file }).password).toBe('given');
    writeFileSync(path.join(env.HOME, '.pgpass'), '*:*:*:*:from-home\n', { mode: 0o600 });
    expect(parseUrl('host=db user=me', env).password).toBe('from-home');
  });
});

describe('TLS settings per sslmode', () => {
  const shape = (raw: string) =>
    tlsAttempts(readConnectionString(raw)).map((attempt) =>
      attempt === false ? 'plain' : `${attempt.rejectUnauthorized ? 'verify' : 'encrypt'}${attempt.checkServerIdentity ? '-chain-only' : ''}`,
    );

  it("gives libpq's meanings", () => {
    const file = path.join(scratchDir('ca-'), 'ca.pem');
    writeFileSync(file, 'not parsed until a handshake');
    expect(shape('postgres://db/app?sslmode=disable')).toEqual(['plain']);
    expect(shape('postgres://db/app?sslmode=allow')).toEqual(['plain', 'encrypt']);
    expect(shape('postgres://db/app')).toEqual(['encrypt', 'plain']);
    expect(shape('postgres://db/app?sslmode=require')).toEqual(['encrypt']);
    expect(shape(`postgres://db/app?sslmode=require&sslrootcert=${file}`)).toEqual(['verify-chain-only']);
    expect(shape('postgres://db/app?sslmode=verify-ca')).toEqual(['verify-chain-only']);
    expect(shape('postgres://db/app?sslmode=verify-full')).toEqual(['verify']);
    const [verified] = tlsAttempts(readConnectionString(`postgres://db/app?sslmode=verify-full&sslrootcert=${file}`));
    expect(verified && verified.ca).toBe('not parsed until a handshake');
  });
});

describe('masking', () => {
  it('masks the password of every form and leaves the rest readable', () => {
    expect(maskUrl('postgres://me:s3cret@db/app?sslmode=require')).toBe('postgres://me:***@db/app?sslmode=require');
    expect(maskUrl('postgres://me@db/app?password=s3cret&sslpassword=k3y')).toBe('postgres://me@db/app?password=***&sslpassword=***');
    expect(maskUrl(`host=db password='a b\\'c' user=me sslpassword=k3y`)).toBe('host=db password=*** user=me sslpassword=***');
    expect(maskUrl('host=db password = s3cret')).toBe('host=db password = ***');
  });

  it('scrubs free text quoting either form, or PGPASSWORD', () => {
    const text = `failed: host=db password='a b c' user=me; PGPASSWORD=s3cret; postgres://me:pw@db/app?password=qq&x=1`;
    const masked = maskSecrets(text);
    for (const secret of ['a b c', 's3cret', ':pw@', 'qq']) expect(masked).not.toContain(secret);
    expect(masked).toContain('host=db');
    // A JSON log line stays JSON.
    expect(maskSecrets('{"error":"password=abc&d"}')).toBe('{"error":"password=***"}');
    // A known secret, also where a command printed it percent-encoded (as inside a URL).
    expect(maskSecrets('raw Zq9-UNIQUE-pw, encoded Zq9%2DUNIQUE-pw, lower Zq9%2dUNIQUE-pw', ['Zq9-UNIQUE-pw'])).toBe(
      'raw ***, encoded ***, lower ***',
    );
    expect(maskSecrets('a p%40ss:w0rd b', ['p@ss:w0rd'])).toBe('a *** b');
  });

  it('withDatabase and withCredentials take either form and give a URL', () => {
    const kv = `host=db port=5433 dbname=app user=me password='s e'`;
    expect(withDatabase(kv, 'other')).toBe('postgres://me:s%20e@db:5433/other');
    expect(withCredentials(kv, 'worker', 'p/w')).toBe('postgres://worker:p%2Fw@db:5433/app');
    expect(withDatabase('postgres://me:pw@db/app?sslmode=require', 'other')).toBe('postgres://me:pw@db/other?sslmode=require');
  });
});

describe("the driver's escaping", () => {
  it('quotes identifiers and literals as pg does', () => {
    expect(ident('we"ird')).toBe('"we""ird"');
    expect(literal("it's")).toBe("'it''s'");
    expect(literal('back\\slash')).toBe(" E'back\\\\slash'");
  });
});
