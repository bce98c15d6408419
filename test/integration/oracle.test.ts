// The db-state oracle against a real Postgres: the seed's own examples, committed
// state only, volatile fields, determinism, failing actions, quiescence, the
// streaming path, and the evidence folder.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { connect, withPgClient } from '../../src/postgres/pg.js';
import { parseUrl, withDatabase } from '../../src/postgres/url.js';
import {
  diff,
  evidenceFiles,
  normalise,
  normalisedDocument,
  releaseSnapshot,
  renderDocument,
  runOracle,
  snapshot,
  type OracleResult,
} from '../../src/oracle/index.js';

let db: TestDatabase;
let twin: TestDatabase;
let evidenceRoot: string;

const widgetsDdl = `
  create table widgets (
    id bigint generated always as identity primary key,
    name text not null unique,
    slug text,
    price numeric(10, 2),
    api_token text,
    meta jsonb,
    lock_version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  );
  create table audit_log (id bigserial primary key, action text not null, at timestamptz not null default now());`;

beforeAll(async () => {
  db = await createTestDatabase();
  twin = await createTestDatabase({ empty: true });
  evidenceRoot = await mkdtemp(path.join(tmpdir(), 'oracle-evidence-'));
  await withPgClient(db.url, async (client) => {
    await client.query(widgetsDdl);
    await client.query(`insert into widgets (name, slug, price, api_token, meta) values
      ('anchor', 'anchor', 1.50, 'tok-1', '{"id": 9, "colour": "red"}'), ('bolt', 'bolt', 0.25, 'tok-2', null)`);
    await client.query(`insert into audit_log (action) select 'seed ' || g from generate_series(1, 14) g`);
  });
});

afterAll(async () => {
  await db?.dispose();
  await twin?.dispose();
  if (evidenceRoot) await rm(evidenceRoot, { recursive: true, force: true });
});

const sql = (url: string, text: string, values: unknown[] = []) => withPgClient(url, (client) => client.query(text, values));

/** An action that runs SQL on its own connection, as a drill's step would. */
const sqlAction = (text: string, label = text) => ({
  label,
  run: async (log: (line: string) => void) => {
    await sql(db.url, text);
    log(`ran: ${text}`);
    return 0;
  },
});

const oracle = (options: Partial<Parameters<typeof runOracle>[0]> & Pick<Parameters<typeof runOracle>[0], 'action'>) =>
  runOracle({
    url: db.url,
    card: 'widgets-card',
    scope: { tables: ['widgets', 'audit_log'] },
    expectations: [],
    dir: evidenceRoot,
    ...options,
  });

const verdicts = (result: OracleResult) => result.expectations.map((entry) => entry.verdict);

