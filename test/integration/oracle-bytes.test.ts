// The one-pass evidence writer (issue 15) against the writer it replaced, byte for byte:
// before.json and before.normalised.json as snapshot({ files }) writes them while the rows
// stream, and as the frozen writer of e8de64c (test/helpers/oracle-reference/) renders the
// same snapshot's rows afterwards. Also the rows themselves: the COPY read off the socket
// (copy-out.ts) holds the very bytes pg-copy-streams gave. Awkward values throughout: nulls,
// unicode, json and jsonb nested with volatile keys, arrays, numerics, timestamps, bytea,
// text with quotes, backslashes, tabs and newlines, control bytes; in memory and streamed;
// counts that change their number of digits; tables without rows. (What no server sends a
// UTF8 client, bytes that are not UTF-8, is in test/unit/oracle-encoder.test.ts.) And the diff,
// which reads the rows back from the normalised files, against the frozen diff of the same states.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ident, withPgClient } from '../../src/postgres/pg.js';
import { diff, normalise, releaseSnapshot, snapshot, type Scope, type Snapshot } from '../../src/oracle/index.js';
import { copyStatement } from '../../src/oracle/snapshot.js';
import { writeSnapshotFiles as referenceWriteSnapshotFiles } from '../helpers/oracle-reference/render.js';
import { normalise as referenceNormalise } from '../helpers/oracle-reference/normalise.js';
import { diff as referenceDiff } from '../helpers/oracle-reference/diff.js';

let db: TestDatabase;
let dir: string;

const sql = (url: string, text: string, values: unknown[] = []) => withPgClient(url, (client) => client.query(text, values));

// Every awkward value once per column, and a row of nulls.
const awkwardDdl = `
  create type mood as enum ('ok', 'not "ok"', 'ünï');
  create type pair as (label text, amount numeric);
  create table awkward (
    id bigint primary key,
    label text not null unique,
    body text,
    vc varchar(40),
    ch char(6),
    num numeric,
    big numeric(40, 10),
    f8 double precision,
    f4 real,
    i2 smallint,
    flag boolean,
    j json,
    jb jsonb,
    tags text[],
    grid int[],
    ts timestamp,
    tstz timestamptz,
    day date,
    span interval,
    blob bytea,
    uid uuid,
    cash money,
    duo pair,
    feel mood,
    api_token text,
    created_at timestamptz not null default now(),
    "quoted ""name""" text,
    "ünïcode" text,
    cached_total int
  )`;

