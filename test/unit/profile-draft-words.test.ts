// The draft's vocabulary, without a database: status values matched to the drill
// words by synonyms, value templates by column type, and what is ambiguous on a
// hand-built catalog (two candidate columns, a reader that would bypass RLS) ending
// as a TODO rather than a guess.
import { describe, expect, it } from 'vitest';
import {
  type Catalog,
  type CatalogColumn,
  type CatalogConstraint,
  type CatalogTable,
  draftFromCatalog,
  statusValueFor,
  templateFor,
} from '../../src/postgres/profile/draft/index.js';

describe('status values by synonyms', () => {
  it('the word itself wins; else its one synonym among the values', () => {
    expect(statusValueFor('finished', ['running', 'finished', 'completed', 'failed'])).toEqual({ kind: 'one', value: 'finished' });
    expect(statusValueFor('finished', ['running', 'completed', 'failed'])).toEqual({ kind: 'one', value: 'completed' });
    expect(statusValueFor('processed', ['pending', 'claimed', 'done'])).toEqual({ kind: 'one', value: 'done' });
    expect(statusValueFor('dispatched', ['pending', 'sent', 'dead'])).toEqual({ kind: 'one', value: 'sent' });
    expect(statusValueFor('failed', ['pending', 'sent', 'dead'])).toEqual({ kind: 'one', value: 'dead' });
    expect(statusValueFor('claimed', ['pending', 'in_progress', 'reconciled'])).toEqual({ kind: 'one', value: 'in_progress' });
    expect(statusValueFor('started', ['running', 'completed', 'failed'])).toEqual({ kind: 'one', value: 'running' });
  });

  it('no synonym: none; two synonyms and not the word: many (a TODO, never a pick)', () => {
    expect(statusValueFor('processed', ['pending', 'claimed', 'archived'])).toEqual({ kind: 'none' });
    expect(statusValueFor('finished', ['running', 'completed', 'succeeded', 'failed'])).toEqual({ kind: 'many', values: ['completed', 'succeeded'] });
  });
});

describe('value templates by type', () => {
  const column = (name: string, type: string): Pick<CatalogColumn, 'name' | 'type' | 'enumValues'> => ({ name, type, enumValues: null });
  it('text is the row token, an email column an address; uuid, integer, boolean, json and time have theirs', () => {
    expect(templateFor(column('external_ref', 'text'))).toEqual({ template: '{key}' });
    expect(templateFor(column('email', 'character varying(255)'))).toEqual({ template: '{key}@sor-drills.invalid' });
    expect(templateFor(column('ref', 'uuid'))).toEqual({ template: '{uuid}' });
    expect(templateFor(column('n', 'integer'))).toEqual({ template: '0' });
    expect(templateFor(column('flag', 'boolean'))).toEqual({ template: 'false' });
    expect(templateFor(column('meta', 'jsonb'))).toEqual({ template: '{}' });
    expect(templateFor(column('at', 'timestamp with time zone'))).toEqual({ template: 'now' });
    expect(templateFor(column('owner_id', 'uuid'), { references: 'users', tenantTable: 'users' })).toEqual({ template: '{tenant}' });
  });

  it('what no template fills says why', () => {
    expect(templateFor(column('code', 'character(3)'))).toEqual({ why: 'is character(3), which no template fills' });
    expect(templateFor(column('code', 'character varying(8)'))).toMatchObject({ why: expect.stringMatching(/too short/) });
    expect(templateFor(column('rank', 'integer'), { unique: true })).toMatchObject({ why: expect.stringMatching(/would conflict on the second row/) });
    expect(templateFor(column('agent_id', 'uuid'), { references: 'agents', tenantTable: 'users' })).toMatchObject({
      why: 'references agents, whose rows sor-drills does not make',
    });
    expect(templateFor({ name: 'kind', type: 'kind_t', enumValues: ['a', 'b'] })).toEqual({ why: "is the enum kind_t: write one of 'a', 'b'" });
  });
});