describe('the seed\'s examples', () => {
  it('"shall persist a Widget with name=X": count +1 and the row; audit_log untouched', async () => {
    const result = await oracle({
      expectations: ['widgets:+1', 'widgets:+{name=X,price=3}', 'audit_log:='],
      action: sqlAction(`insert into widgets (name, slug, price, api_token) values ('X', 'x', 3, 'secret-token')`),
    });
    expect(verdicts(result)).toEqual(['satisfied', 'satisfied', 'satisfied']);
    expect(result.verdict).toBe('APPROVE');
    expect(result.tables.find((table) => table.table === 'widgets')).toMatchObject({ before: 2, after: 3, added: 1 });
    const diffText = await readFile(result.files['diff.txt'], 'utf8');
    expect(diffText).toBe(result.diffText);
    expect(diffText).toMatch(/^-\s+"count": 2,$/m);
    expect(diffText).toMatch(/^\+\s+"count": 3,$/m);
    expect(diffText).toMatch(/^\+\s+\{"meta":null,"name":"X","price":3\.00,"slug":"x"\},?$/m);
    const changed = diffText.split('\n').filter((line) => /^[+-]/.test(line));
    expect(changed).toHaveLength(5); // ---, +++, the count, and the new row
    expect(changed.join('\n')).not.toMatch(/secret-token|api_token|"id"/);
  });

  it('a wrong expectation is REJECTed, with the row that was added as evidence', async () => {
    const result = await oracle({
      expectations: ['widgets:+1', 'widgets:+{name=Y}'],
      action: sqlAction(`insert into widgets (name, slug) values ('Z', 'z')`),
    });
    expect(verdicts(result)).toEqual(['satisfied', 'unsatisfied']);
    expect(result.verdict).toBe('REJECT');
    expect(result.expectations[1]!.evidence).toContain('"name":"Z"');
    const twice = await oracle({ expectations: ['widgets:+2'], action: sqlAction(`insert into widgets (name) values ('Z2')`) });
    expect(twice.verdict).toBe('REJECT');
    expect(twice.expectations[0]!.evidence).toContain('+1');
  });

  it('"shall not modify audit_log on read": a read passes, a write is caught', async () => {
    const read = await oracle({ expectations: ['audit_log:='], action: sqlAction('select count(*) from audit_log') });
    expect(read.verdict).toBe('APPROVE');
    expect(read.expectations[0]!.evidence).toContain('count 14 -> 14');
    const write = await oracle({
      expectations: ['audit_log:='],
      action: sqlAction(`update audit_log set action = 'tampered' where action = 'seed 3'`),
    });
    expect(write.verdict).toBe('REJECT');
    expect(write.expectations[0]!.evidence).toContain('tampered');
    await sql(db.url, `update audit_log set action = 'seed 3' where action = 'tampered'`);
  });

  it('"shall add an index on widgets(slug)": absent before, present after (and REJECT when not added)', async () => {
    const missing = await oracle({ expectations: ['widgets:+index:widgets_slug_idx'], action: sqlAction('select 1') });
    expect(missing.verdict).toBe('REJECT');
    expect(missing.expectations[0]!.evidence).toContain('absent in after.json');
    const result = await oracle({
      expectations: ['widgets:+index:widgets_slug_idx', 'widgets:+index:(slug)', 'widgets:='],
      action: sqlAction('create index widgets_slug_idx on widgets (slug)'),
    });
    expect(verdicts(result)).toEqual(['satisfied', 'satisfied', 'satisfied']);
    expect(result.expectations[0]!.evidence).toMatch(/absent in before\.json; present in after\.json \(CREATE INDEX widgets_slug_idx/);
    expect(result.diffText).toMatch(/^\+\s+\{"columns":\["slug"\],"definition":"CREATE INDEX widgets_slug_idx/m);
    const again = await oracle({ expectations: ['widgets:+index:(slug)'], action: sqlAction('select 1') });
    expect(again.verdict).toBe('REJECT');
    await sql(db.url, 'drop index widgets_slug_idx');
  });

  it('a migration: a new column changes every row, a new table is "+table"; a wrong claim is REJECTed', async () => {
    try {
      const result = await oracle({
        expectations: ['widgets:+column:notes', 'widgets:+0', 'gadgets:+table', 'widgets:-column:slug'],
        action: sqlAction('alter table widgets add column notes text; create table gadgets (id int primary key)'),
      });
      expect(verdicts(result)).toEqual(['satisfied', 'satisfied', 'satisfied', 'unsatisfied']);
      expect(result.verdict).toBe('REJECT');
      const widgets = result.diff!.tables.find((table) => table.table === 'widgets')!;
      expect(widgets.changedCount).toBe(widgets.countAfter);
      expect(widgets.changed[0]!.columns).toEqual(['notes']);
      expect(widgets.schema).toEqual([{ kind: 'column', name: 'notes', change: 'added' }]);
      expect(result.tables.find((table) => table.table === 'gadgets')).toMatchObject({ before: null, after: 0 });
    } finally {
      await sql(db.url, 'alter table widgets drop column if exists notes; drop table if exists gadgets');
    }
  });

  it('"shall update cached_count on add": a change by a delta (an asserted column is not volatile)', async () => {
    await sql(db.url, 'alter table widgets add column cached_count integer not null default 0');
    try {
      const result = await oracle({
        expectations: ['widgets:~{name=anchor}->{cached_count+=1}'],
        action: sqlAction(`update widgets set cached_count = cached_count + 1 where name = 'anchor'`),
      });
      expect(result.verdict).toBe('APPROVE');
      expect(result.diffText).toMatch(/^-.*"cached_count":0,.*"name":"anchor"/m);
      expect(result.diffText).toMatch(/^\+.*"cached_count":1,.*"name":"anchor"/m);
      const wrong = await oracle({
        expectations: ['widgets:~{name=anchor}->{cached_count+=1}'],
        action: sqlAction(`update widgets set cached_count = cached_count + 2 where name = 'anchor'`),
      });
      expect(wrong.verdict).toBe('REJECT');
      // Not asserted, cached_count is volatile again: the change never reaches the diff.
      const silent = await oracle({ expectations: ['widgets:='], action: sqlAction(`update widgets set cached_count = 0`) });
      expect(silent.verdict).toBe('APPROVE');
      expect(silent.diffText).toBe('');
    } finally {
      await sql(db.url, 'alter table widgets drop column cached_count');
    }
  });
});

describe('what a snapshot sees', () => {
  it('committed writes of another connection, and never uncommitted ones', async () => {
    const scope = { tables: ['audit_log'] };
    const other: pg.Client = await connect(db.url);
    try {
      await other.query('begin');
      await other.query(`insert into audit_log (action) values ('pending write')`);
      const during = await snapshot(db.url, scope);
      expect(during.tables[0]!.count).toBe(14);
      await other.query('commit');
      const after = await snapshot(db.url, scope);
      expect(after.tables[0]!.count).toBe(15);
      const result = await diff(normalise(during), normalise(after));
      expect(result.tables[0]).toMatchObject({ delta: 1, addedCount: 1, removedCount: 0 });
      expect(result.tables[0]!.added[0]).toEqual({ action: 'pending write', at: expect.any(String) });
    } finally {
      await other.end();
      await sql(db.url, `delete from audit_log where action = 'pending write'`);
    }
  });

  it('volatile fields never reach the diff: ids, timestamps, tokens, lock versions, nested ids', async () => {
    const result = await oracle({
      expectations: ['widgets:=', 'widgets:+0'],
      action: sqlAction(
        `update widgets set updated_at = now() + interval '1 day', created_at = now() - interval '1 day', api_token = md5(random()::text),
                lock_version = lock_version + 1, meta = case when meta is null then null else jsonb_set(meta, '{id}', '42') end`,
      ),
    });
    expect(result.verdict).toBe('APPROVE');
    expect(result.diffText).toBe('');
    const raw = await readFile(result.files['after.json'], 'utf8');
    expect(raw).toContain('"api_token"');
    const normalised = await readFile(result.files['after.normalised.json'], 'utf8');
    const rows = normalised.match(/^\s+\{.*\},?$/gm) ?? [];
    expect(rows.length).toBeGreaterThan(14);
    for (const row of rows) expect(row).not.toMatch(/api_token|lock_version|created_at|updated_at|"id"/);
    expect(normalised).toContain('"meta":{"colour":"red"}');
    expect(normalised).toContain('"volatile": ["id","api_token","lock_version","created_at","updated_at"]');
  });

  it('is deterministic: byte-identical normalised output for the same state, even with other ids and clocks', async () => {
    await withPgClient(twin.url, async (client) => {
      await client.query(widgetsDdl);
      // The same rows, inserted in another order (other ids) at another time, with other tokens.
      await client.query(`insert into widgets (name, slug, price) values ('spacer', 'spacer', 9)`);
      await client.query(`delete from widgets`);
      await client.query(`insert into audit_log (action) select 'seed ' || g from generate_series(14, 1, -1) g`);
    });
    const rows = await sql(db.url, 'select name, slug, price, meta from widgets order by name desc');
    for (const row of rows.rows) {
      await sql(twin.url, `insert into widgets (name, slug, price, api_token, meta, created_at) values ($1, $2, $3, 'other', $4, now() - interval '1 year')`, [
        row.name,
        row.slug,
        row.price,
        row.meta === null ? null : { ...row.meta, id: 1234 },
      ]);
    }
    const scope = { tables: ['widgets', 'audit_log'] };
    const take = async (url: string) => {
      const taken = await snapshot(url, scope);
      return renderDocument(normalisedDocument(normalise(taken)));
    };
    const first = await take(db.url);
    const second = await take(db.url);
    expect(second).toBe(first);
    const audit = (text: string) => text.replace(/"at":"[^"]*"/g, '"at":"T"');
    expect(audit(await take(twin.url))).toBe(audit(first));
    await sql(twin.url, `update widgets set price = price + 1 where name = 'bolt'`);
    expect(audit(await take(twin.url))).not.toBe(audit(first));
  });

  it('orders keys the way Postgres does: tricky text and integer keys merge without spurious changes', async () => {
    await sql(db.url, `create table keyed (k text primary key, n bigint not null unique, v integer)`);
    try {
      const keys = ['a', 'B', 'ä', '😀', '\uE000', 'tab\there', 'line\nbreak', 'back\\slash', 'a b', ''];
      for (const [index, key] of keys.entries()) {
        await sql(db.url, 'insert into keyed values ($1, $2, 0)', [key, (index % 2 ? -1 : 1) * 10 ** (index + 5)]);
      }
      for (const key of [['k'], ['n']]) {
        const scope = { tables: [{ name: 'keyed', key }] };
        const before = await snapshot(db.url, scope);
        await sql(db.url, `update keyed set v = v + 1 where k = '😀'`);
        const after = await snapshot(db.url, scope);
        const result = await diff(normalise(before), normalise(after));
        expect(result.tables[0]).toMatchObject({ addedCount: 0, removedCount: 0, changedCount: 1 });
        expect(result.linesAdded).toBe(1);
      }
    } finally {
      await sql(db.url, 'drop table keyed');
    }
  });

  it('chooses natural keys on the reference schema, and keeps a key column a spec asserts', async () => {
    const taken = await snapshot(db.url, { tables: ['expenses', 'turns', 'outbox', 'tool_calls', 'pending_transactions'] });
    const keys = Object.fromEntries(taken.tables.map((table) => [table.table, table.key.source]));
    expect(keys).toEqual({
      expenses: 'unique expenses_tenant_idempotency_key',
      outbox: 'unique outbox_dedup_key',
      pending_transactions: 'whole row',
      tool_calls: 'whole row',
      turns: 'unique turns_run_id_turn_no_key',
    });
    expect(taken.tables.find((table) => table.table === 'expenses')!.count).toBe(78);
    await releaseSnapshot(taken);
    const result = await oracle({
      scope: { tables: [] },
      expectations: ['pending_transactions:~{id=T-101}->{status=processed}', 'pending_transactions:+0'],
      action: sqlAction(`update pending_transactions set status = 'processed', processed_by = 'w1', processed_at = now() where id = 'T-101'`),
    });
    expect(result.verdict).toBe('APPROVE');
    expect(result.diff!.tables[0]!.changed[0]!.key).toEqual({ id: 'T-101' });
    await sql(db.url, `update pending_transactions set status = 'pending', processed_by = null, processed_at = null where id = 'T-101'`);
  });

  it('filters rows (by run_id) and can read counts only', async () => {
    const taken = await snapshot(db.url, {
      tables: [
        { name: 'expenses', filter: { tenant_id: 'bob' } },
        { name: 'audit_log', rows: false },
      ],
    });
    expect(taken.tables.map((table) => [table.table, table.count, table.rows === null])).toEqual([
      ['audit_log', 14, true],
      ['expenses', 31, false],
    ]);
    await releaseSnapshot(taken);
  });
});

describe('escalation', () => {
  it('a failing action is ESCALATEd, never REJECT or APPROVE, and action_exit.txt holds its code', async () => {
    const result = await oracle({
      expectations: ['widgets:+1'],
      action: { command: process.execPath, args: ['-e', `console.log('half done'); process.exit(3)`] },
    });
    expect(result.verdict).toBe('ESCALATE');
    expect(result.action.exitCode).toBe(3);
    expect(await readFile(result.files['action_exit.txt'], 'utf8')).toBe('3\n');
    expect(await readFile(result.files['action.log'], 'utf8')).toContain('half done');
    expect(result.expectations[0]!.verdict).toBe('could-not-determine');
    const verdict = await readFile(result.files['verdict.md'], 'utf8');
    expect(verdict).toContain('**Verdict**: ESCALATE');
    expect(verdict).toContain('- Action exit: 3');
    const missing = await oracle({ expectations: ['widgets:+0'], action: { command: 'no-such-command-here' } });
    expect(missing.verdict).toBe('ESCALATE');
    expect(await readFile(missing.files['action_exit.txt'], 'utf8')).toBe('127\n');
  });

  it('no expectation is ESCALATE: a spec that does not name fields is too vague', async () => {
    const result = await oracle({ action: sqlAction(`insert into widgets (name) values ('vague')`) });
    expect(result.verdict).toBe('ESCALATE');
    expect(result.findings.join('\n')).toContain('too vague');
    expect(result.findings.join('\n')).toContain('widgets changed (1 added');
    await sql(db.url, `delete from widgets where name = 'vague'`);
  });

  it('async work: a settled wait lets the late write count; a timeout is could-not-determine', async () => {
    let background: Promise<unknown> = Promise.resolve();
    const late = await oracle({
      expectations: ['widgets:+{name=late}'],
      action: {
        label: 'enqueue a job that lands later',
        run: async () => {
          background = sql(db.url, `select pg_sleep(0.3); insert into widgets (name) values ('late')`);
          return 0;
        },
      },
      quiescence: {
        condition: { kind: 'query-true', url: db.url, sql: `select exists (select 1 from widgets where name = $1)`, params: ['late'] },
        timeoutMs: 10_000,
      },
    });
    await background;
    expect(late.quiescence?.settled).toBe(true);
    expect(late.verdict).toBe('APPROVE');

    const never = await oracle({
      expectations: ['widgets:+0'],
      action: sqlAction('select 1'),
      quiescence: { condition: { kind: 'query-settles', url: db.url, sql: 'select clock_timestamp()', stableForMs: 200 }, timeoutMs: 500, intervalMs: 50 },
    });
    expect(never.quiescence?.settled).toBe(false);
    expect(verdicts(never)).toEqual(['could-not-determine']);
    expect(never.verdict).toBe('ESCALATE');
    expect(never.findings.join('\n')).toContain('did not settle');
    await sql(db.url, `delete from widgets where name = 'late'`);
  });
});

describe('scale: the streaming path', () => {
  it('streams above the threshold, diffs by a sorted merge, and renders exactly as the in-memory path', async () => {
    await sql(db.url, `create table ledger (entry_no bigint primary key, account text not null, amount bigint not null, created_at timestamptz default now())`);
    try {
      // 15,000 rows of ~110 bytes: the files span several 1 MiB reads, so lines straddle read boundaries.
      await sql(db.url, `insert into ledger (entry_no, account, amount) select g, 'acct-' || (g % 97) || repeat('x', 60), g * 7 % 1000 from generate_series(1, 15000) g`);
      const streamedScope = { tables: ['ledger'], streamThreshold: 100 };
      const result = await oracle({
        card: 'ledger-card',
        scope: streamedScope,
        expectations: ['ledger:+0', 'ledger:~{entry_no=12500}->{amount+=1}', 'ledger:-{entry_no=7}', 'ledger:+1'],
        action: sqlAction(`update ledger set amount = amount + 1 where entry_no = 12500; delete from ledger where entry_no = 7`),
      });
      expect(result.tables[0]).toMatchObject({ streamed: true, before: 15000, after: 14999, changed: 1, removed: 1, added: 0 });
      expect(verdicts(result)).toEqual(['unsatisfied', 'satisfied', 'satisfied', 'unsatisfied']);
      const rowLines = result.diffText.split('\n').filter((line) => /^[+-]\s+\{/.test(line));
      expect(rowLines).toHaveLength(3);
      expect(result.findings.join('\n')).toContain('streamed to disk and diffed by a sorted merge');

      // The same state through memory and through disk renders byte-identical.
      const inMemory = await snapshot(db.url, { tables: ['ledger'] });
      const onDisk = await snapshot(db.url, streamedScope);
      expect(inMemory.tables[0]!.streamed).toBe(false);
      expect(onDisk.tables[0]!.streamed).toBe(true);
      const render = (taken: typeof inMemory) => renderDocument(normalisedDocument(normalise(taken)));
      expect(await render(onDisk)).toBe(await render(inMemory));
      const file = onDisk.tables[0]!.rows;
      await releaseSnapshot(onDisk);
      await releaseSnapshot(inMemory);
      expect(file?.kind).toBe('file');
      await expect(readFile((file as { path: string }).path)).rejects.toThrow(/ENOENT/);
    } finally {
      await sql(db.url, 'drop table ledger');
    }
  });
});

describe('the evidence folder', () => {
  it('holds the eight files, no password, JSON that parses, and the seed\'s report sections', async () => {
    const { password } = parseUrl(db.url);
    expect(password.length).toBeGreaterThan(3);
    const result = await oracle({
      card: 'evidence-card',
      expectations: ['widgets:+1'],
      action: {
        command: process.execPath,
        args: ['-e', `console.log(process.argv[1]); console.error('password=' + ${JSON.stringify(password)})`, withDatabase(db.url, db.name)],
      },
    });
    expect(result.folder).toMatch(/evidence-card[/\\]\d{8}T\d{6}(-\d+)?$/);
    expect((await readdir(result.folder)).sort()).toEqual([...evidenceFiles].sort());
    for (const file of evidenceFiles) {
      const text = await readFile(path.join(result.folder, file), 'utf8');
      expect(text, file).not.toContain(password);
      if (file.endsWith('.json')) expect(() => JSON.parse(text), file).not.toThrow();
    }
    expect(await readFile(result.files['action.log'], 'utf8')).toContain('postgres:***@');
    const verdict = await readFile(result.files['verdict.md'], 'utf8');
    for (const heading of ['## DB-State QA Report', '**Scope**:', '**Engine**: Postgres', '**Verdict**:', '### Action', '### Diff Summary', '### Specifications Verified', '### Findings', '### Transcript']) {
      expect(verdict).toContain(heading);
    }
    expect(verdict).toContain('| widgets | ');
    const before = JSON.parse(await readFile(result.files['before.json'], 'utf8')) as { target: string; tables: Record<string, { rows: unknown[] }> };
    expect(before.target).toContain('***');
    expect(before.tables.widgets!.rows[0]).toHaveProperty('id');
  });
});