const awkwardRows = `
  insert into awkward values
  (1, 'plain', 'hello', 'v', 'c', 1.5, 1234567890123456789012345678.0123456789, 0.1, 0.5, 7, true,
   '{"a": 1}', '{"a": 1}', '{a,b}', '{1,2}', '2026-01-02 03:04:05', '2026-01-02 03:04:05+02', '2026-01-02', '1 day 02:00',
   '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12.34, row('x', 1), 'ok', 'tok', default, 'q', 'u', 1),
  (2, 'nulls', null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
   null, null, null, null, null, null, default, null, null, null),
  (3, E'quotes "and" \\\\backslashes\\\\ \\\\N', E'line one\\nline two\\r\\n\\ttabbed\\there', E'\\b\\f\\x0b', E'\\x01\\x1f',
   'NaN', -0.0000000001, 'NaN', 'Infinity', -32768, false,
   E'{"id": 9, "nested": {"created_at": "x", "keep": [{"id": 1, "v": "a\\\\"b"}, {"updated_at": 2}]}, "i\\\\u0064": 3, "big": 123456789012345678901234567890.5, "e": 1E+400}',
   E'{"id": 9, "nested": {"created_at": "x", "keep": [{"id": 1, "v": "a\\\\"b"}, {"updated_at": 2}]}, "tok_secret": "s", "big": 123456789012345678901234567890.5}',
   E'{"with \\\\"quote","with,comma",NULL,"back\\\\\\\\slash","tab\\there","ünï 😀"}', '{{1,2},{3,4}}',
   'infinity', '-infinity', '4713-01-01 BC', '-1 year -2 mons +3 days -04:05:06.789', E'\\\\x5c225c6e',
   '00000000-0000-0000-0000-000000000000', -92233720368547758.08, row(E'a "b"\\n', 'NaN'), 'not "ok"',
   'tok', default, E'"\\\\', E'\\u2028\\u2029', -1),
  (4, 'ünïcödé ☃ 😀 e\u0301 עברית 中文 \u200d', E'\\x7f del and \\x1b esc', 'ü', 'ö', 'Infinity', 0, '-Infinity', '-0', 0, true,
   E'[1, "two", {"id": 3}, [], {}, null, true, 1.0e-5]', E'[1, "two", {"id": 3}, [], {}, null, true, 1.0e-5]',
   '{}', '{}', '2000-02-29 23:59:59.999999', '1999-12-31 23:59:59.999999+00', '0001-01-01', '0', '\\x', null,
   0, row(null, null), 'ünï', null, default, '😀', 'ü', null),
  (5, E'\\\\N', E'\\\\N', '\\N', 'N', 1e-20, 99999999999999999999999999999.9999999999, 1e300, 3.4e38, 1, false,
   E'"a string \\\\u00e9"', E'"a string \\\\u00e9"', '{"\\\\N",""}', '{NULL}', '1970-01-01', '1970-01-01 00:00:00+00', '2026-12-31',
   '1 mon', '\\xdeadbeef', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 0.01, row('', 0), 'ok', '', default, '', '', 0)`;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  dir = await mkdtemp(path.join(tmpdir(), 'oracle-bytes-'));
  await sql(db.url, awkwardDdl);
  await sql(db.url, awkwardRows);
  // Text keys that order differently as bytes, code points and UTF-16; many rows for the streamed path.
  await sql(db.url, `create table many (code text primary key, n int not null, note text, meta jsonb, created_at timestamptz default now())`);
  await sql(
    db.url,
    `insert into many (code, n, note, meta)
     select chr(33 + g % 90) || chr(256 + g % 5000) || g::text || case when g % 7 = 0 then chr(128512 + g % 50) else '' end,
            g,
            case when g % 11 = 0 then null when g % 5 = 0 then E'tab\\there "q" \\\\ ' || g else repeat('w', g % 300) end,
            case when g % 3 = 0 then null else jsonb_build_object('id', g, 'updated_at', now(), 'v', g % 13, 'deep', jsonb_build_array(jsonb_build_object('id', g))) end
       from generate_series(1, 3000) g`,
  );
  // Counts a planner estimate gets wrong by a digit (never analysed), and tables without rows read.
  await sql(db.url, `create table fresh (k int primary key, v text); insert into fresh select g, 'v' || g from generate_series(1, 12) g`);
  await sql(db.url, `create table counted (k int primary key); insert into counted select generate_series(1, 40)`);
  await sql(db.url, `create table nocols (); insert into nocols default values; insert into nocols default values`);
  await sql(db.url, `create table empty_one (k int primary key, v text)`);
  await sql(db.url, `analyze awkward; analyze many`);

});