// A small catalog: just enough of the reference shape for a draft to reach each part.
const col = (name: string, type = 'text', more: Partial<CatalogColumn> = {}): CatalogColumn => ({
  name,
  type,
  notNull: false,
  hasDefault: false,
  increasing: false,
  enumValues: null,
  ...more,
});
const pk = (table: string, column = 'id'): CatalogConstraint => ({ name: `${table}_pkey`, kind: 'p', columns: [column], definition: '', references: null, referencedColumns: null });
const fk = (column: string, references: string): CatalogConstraint => ({
  name: `${column}_fkey`,
  kind: 'f',
  columns: [column],
  definition: '',
  references,
  referencedColumns: ['id'],
});
const check = (table: string, values: string[]): CatalogConstraint => ({
  name: `${table}_status_check`,
  kind: 'c',
  columns: ['status'],
  definition: `CHECK ((status = ANY (ARRAY[${values.map((value) => `'${value}'::text`).join(', ')}])))`,
  references: null,
  referencedColumns: null,
});
const table = (name: string, columns: CatalogColumn[], constraints: CatalogConstraint[], more: Partial<CatalogTable> = {}): CatalogTable => ({
  name,
  owner: 'owner',
  rls: false,
  columns: [col('id', 'text', { notNull: true }), ...columns],
  constraints: [pk(name), ...constraints],
  policies: [],
  triggers: [],
  grants: [],
  ...more,
});
const policy = { name: 'by_tenant', using: "(tenant_id = current_setting('app.tenant_id'::text, true))", check: null };

function catalog(changes: { readers?: Catalog['roles']; runsColumns?: CatalogColumn[] } = {}): Catalog {
  const expenseGrants = [
    { role: 'app', privilege: 'INSERT' },
    { role: 'app', privilege: 'SELECT' },
    ...(changes.readers ?? []).map((role) => ({ role: role.name, privilege: 'SELECT' })),
  ];
  return {
    schema: 'public',
    roles: [{ name: 'app', superuser: false, bypassRls: false, memberOf: [] }, ...(changes.readers ?? [])],
    tables: [
      table('tenants', [], []),
      table('expenses', [col('tenant_id'), col('idempotency_key'), col('amount_cents', 'integer')], [
        fk('tenant_id', 'tenants'),
        { name: 'expenses_key', kind: 'u', columns: ['tenant_id', 'idempotency_key'], definition: '', references: null, referencedColumns: null },
      ], { rls: true, policies: [policy], grants: expenseGrants }),
      table('pending_transactions', [col('tenant_id'), col('amount_cents', 'integer'), col('status'), col('claimed_by')], [
        fk('tenant_id', 'tenants'),
        check('pending_transactions', ['pending', 'claimed', 'processed']),
      ], { rls: true, policies: [policy], grants: [{ role: 'app', privilege: 'UPDATE' }] }),
      table('runs', [col('tenant_id'), col('status'), ...(changes.runsColumns ?? [])], [fk('tenant_id', 'tenants'), check('runs', ['running', 'finished', 'failed'])]),
      table('turns', [col('run_id'), col('turn_no', 'integer'), col('status')], [fk('run_id', 'runs'), check('turns', ['running', 'completed', 'failed'])]),
      table('tool_calls', [col('turn_id'), col('call_no', 'integer'), col('tool'), col('arguments', 'jsonb'), col('status')], [
        fk('turn_id', 'turns'),
        check('tool_calls', ['started', 'completed', 'failed']),
      ]),
    ],
  };
}

describe('what is ambiguous is a TODO', () => {
  it('two columns that could each be runs.error: a TODO naming both', () => {
    const draft = draftFromCatalog(catalog({ runsColumns: [col('error'), col('error_message')] }));
    expect((draft.profile.runs as Record<string, unknown>).error).toBe('TODO: runs has error, error_message, each could be the error; write the one it is, or remove this key');
    expect(draft.undecided.map((item) => item.key)).toContain('runs.error');
  });

  it('an optional key with no column is left out and said, not guessed', () => {
    const draft = draftFromCatalog(catalog());
    expect(draft.profile.runs).not.toHaveProperty('finished_at');
    expect(draft.leftOut).toContainEqual({ key: 'runs.finished_at', why: 'no column of runs named finished_at, ended_at, completed_at, end_time' });
  });

  it('the reader: a BYPASSRLS role or a member of the owner is never the reader', () => {
    const bypass = { name: 'dash', superuser: false, bypassRls: true, memberOf: [] };
    const member = { name: 'ops', superuser: false, bypassRls: false, memberOf: ['owner'] };
    const draft = draftFromCatalog(catalog({ readers: [bypass, member] }));
    expect((draft.profile.roles as Record<string, string>).reader).toMatch(/^TODO: no role is granted SELECT on expenses without INSERT .*\(not dash has BYPASSRLS, ops is a member of the owner owner/);
    const clean = draftFromCatalog(catalog({ readers: [bypass, { name: 'reader', superuser: false, bypassRls: false, memberOf: [] }] }));
    expect((clean.profile.roles as Record<string, string>).reader).toBe('reader');
    expect((clean.profile.roles as Record<string, string>).worker).toBe('app');
  });
});