afterAll(async () => {
  await db?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

let round = 0;

/**
 * The new writer's two files, and the frozen writer's two files for the same rows: read again
 * without files (COPY lines, as the old writer had them), its taken_at set to the first's.
 */
async function bothWriters(url: string, scope: Scope, counts?: Record<string, number | null>) {
  round += 1;
  const files = { raw: path.join(dir, `${round}.json`), normalised: path.join(dir, `${round}.normalised.json`) };
  const taken = await snapshot(url, scope, { workDir: dir, files: { ...files, counts } });
  const twin = await snapshot(url, scope, { workDir: dir });
  try {
    twin.takenAt = taken.takenAt;
    const reference = { raw: path.join(dir, `${round}.ref.json`), normalised: path.join(dir, `${round}.ref.normalised.json`) };
    await referenceWriteSnapshotFiles(referenceNormalise(twin), reference.raw, reference.normalised);
    return {
      taken,
      raw: await readFile(files.raw),
      normalised: await readFile(files.normalised),
      referenceRaw: await readFile(reference.raw),
      referenceNormalised: await readFile(reference.normalised),
    };
  } finally {
    await releaseSnapshot(taken);
    await releaseSnapshot(twin);
  }
}

async function expectSameBytes(url: string, scope: Scope, counts?: Record<string, number | null>): Promise<Snapshot> {
  const out = await bothWriters(url, scope, counts);
  // Compared as text first so a failure shows the line; then as bytes.
  expect(out.raw.toString('latin1')).toBe(out.referenceRaw.toString('latin1'));
  expect(out.normalised.toString('latin1')).toBe(out.referenceNormalised.toString('latin1'));
  expect(out.raw.equals(out.referenceRaw)).toBe(true);
  expect(out.normalised.equals(out.referenceNormalised)).toBe(true);
  return out.taken;
}

describe('the one-pass writer writes what the writer it replaced wrote', () => {
  it('awkward values of every kind, in memory and streamed', async () => {
    const taken = await expectSameBytes(db.url, { tables: ['awkward'] });
    expect(taken.tables[0]!.count).toBe(5);
    const streamed = await expectSameBytes(db.url, { tables: ['awkward'], streamThreshold: 2 });
    expect(streamed.tables[0]!.streamed).toBe(true);
  });

  it('several tables at once, with text keys, json volatiles, a filter, counts only, a missing table and schema state', async () => {
    const scope: Scope = {
      tables: [
        'many',
        'awkward',
        { name: 'counted', rows: false },
        { name: 'fresh', filter: { v: 'v3' } },
        'no_such_table',
        'nocols',
        'empty_one',
      ],
      schema: true,
    };
    await expectSameBytes(db.url, scope);
    await expectSameBytes(db.url, { tables: ['many', { name: 'awkward', key: ['label'] }, 'nocols'], streamThreshold: 100 });
    await expectSameBytes(db.url, { tables: ['many'], volatiles: { patterns: ['n', 'v', 'deep'], keep: { many: ['n'] } } });
  });

  it('a count that changes its number of digits: the guess is wrong, the files are rewritten once and still the same', async () => {
    // fresh was never analysed (the estimate says -1 or 0): 12 rows need two digits.
    const taken = await expectSameBytes(db.url, { tables: ['fresh', 'many'] });
    expect(taken.tables.find((table) => table.table === 'fresh')!.count).toBe(12);
    // The after-snapshot's guess is the before's count: wrong by a digit both ways, and right.
    await expectSameBytes(db.url, { tables: ['fresh', 'many'] }, { fresh: 9, many: 30000 });
    await expectSameBytes(db.url, { tables: ['fresh', 'many'], streamThreshold: 10 }, { fresh: 12, many: 3000 });
  });

  it('the rows read off the socket are the bytes pg-copy-streams read', async () => {
    for (const [url, name, threshold] of [
      [db.url, 'awkward', 50_000],
      [db.url, 'many', 10],
    ] as const) {
      const taken = await snapshot(url, { tables: [name], streamThreshold: threshold }, { workDir: dir });
      try {
        const table = taken.tables[0]!;
        const store = table.rows!;
        if (store.kind === 'normalised') throw new Error('a snapshot without files keeps COPY lines');
        const ours =
          store.kind === 'file' ? await readFile(store.path) : Buffer.from(store.lines.map((line) => `${line}\n`).join(''), 'utf8');
        const statement = copyStatement(`public.${ident(name)}`, { name }, table.columns, table.key);
        const theirs = await withPgClient(url, async (client) => {
          const chunks: Buffer[] = [];
          for await (const chunk of client.query(copyTo(statement))) chunks.push(chunk as Buffer);
          return Buffer.concat(chunks);
        });
        if (store.kind === 'file') expect(ours.equals(theirs), name).toBe(true);
        // In memory the rows are decoded lines: compare with the same decoding.
        else expect(ours.toString('utf8'), name).toBe(theirs.toString('utf8'));
        expect(table.count).toBe(theirs.toString('latin1').split('\n').length - 1);
      } finally {
        await releaseSnapshot(taken);
      }
    }
  });
});

describe('the diff, reading the normalised files the snapshots wrote, says what the old diff said', () => {
  it('row by row and line by line: changes, volatile-only changes, inserts between keys, deletes, the last row, keys outside the text', async () => {
    await sql(db.url, `create table idkeyed (id int primary key, v text not null)`);
    await sql(db.url, `insert into idkeyed values (1, 'a'), (2, 'a'), (3, 'b'), (4, 'c')`);
    // Files of several read buffers: long runs skipped across refills, rows wider than a buffer.
    await sql(db.url, `create table long (n int primary key, v text not null, created_at timestamptz default now())`);
    await sql(db.url, `insert into long (n, v) select g, repeat(chr(97 + g % 26), 40 + g % 90) from generate_series(1, 40000) g`);
    await sql(db.url, `create table wide (k int primary key, body text not null)`);
    await sql(db.url, `insert into wide select g, repeat(chr(65 + g), 700000) from generate_series(1, 8) g`);
    const scope = (threshold?: number): Scope => ({
      tables: ['many', 'awkward', { name: 'idkeyed', key: ['id'] }, 'fresh', 'empty_one', 'no_such_table', { name: 'counted', rows: false }, 'long', 'wide'],
      ...(threshold ? { streamThreshold: threshold } : {}),
    });
    const take = async () => {
      round += 1;
      const files = { raw: path.join(dir, `${round}.diff.json`), normalised: path.join(dir, `${round}.diff.normalised.json`) };
      return {
        files: await snapshot(db.url, scope(), { workDir: dir, files }),
        memory: await snapshot(db.url, scope(), { workDir: dir }),
        streamed: await snapshot(db.url, scope(3), { workDir: dir }),
      };
    };
    const before = await take();
    await sql(
      db.url,
      `update many set note = 'changed ' || n where n % 500 = 0;
       update many set created_at = now() + interval '1 day' where n % 7 = 1;
       update many set meta = jsonb_set(meta, '{updated_at}', '"later"') where n % 9 = 1 and meta is not null;
       update many set meta = jsonb_set(meta, '{v}', '99') where n % 700 = 2 and meta is not null;
       delete from many where n % 450 = 3;
       insert into many (code, n, note) select code || '+', n + 100000, 'between' from many where n % 800 = 4;
       delete from many where code = (select max(code) from many);
       update awkward set body = E'now\\nchanged' where id = 3;
       delete from awkward where id = 2;
       insert into awkward (id, label) values (6, 'six');
       delete from idkeyed where id = 1;
       insert into idkeyed values (5, 'a');
       delete from fresh where k = 12;
       update long set v = v || '!' where n % 3001 = 0 or n in (9000, 9001, 9003, 20000, 39999);
       update long set created_at = now() + interval '1 hour' where n % 1000 = 17;
       delete from long where n in (1, 25000);
       update wide set body = body || 'z' where k in (3, 6);
       insert into empty_one values (1, 'one')`,
    );
    const after = await take();
    try {
      round += 1;
      const reference = path.join(dir, `${round}.ref.diff.txt`);
      const expected = await referenceDiff(referenceNormalise(before.memory), referenceNormalise(after.memory), { file: reference, sampleLimit: 5 });
      const expectedText = await readFile(reference, 'utf8');
      expect(expected.tables.find((table) => table.table === 'many')!.changedCount).toBeGreaterThan(3);
      for (const [label, a, b] of [
        ['files', before.files, after.files],
        ['streamed', before.streamed, after.streamed],
        ['files before, memory after', before.files, after.memory],
        ['memory before, files after', before.memory, after.files],
        ['streamed before, files after', before.streamed, after.files],
      ] as const) {
        const file = path.join(dir, `${round}.${label.replace(/\W+/g, '-')}.diff.txt`);
        const got = await diff(normalise(a), normalise(b), { file, sampleLimit: 5 });
        expect(await readFile(file, 'utf8'), label).toBe(expectedText);
        expect(got, label).toEqual(expected);
      }
    } finally {
      for (const taken of [...Object.values(before), ...Object.values(after)]) await releaseSnapshot(taken);
    }
  });
});

