// Drafting a profile from the target's catalog (`sor-drills profile`). Read only:
// it reads pg_catalog and never writes to the target.
//
// Every key is decided from evidence, and the evidence is kept beside it:
//   tenants        the table the row-level policies' tables reference by the column the
//                  policy compares (else a table named tenants, users, accounts, ...);
//                  the setting from `current_setting('app.x', ...)` in the policies' text
//   expenses       the table with a unique key holding a column named like idempotency
//   pending        a status CHECK holding a word for pending, and a claim column
//   runs, turns,   their foreign-key chain tool_calls -> turns -> runs
//   tool_calls
//   outbox         a unique dedup column and a status CHECK
//   events         append-only triggers (BEFORE DELETE or TRUNCATE), or its name
//   roles          owners and grants (aclexplode of relacl)
// Status values: the CHECK's (or the enum's) values matched to each drill word by
// synonyms; columns by name synonyms. Nothing is guessed silently: a key with no
// candidate, or with two, is written "TODO: <why>; <what to write>" and listed as
// undecided (a run refuses a profile holding one, naming the key); an optional key
// with no candidate is left out, and said.
import type pg from 'pg';
import { profileProblems } from './check.js';
import { parseProfile, ProfileError } from './load.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

// ---------------------------------------------------------------------------
// The catalog, as the draft reads it

export interface CatalogColumn {
  name: string;
  /** format_type: `integer`, `numeric(12,2)`, `character varying(32)`, ... */
  type: string;
  notNull: boolean;
  /** A default, an identity or a generated column: an INSERT may leave it out. */
  hasDefault: boolean;
  /** An identity or serial (nextval) column: numbers that only grow. */
  increasing: boolean;
  /** The labels of an enum type, in order. */
  enumValues: string[] | null;
}

export interface CatalogConstraint {
  name: string;
  /** p primary key, u unique (constraint or unique index), f foreign key, c check. */
  kind: 'p' | 'u' | 'f' | 'c';
  columns: string[];
  definition: string;
  /** For a foreign key: the referenced table (schema-qualified when in another schema) and columns. */
  references: string | null;
  referencedColumns: string[] | null;
}

export interface CatalogTable {
  name: string;
  owner: string;
  rls: boolean;
  constraints: CatalogConstraint[];
  columns: CatalogColumn[];
  policies: Array<{ name: string; using: string | null; check: string | null }>;
  /** tgtype bits: 2 before, 8 delete, 16 update, 32 truncate. */
  triggers: Array<{ name: string; type: number; function: string }>;
  /** Direct grants (aclexplode), grantee PUBLIC included as 'PUBLIC'. */
  grants: Array<{ role: string; privilege: string }>;
}

export interface CatalogRole {
  name: string;
  superuser: boolean;
  bypassRls: boolean;
  /** The tables' owners this role is a member of (pg_has_role USAGE): it would bypass RLS as they do. */
  memberOf: string[];
}

export interface Catalog {
  schema: string;
  tables: CatalogTable[];
  roles: CatalogRole[];
}

/** The schema's tables with everything the draft reads, and the roles their grants and owners name. */
export async function readCatalog(client: Queryable, schema: string): Promise<Catalog> {
  const { rows: tables } = await client.query<CatalogTable>(
    `select c.relname as name, pg_catalog.pg_get_userbyid(c.relowner) as owner, c.relrowsecurity as rls,
            coalesce((select json_agg(json_build_object(
                        'name', a.attname, 'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'notNull', a.attnotnull,
                        'hasDefault', a.atthasdef or a.attidentity <> '' or a.attgenerated <> '',
                        'increasing', a.attidentity <> '' or coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid) like 'nextval(%', false),
                        'enumValues', (select json_agg(e.enumlabel order by e.enumsortorder) from pg_catalog.pg_enum e where e.enumtypid = a.atttypid))
                      order by a.attnum)
                from pg_catalog.pg_attribute a
                left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
               where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]') as columns,
            coalesce((select json_agg(json_build_object(
                        'name', k.conname, 'kind', k.contype, 'definition', pg_catalog.pg_get_constraintdef(k.oid),
                        'columns', (select coalesce(json_agg(a.attname order by u.ord), '[]') from unnest(k.conkey) with ordinality u(attnum, ord)
                                      join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum),
                        'references', case when k.contype = 'f' then
                                        (select case when r.relnamespace = c.relnamespace then r.relname else rn.nspname || '.' || r.relname end
                                           from pg_catalog.pg_class r join pg_catalog.pg_namespace rn on rn.oid = r.relnamespace where r.oid = k.confrelid) end,
                        'referencedColumns', case when k.contype = 'f' then
                                        (select json_agg(a.attname order by u.ord) from unnest(k.confkey) with ordinality u(attnum, ord)
                                           join pg_catalog.pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.attnum) end)
                      order by k.conname)
                from pg_catalog.pg_constraint k where k.conrelid = c.oid and k.contype in ('p', 'u', 'f', 'c')), '[]')::jsonb
            -- unique indexes that back no constraint (create unique index ...), on plain columns, without a predicate
            || coalesce((select json_agg(json_build_object(
                        'name', i.relname, 'kind', 'u', 'definition', pg_catalog.pg_get_indexdef(x.indexrelid), 'references', null, 'referencedColumns', null,
                        'columns', (select json_agg(a.attname order by u.ord) from unnest(x.indkey::int2[]) with ordinality u(attnum, ord)
                                      join pg_catalog.pg_attribute a on a.attrelid = x.indrelid and a.attnum = u.attnum))
                      order by i.relname)
                from pg_catalog.pg_index x join pg_catalog.pg_class i on i.oid = x.indexrelid
               where x.indrelid = c.oid and x.indisunique and x.indpred is null and 0 <> all (x.indkey::int2[])
                 and not exists (select 1 from pg_catalog.pg_constraint k where k.conindid = x.indexrelid)), '[]')::jsonb as constraints,
            coalesce((select json_agg(json_build_object('name', p.polname, 'using', pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                                                        'check', pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)) order by p.polname)
                from pg_catalog.pg_policy p where p.polrelid = c.oid), '[]') as policies,
            coalesce((select json_agg(json_build_object('name', t.tgname, 'type', t.tgtype, 'function', t.tgfoid::regproc::text) order by t.tgname)
                from pg_catalog.pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal), '[]') as triggers,
            coalesce((select json_agg(json_build_object('role', case when g.grantee = 0 then 'PUBLIC' else pg_catalog.pg_get_userbyid(g.grantee) end,
                                                        'privilege', g.privilege_type))
                from pg_catalog.aclexplode(c.relacl) g), '[]') as grants
       from pg_catalog.pg_class c
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
      order by c.relname`,
    [schema],
  );
  const owners = [...new Set(tables.map((table) => table.owner))];
  const names = [...new Set([...owners, ...tables.flatMap((table) => table.grants.map((grant) => grant.role))])].filter((role) => role !== 'PUBLIC');
  const { rows: roles } = await client.query<CatalogRole>(
    `select r.rolname as name, r.rolsuper as superuser, r.rolbypassrls as "bypassRls",
            array(select o.rolname from pg_catalog.pg_roles o
                   where o.rolname = any($2::text[]) and o.oid <> r.oid and pg_catalog.pg_has_role(r.oid, o.oid, 'USAGE')
                   order by o.rolname)::text[] as "memberOf"
       from pg_catalog.pg_roles r where r.rolname = any($1::text[]) order by r.rolname`,
    [names, owners],
  );
  return { schema, tables, roles };
}

// ---------------------------------------------------------------------------
// The vocabulary: the drills' words and the names a schema gives them

/** The target's values a drill word may be written as, the word itself first. */
export const statusSynonyms = {
  pending: ['pending', 'queued', 'new'],
  claimed: ['claimed', 'locked', 'in_progress', 'processing', 'leased'],
  processed: ['processed', 'done', 'completed', 'reconciled'],
  running: ['running', 'started', 'in_progress'],
  finished: ['finished', 'completed', 'succeeded', 'done'],
  completed: ['completed', 'finished', 'succeeded', 'done'],
  started: ['started', 'running', 'in_progress'],
  dispatched: ['dispatched', 'sent', 'delivered', 'published'],
  failed: ['failed', 'dead', 'error', 'errored', 'failure'],
} as const satisfies Record<string, readonly string[]>;

export type StatusWord = keyof typeof statusSynonyms;

/** The column names each profile key may be written as, the profile's own word first. */
export const columnSynonyms = {
  tenantName: ['name', 'display_name', 'full_name', 'title', 'label'],
  amount: ['amount_cents', 'amount', 'amount_minor', 'amount_in_cents', 'cents', 'total_cents'],
  description: ['description', 'memo', 'note', 'notes', 'narrative', 'details'],
  status: ['status', 'state'],
  claimedBy: ['claimed_by', 'locked_by', 'leased_by', 'claimed_by_worker'],
  leaseUntil: ['lease_until', 'locked_until', 'lease_expires_at', 'claimed_until', 'lease_expiry'],
  processedBy: ['processed_by', 'done_by', 'completed_by', 'reconciled_by'],
  processedAt: ['processed_at', 'done_at', 'completed_at', 'reconciled_at'],
  worker: ['worker', 'worker_id', 'worker_name', 'agent_id'],
  totalTurns: ['total_turns', 'turn_count', 'turns_total', 'num_turns'],
  error: ['error', 'error_message', 'error_text', 'failure_reason'],
  startedAt: ['started_at', 'start_time', 'began_at'],
  finishedAt: ['finished_at', 'ended_at', 'completed_at', 'end_time'],
  turnNumber: ['turn_no', 'turn_index', 'turn_number', 'number', 'idx'],
  callTurnNumber: ['turn_no', 'turn_index', 'turn_number'],
  callNumber: ['call_no', 'seq', 'call_index', 'position', 'call_number'],
  tool: ['tool', 'tool_name', 'name'],
  arguments: ['arguments', 'input', 'args', 'params', 'parameters'],
  result: ['result', 'output'],
  errorCode: ['error_code', 'sqlstate', 'code'],
  durationMs: ['duration_ms', 'elapsed_ms', 'latency_ms'],
  dedupKey: ['dedup_key', 'dedupe_key', 'dedup_id', 'dedupe_id', 'deduplication_key'],
  recipient: ['recipient', 'to_address', 'recipient_email', 'email', 'to'],
  subject: ['subject', 'title'],
  body: ['body', 'text', 'content'],
  payload: ['payload', 'message', 'data', 'body'],
  attempts: ['attempts', 'attempt_count', 'tries', 'retry_count'],
  lastError: ['last_error', 'error', 'error_message'],
  nextAttemptAt: ['next_attempt_at', 'available_at', 'retry_at', 'not_before', 'scheduled_at', 'run_at'],
  dispatchedAt: ['dispatched_at', 'sent_at', 'delivered_at', 'published_at'],
  eventType: ['event_type', 'type', 'kind', 'event'],
  eventPayload: ['detail', 'payload', 'data', 'details', 'body'],
  createdAt: ['created_at', 'occurred_at', 'recorded_at', 'inserted_at', 'at'],
} as const satisfies Record<string, readonly string[]>;

/** Table names, as a tie-breaker between candidates that the structure alone does not tell apart. */
const tableSynonyms = {
  tenants: ['tenants', 'users', 'accounts', 'organizations', 'orgs', 'workspaces'],
  expenses: ['expenses'],
  pending_transactions: ['pending_transactions', 'transactions', 'bank_transactions'],
  runs: ['runs', 'agent_runs'],
  turns: ['turns', 'agent_turns', 'steps'],
  tool_calls: ['tool_calls', 'tool_invocations'],
  outbox: ['outbox', 'outbox_messages', 'outbox_events'],
  events: ['agent_events', 'events', 'run_events'],
} as const;

const idempotencyColumn = /idempot/;
const transactionColumn = /(^|_)(transaction|txn)(_id|_ref)?$/;
const emailColumn = /email/;

/** What the drafter found for one choice: one candidate, none, or several. */
export type Found<T> = { kind: 'one'; value: T } | { kind: 'none' } | { kind: 'many'; values: T[] };

function found<T>(values: T[]): Found<T> {
  if (values.length === 1) return { kind: 'one', value: values[0]! };
  return values.length === 0 ? { kind: 'none' } : { kind: 'many', values };
}

/**
 * The value of a CHECK (or enum) that means a drill word: the word itself, else its one
 * synonym among the values. Two synonyms and no word itself: many (undecided).
 */
export function statusValueFor(word: StatusWord, allowed: readonly string[]): Found<string> {
  if (allowed.includes(word)) return { kind: 'one', value: word };
  return found(statusSynonyms[word].filter((synonym) => allowed.includes(synonym)));
}

/** The string literals of a CHECK (`status = ANY (ARRAY['a'::text, 'b'::text])`). */
function checkLiterals(definition: string): string[] {
  return [...definition.matchAll(/'((?:[^']|'')*)'/g)].map((match) => match[1]!.replace(/''/g, "'"));
}

const integerType = /^(smallint|integer|bigint)$/;
const textType = /^(text|character varying(\(\d+\))?|citext|name)$/;
const jsonType = /^jsonb?$/;
const timeType = /^(timestamp|date)/;

/**
 * The value template of a NOT NULL column no key fills, by its type (a token unique to
 * the row for text, an email for a column named like one), or why there is none.
 */
export function templateFor(
  column: Pick<CatalogColumn, 'name' | 'type' | 'enumValues'>,
  context: { unique?: boolean; references?: string | null; tenantTable?: string } = {},
): { template: string } | { why: string } {
  if (context.references) {
    if (context.references === context.tenantTable) return { template: '{tenant}' };
    return { why: `references ${context.references}, whose rows sor-drills does not make` };
  }
  if (column.enumValues) return { why: `is the enum ${column.type}: write one of ${column.enumValues.map((value) => `'${value}'`).join(', ')}` };
  const type = column.type;
  if (textType.test(type)) {
    const length = /\((\d+)\)/.exec(type)?.[1];
    if (length && Number(length) < 40) return { why: `is ${type}, too short for the row token sor-drills writes ({key})` };
    return { template: emailColumn.test(column.name) ? '{key}@sor-drills.invalid' : '{key}' };
  }
  if (type === 'uuid') return { template: '{uuid}' };
  const constant = integerType.test(type) || /^numeric/.test(type) ? '0' : type === 'boolean' ? 'false' : jsonType.test(type) ? '{}' : timeType.test(type) ? 'now' : undefined;
  if (constant === undefined) return { why: `is ${type}, which no template fills` };
  if (context.unique) return { why: `is ${type} and unique: the one value a template gives (${constant}) would conflict on the second row` };
  return { template: constant };
}

// ---------------------------------------------------------------------------
// The draft

export interface MappedKey {
  /** The profile key, dotted: `runs.status.values.finished`. */
  key: string;
  value: unknown;
  /** Where it came from, in the catalog's terms. */
  evidence: string;
}

export interface UndecidedKey {
  key: string;
  /** Why, and what to write (the TODO's text without "TODO: "). */
  why: string;
}

export interface DraftResult {
  /** The profile, in the schema's key order; an undecided key holds a "TODO: ..." string. */
  profile: Record<string, unknown>;
  mapped: MappedKey[];
  /** Optional keys with no evidence, left out of the profile. */
  leftOut: UndecidedKey[];
  undecided: UndecidedKey[];
}

type Spec = Record<string, unknown>;

/** The keys each part needs (no default, not optional), and what each holds: the placeholders of an undecided part. */
const statusShape = (words: string) => `the status, as {"column": ..., "values": {${words}}}`;
const neededKeys: Record<string, Array<[string, string]>> = {
  tenants: [['key', 'the key column']],
  expenses: [
    ['key', 'the key column'],
    ['tenant', 'the tenant column'],
    ['idempotency_key', 'the columns of the unique idempotency key, as a list'],
    ['amount', 'the amount, as {"column": ..., "unit": "cents" or "major"}'],
  ],
  pending_transactions: [
    ['key', 'the key column'],
    ['tenant', 'the tenant column'],
    ['amount', 'the amount, as {"column": ..., "unit": "cents" or "major"}'],
    ['status', statusShape('"pending": ..., "claimed": ..., "processed": ...')],
  ],
  runs: [['key', 'the key column'], ['tenant', 'the tenant column'], ['status', statusShape('"running": ..., "finished": ..., "failed": ...')]],
  turns: [
    ['key', 'the key column'],
    ['run', 'the column that references runs'],
    ['number', 'the turn number column'],
    ['status', statusShape('"running": ..., "completed": ..., "failed": ...')],
  ],
  tool_calls: [
    ['key', 'the key column'],
    ['turn', 'the column that references turns'],
    ['number', 'the call number column'],
    ['tool', 'the tool name column'],
    ['arguments', 'the arguments column'],
    ['status', statusShape('"started": ..., "completed": ..., "failed": ...')],
  ],
  outbox: [
    ['key', 'the key column'],
    ['tenant', 'the tenant column'],
    ['dedup_key', 'the unique dedup column'],
    ['status', statusShape('"pending": ..., "dispatched": ..., "failed": ...')],
  ],
  events: [
    ['key', 'the ordering column'],
    ['run', 'the column that references runs'],
    ['type', 'the event type column'],
    ['payload', 'the payload column'],
  ],
};

/** A reason to prefer some candidate tables over others, and the test. */
type TieBreaker = readonly [string, (table: CatalogTable) => boolean];

const list = (values: readonly string[]) => values.join(', ');
const quoted = (values: readonly string[]) => values.map((value) => `'${value}'`).join(', ');

class Drafter {
  readonly mapped: MappedKey[] = [];
  readonly leftOut: UndecidedKey[] = [];
  readonly undecided: UndecidedKey[] = [];
  private readonly byName: Map<string, CatalogTable>;
  /** The table each part was given (undefined: undecided). */
  readonly chosen = new Map<string, CatalogTable>();

  constructor(readonly catalog: Catalog) {
    this.byName = new Map(catalog.tables.map((table) => [table.name, table]));
  }

  table(name: string | null | undefined): CatalogTable | undefined {
    return name ? this.byName.get(name) : undefined;
  }

  set(spec: Spec, key: string, value: unknown, evidence: string): void {
    spec[key.slice(key.lastIndexOf('.') + 1)] = value;
    this.mapped.push({ key, value, evidence });
  }

  todo(spec: Spec, key: string, why: string): void {
    spec[key.slice(key.lastIndexOf('.') + 1)] = `TODO: ${why}`;
    this.undecided.push({ key, why });
  }

  omit(key: string, why: string): void {
    this.leftOut.push({ key, why });
  }

  /** The tables no part has taken yet. */
  free(): CatalogTable[] {
    const taken = new Set([...this.chosen.values()].map((table) => table.name));
    return this.catalog.tables.filter((table) => !taken.has(table.name));
  }

  /**
   * A part's table from its candidates and the evidence that made them so: narrowed by
   * each tie-breaker in turn (the last: a name of the course's vocabulary) while more
   * than one is left. Several left, or none: a TODO saying which, or why none.
   */
  chooseTable(
    part: keyof typeof tableSynonyms,
    candidates: CatalogTable[],
    evidence: (table: CatalogTable) => string,
    none: string,
    tieBreakers: readonly TieBreaker[] = [],
  ): CatalogTable | undefined {
    const names: readonly string[] = tableSynonyms[part];
    const byName: TieBreaker = [`named ${names.join(' or ')}`, (table) => names.includes(table.name)];
    let left = candidates;
    const broke: string[] = [];
    for (const [why, keep] of [...tieBreakers, byName]) {
      if (left.length <= 1) break;
      const kept = left.filter(keep);
      if (kept.length > 0 && kept.length < left.length) {
        broke.push(`${why}, unlike ${list(left.filter((table) => !kept.includes(table)).map((table) => table.name))}`);
        left = kept;
      }
    }
    const spec = this.spec(part);
    if (left.length === 1) {
      const table = left[0]!;
      this.chosen.set(part, table);
      this.set(spec, `${part}.table`, table.name, [evidence(table), ...broke].join('; '));
      return table;
    }
    this.undecidedTable(part, left.length === 0 ? none : `${left.length} tables could be ${part}: ${list(left.map((table) => `${table.name} (${evidence(table)})`))}; write the one it is`);
    return undefined;
  }

  /** A part whose table is undecided: the table a TODO, and each key the part needs a placeholder TODO, so the file shows what is left to write. */
  undecidedTable(part: string, why: string): void {
    const spec = this.spec(part);
    this.todo(spec, `${part}.table`, why);
    for (const [key, what] of neededKeys[part] ?? []) this.todo(spec, `${part}.${key}`, `${what}, once ${part}.table is written`);
  }

  readonly specs = new Map<string, Spec>();
  spec(part: string): Spec {
    let spec = this.specs.get(part);
    if (!spec) {
      spec = {};
      this.specs.set(part, spec);
    }
    return spec;
  }
}

/** Columns of a table with one of the names (in the names' order), that pass `accept`. */
function columnsNamed(table: CatalogTable, names: readonly string[], accept: (column: CatalogColumn) => boolean = () => true): CatalogColumn[] {
  return names.flatMap((name) => table.columns.filter((column) => column.name === name && accept(column)));
}

function foreignKeys(table: CatalogTable): CatalogConstraint[] {
  return table.constraints.filter((constraint) => constraint.kind === 'f' && constraint.columns.length === 1);
}

function foreignKeysTo(table: CatalogTable, target: CatalogTable | undefined): CatalogConstraint[] {
  return target ? foreignKeys(table).filter((constraint) => constraint.references === target.name) : [];
}

function uniqueKeys(table: CatalogTable): CatalogConstraint[] {
  return table.constraints.filter((constraint) => constraint.kind === 'u' || constraint.kind === 'p');
}

function primaryKey(table: CatalogTable): CatalogConstraint | undefined {
  return table.constraints.find((constraint) => constraint.kind === 'p');
}

/** The identifiers of an expression, outside its string literals. */
function identifiersOf(expression: string): Set<string> {
  const bare = expression.replace(/'(?:[^']|'')*'/g, "''");
  return new Set([...bare.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][\w$]*)/g)].map((match) => match[1]?.replace(/""/g, '"') ?? match[2]!));
}

/** The settings an expression reads with current_setting('x', ...). */
function settingsOf(expression: string): string[] {
  return [...expression.matchAll(/current_setting\(\s*'((?:[^']|'')+)'/gi)].map((match) => match[1]!.replace(/''/g, "'"));
}

function policyText(policy: CatalogTable['policies'][number]): string {
  return [policy.using, policy.check].filter(Boolean).join(' ');
}

/** The values a column may hold: its single-column CHECKs' literals, or its enum's labels. */
function allowedOf(table: CatalogTable, column: CatalogColumn): { values: string[]; evidence: string } | undefined {
  for (const check of table.constraints.filter((constraint) => constraint.kind === 'c' && constraint.columns.length === 1 && constraint.columns[0] === column.name)) {
    const values = checkLiterals(check.definition);
    if (values.length > 0) return { values, evidence: `the CHECK ${check.name} on ${table.name}.${column.name}` };
  }
  if (column.enumValues) return { values: column.enumValues, evidence: `the enum ${column.type} of ${table.name}.${column.name}` };
  return undefined;
}

function statusColumn(table: CatalogTable): Found<CatalogColumn> {
  return found(columnsNamed(table, columnSynonyms.status));
}

function describeColumn(table: CatalogTable, column: CatalogColumn, names: readonly string[]): string {
  const how = column.name === names[0] ? `named ${column.name}` : `named like ${names[0]} (${list(names)})`;
  return `column ${table.name}.${column.name} (${column.type}), ${how}`;
}

export function draftFromCatalog(catalog: Catalog): DraftResult {
  const d = new Drafter(catalog);
  const tenants = draftTenants(d);
  const tenantColumnNames = tenantColumns(d, tenants);
  const tenantOf = (table: CatalogTable) => tenantColumn(d, table, tenants, tenantColumnNames);
  const expenses = draftExpenses(d, tenants, tenantOf);
  const pending = draftPending(d, tenantOf);
  const chain = draftChain(d, tenantOf);
  draftOutbox(d, tenantOf, chain.runs, chain.turns);
  draftEvents(d, tenantOf, chain.runs, chain.turns);
  draftExpenseTransaction(d, expenses, pending);
  for (const part of ['tenants', 'expenses', 'pending_transactions', 'runs', 'turns', 'tool_calls', 'outbox', 'events']) draftRequired(d, part, tenants);
  const roles = draftRoles(d);
  const profile: Record<string, unknown> = { version: 1, schema: catalog.schema, roles };
  for (const part of ['tenants', 'expenses', 'pending_transactions', 'runs', 'turns', 'tool_calls', 'outbox', 'events']) {
    profile[part] = ordered(part, d.spec(part));
  }
  return { profile, mapped: inProfileOrder(d.mapped), leftOut: inProfileOrder(d.leftOut), undecided: inProfileOrder(d.undecided) };
}

/** Lines sorted as the profile's keys are (roles, tenants, ... each part's keys in the schema's order); stable within a key. */
function inProfileOrder<T extends { key: string }>(lines: T[]): T[] {
  const parts = ['profile', 'roles', ...Object.keys(keyOrder)];
  const rank = (key: string) => {
    const [part = '', field = ''] = key.split('.');
    const order = part === 'roles' ? ['worker', 'reader', 'owner'] : (keyOrder[part] ?? []);
    return [parts.indexOf(part), order.indexOf(field)] as const;
  };
  return lines
    .map((line, index) => ({ line, index, rank: rank(line.key) }))
    .sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1] || a.index - b.index)
    .map(({ line }) => line);
}

/** The schema's key order within a part (the order the JSON file is read in). */
const keyOrder: Record<string, string[]> = {
  tenants: ['table', 'key', 'name', 'setting', 'required'],
  expenses: ['table', 'key', 'tenant', 'idempotency_key', 'amount', 'description', 'transaction', 'required'],
  pending_transactions: ['table', 'key', 'tenant', 'amount', 'description', 'status', 'claimed_by', 'lease_until', 'processed_by', 'processed_at', 'required'],
  runs: ['table', 'key', 'tenant', 'worker', 'status', 'total_turns', 'error', 'started_at', 'finished_at', 'required'],
  turns: ['table', 'key', 'run', 'number', 'status', 'started_at', 'finished_at', 'required'],
  tool_calls: ['table', 'key', 'turn', 'run', 'turn_number', 'number', 'tool', 'arguments', 'result', 'status', 'error', 'error_code', 'started_at', 'finished_at', 'duration_ms', 'required'],
  outbox: ['table', 'key', 'tenant', 'run', 'dedup_key', 'recipient', 'subject', 'body', 'payload', 'status', 'attempts', 'last_error', 'next_attempt_at', 'dispatched_at', 'required'],
  events: ['table', 'key', 'run', 'tenant', 'turn_number', 'type', 'payload', 'created_at', 'required'],
};

function ordered(part: string, spec: Spec): Spec {
  const result: Spec = {};
  for (const key of keyOrder[part]!) if (spec[key] !== undefined) result[key] = spec[key];
  return result;
}

// --- tenants ---------------------------------------------------------------

function draftTenants(d: Drafter): CatalogTable | undefined {
  const spec = d.spec('tenants');
  // The tables a policy's column references: the tenant table, by the policies' own evidence.
  const referenced = new Map<string, Array<{ why: string; column: string | undefined }>>();
  const settings = new Map<string, string[]>();
  for (const table of d.catalog.tables) {
    for (const policy of table.policies) {
      const text = policyText(policy);
      for (const setting of new Set(settingsOf(text))) settings.set(setting, [...(settings.get(setting) ?? []), `${policy.name} on ${table.name}`]);
      const names = identifiersOf(text);
      for (const key of foreignKeys(table).filter((constraint) => names.has(constraint.columns[0]!))) {
        const why = `the policy ${policy.name} on ${table.name} compares ${key.columns[0]}, a foreign key to ${key.references}.${key.referencedColumns?.[0]}`;
        referenced.set(key.references!, [...(referenced.get(key.references!) ?? []), { why, column: key.referencedColumns?.[0] }]);
      }
    }
  }
  const byPolicy = [...referenced.keys()].map((name) => d.table(name)).filter((table): table is CatalogTable => table !== undefined);
  let tenants: CatalogTable | undefined;
  if (byPolicy.length > 0) {
    tenants = d.chooseTable('tenants', byPolicy, (table) => referenced.get(table.name)![0]!.why, '');
  } else {
    tenants = d.chooseTable(
      'tenants',
      d.catalog.tables.filter((table) => (tableSynonyms.tenants as readonly string[]).includes(table.name)),
      (table) => `named ${table.name} (no policy's column references a table)`,
      `no row-level policy compares a column that references a table, and no table is named ${list(tableSynonyms.tenants)}; write the table that holds one row per tenant`,
    );
  }
  if (tenants) {
    // The key is the column the policies' foreign keys reference, when they agree on one.
    const columns = [...new Set((referenced.get(tenants.name) ?? []).map((reference) => reference.column))];
    const keyColumn = columns.length === 1 ? columns[0] : undefined;
    if (keyColumn) d.set(spec, 'tenants.key', keyColumn, `the column the policies' foreign keys reference: ${tenants.name}.${keyColumn}`);
    else draftKey(d, spec, 'tenants', tenants);
    optionalColumn(d, spec, 'tenants.name', tenants, columnSynonyms.tenantName, 'a display name', (column) => textType.test(column.type));
  }
  const named = [...settings.keys()];
  if (named.length === 1) d.set(spec, 'tenants.setting', named[0], `current_setting('${named[0]}') in the policies ${list(settings.get(named[0]!)!)}`);
  else if (named.length === 0) {
    d.todo(spec, 'tenants.setting', "no row-level policy reads current_setting('...'); write the session setting that names the tenant (app.tenant_id)");
  } else {
    d.todo(spec, 'tenants.setting', `the policies read ${named.length} settings: ${list(named.map((name) => `${name} (${list(settings.get(name)!)})`))}; write the one that names the tenant`);
  }
  return tenants;
}

/** The names of the columns that reference the tenant table anywhere (tenant_id, user_id). */
function tenantColumns(d: Drafter, tenants: CatalogTable | undefined): Set<string> {
  return new Set(d.catalog.tables.flatMap((table) => foreignKeysTo(table, tenants).map((key) => key.columns[0]!)));
}

function tenantColumn(d: Drafter, table: CatalogTable, tenants: CatalogTable | undefined, names: Set<string>): Found<{ column: string; evidence: string }> {
  if (!tenants) return { kind: 'none' };
  const keys = foreignKeysTo(table, tenants);
  if (keys.length > 0) {
    return found(keys.map((key) => ({ column: key.columns[0]!, evidence: `column ${table.name}.${key.columns[0]}, a foreign key to ${tenants.name}` })));
  }
  return found(
    table.columns
      .filter((column) => names.has(column.name))
      .map((column) => ({ column: column.name, evidence: `column ${table.name}.${column.name}, named as the columns that reference ${tenants.name} (it has no foreign key)` })),
  );
}

type TenantOf = (table: CatalogTable) => Found<{ column: string; evidence: string }>;

function draftTenantColumn(d: Drafter, spec: Spec, part: string, table: CatalogTable, tenantOf: TenantOf, optional = false): string | undefined {
  const key = `${part}.tenant`;
  const tenant = tenantOf(table);
  if (tenant.kind === 'one') {
    d.set(spec, key, tenant.value.column, tenant.value.evidence);
    return tenant.value.column;
  }
  if (tenant.kind === 'many') d.todo(spec, key, `${table.name} has ${list(tenant.values.map((value) => value.column))} referencing the tenant table; write the one that owns the row`);
  else if (optional) d.omit(key, `no column of ${table.name} references the tenant table or is named as the tenant columns elsewhere`);
  else d.todo(spec, key, `no column of ${table.name} references the tenant table; write the column that holds the tenant`);
  return undefined;
}

// --- keys and columns ------------------------------------------------------

function draftKey(d: Drafter, spec: Spec, part: string, table: CatalogTable): string | undefined {
  const key = primaryKey(table);
  if (key && key.columns.length === 1) {
    d.set(spec, `${part}.key`, key.columns[0], `the primary key ${key.name} of ${table.name}`);
    return key.columns[0];
  }
  d.todo(
    spec,
    `${part}.key`,
    key ? `the primary key ${key.name} of ${table.name} has ${key.columns.length} columns (${list(key.columns)}); write one column that identifies a row` : `${table.name} has no primary key; write the column that identifies a row`,
  );
  return undefined;
}

/** A column key: set when one column fits, a TODO when several do (or, for a required key, none). */
function column(
  d: Drafter,
  spec: Spec,
  key: string,
  table: CatalogTable,
  names: readonly string[],
  what: string,
  options: { optional: boolean; accept?: (column: CatalogColumn) => boolean },
): CatalogColumn | undefined {
  const candidates = columnsNamed(table, names, options.accept);
  if (candidates.length === 1) {
    d.set(spec, key, candidates[0]!.name, describeColumn(table, candidates[0]!, names));
    return candidates[0];
  }
  if (candidates.length > 1) {
    d.todo(spec, key, `${table.name} has ${list(candidates.map((candidate) => candidate.name))}, each could be ${what}; write the one it is${options.optional ? ', or remove this key' : ''}`);
  } else if (options.optional) {
    d.omit(key, `no column of ${table.name} named ${list(names)}`);
  } else {
    d.todo(spec, key, `no column of ${table.name} is named like ${what} (${list(names)}); write the column that holds it`);
  }
  return undefined;
}

function optionalColumn(d: Drafter, spec: Spec, key: string, table: CatalogTable, names: readonly string[], what: string, accept?: (column: CatalogColumn) => boolean) {
  return column(d, spec, key, table, names, what, { optional: true, accept });
}

function requiredColumn(d: Drafter, spec: Spec, key: string, table: CatalogTable, names: readonly string[], what: string, accept?: (column: CatalogColumn) => boolean) {
  return column(d, spec, key, table, names, what, { optional: false, accept });
}

function draftAmount(d: Drafter, spec: Spec, part: string, table: CatalogTable): void {
  const candidates = columnsNamed(table, columnSynonyms.amount);
  const key = `${part}.amount`;
  if (candidates.length !== 1) {
    const why =
      candidates.length === 0
        ? `no column of ${table.name} is named like an amount (${list(columnSynonyms.amount)}); write {"column": ..., "unit": "cents" or "major"}`
        : `${table.name} has ${list(candidates.map((candidate) => candidate.name))}, each could be the amount; write {"column": ..., "unit": "cents" or "major"}`;
    d.todo(spec, key, why);
    return;
  }
  const amount = candidates[0]!;
  const unit = integerType.test(amount.type) ? 'cents' : /^numeric/.test(amount.type) ? (/cents|minor/.test(amount.name) ? 'cents' : 'major') : undefined;
  if (!unit) {
    d.todo(spec, key, `${table.name}.${amount.name} is ${amount.type}, neither an integer count of cents nor numeric; write {"column": "${amount.name}", "unit": ...}`);
    return;
  }
  const how = unit === 'cents' ? (integerType.test(amount.type) ? 'an integer type: cents' : 'numeric, named in cents') : 'numeric: major units';
  d.set(spec, key, { column: amount.name, unit }, `${describeColumn(table, amount, columnSynonyms.amount)}; ${how}`);
}

/** The status column and the value of each drill word. */
function draftStatus(d: Drafter, spec: Spec, part: string, table: CatalogTable, words: readonly StatusWord[]): void {
  const key = `${part}.status`;
  const status = statusColumn(table);
  if (status.kind !== 'one') {
    const why =
      status.kind === 'none'
        ? `no column of ${table.name} is named status or state; write {"column": ..., "values": {${words.map((word) => `"${word}": ...`).join(', ')}}}`
        : `${table.name} has ${list(status.values.map((column) => column.name))}; write the status column and its values`;
    d.todo(spec, key, why);
    return;
  }
  const column = status.value;
  const values: Spec = {};
  const result = { column: column.name, values };
  spec.status = result;
  d.mapped.push({ key: `${key}.column`, value: column.name, evidence: describeColumn(table, column, columnSynonyms.status) });
  const allowed = allowedOf(table, column);
  const chosen = new Map<string, string>();
  for (const word of words) {
    const wordKey = `${key}.values.${word}`;
    if (!allowed) {
      d.todo(values, wordKey, `no CHECK or enum on ${table.name}.${column.name} lists its values; write the value that means ${word}`);
      continue;
    }
    const match = statusValueFor(word, allowed.values);
    if (match.kind === 'one') {
      const other = chosen.get(match.value);
      if (other) {
        d.todo(values, wordKey, `'${match.value}' of ${allowed.evidence} already means ${other}; write the value that means ${word}`);
        continue;
      }
      chosen.set(match.value, word);
      const how = match.value === word ? `'${word}'` : `'${match.value}', a word for ${word} (${list(statusSynonyms[word])})`;
      d.set(values, wordKey, match.value, `${allowed.evidence} allows ${how}`);
    } else if (match.kind === 'none') {
      d.todo(values, wordKey, `no value of ${allowed.evidence} means ${word} (it allows ${quoted(allowed.values)}; the words for ${word} are ${list(statusSynonyms[word])}); write the one a row gets when ${word}`);
    } else {
      d.todo(values, wordKey, `${allowed.evidence} allows ${quoted(match.values)}, each a word for ${word}; write the one it is`);
    }
  }
}

// --- expenses, pending transactions ----------------------------------------

function idempotencyKeys(table: CatalogTable): CatalogConstraint[] {
  return uniqueKeys(table).filter((key) => key.columns.some((name) => idempotencyColumn.test(name)));
}

function draftExpenses(d: Drafter, tenants: CatalogTable | undefined, tenantOf: TenantOf): CatalogTable | undefined {
  const spec = d.spec('expenses');
  const candidates = d.free().filter((table) => idempotencyKeys(table).length > 0);
  const table = d.chooseTable(
    'expenses',
    candidates,
    (candidate) => `the unique key ${idempotencyKeys(candidate)[0]!.name} (${list(idempotencyKeys(candidate)[0]!.columns)}) holds a column named like idempotency${candidate.rls ? ', row-level security on' : ''}`,
    'no table has a unique key with a column named like idempotency_key; write the table the Worker records expenses in',
    [
      ['row-level security on', (candidate) => candidate.rls],
      ['it references the tenant table', (candidate) => foreignKeysTo(candidate, tenants).length > 0],
    ],
  );
  if (!table) return undefined;
  draftKey(d, spec, 'expenses', table);
  const tenant = draftTenantColumn(d, spec, 'expenses', table, tenantOf);
  const keys = idempotencyKeys(table);
  if (keys.length === 1) {
    const columns = keys[0]!.columns;
    const others = columns.filter((name) => name !== tenant);
    if (others.length === 1) d.set(spec, 'expenses.idempotency_key', columns, `the unique key ${keys[0]!.name} of ${table.name}`);
    else {
      d.todo(spec, 'expenses.idempotency_key', `the unique key ${keys[0]!.name} (${list(columns)}) has ${others.length} columns besides the tenant column; write the key column, with the tenant column when the key is per tenant`);
    }
  } else {
    d.todo(spec, 'expenses.idempotency_key', `${table.name} has ${keys.length} unique keys with a column named like idempotency (${list(keys.map((key) => `${key.name} (${list(key.columns)})`))}); write the columns a repeated write conflicts on`);
  }
  draftAmount(d, spec, 'expenses', table);
  optionalColumn(d, spec, 'expenses.description', table, columnSynonyms.description, 'a description', (candidate) => textType.test(candidate.type));
  return table;
}

/** expenses.transaction, once the pending table is known: a foreign key to it, else a column named like a transaction id. */
function draftExpenseTransaction(d: Drafter, expenses: CatalogTable | undefined, pending: CatalogTable | undefined): void {
  if (!expenses) return;
  const spec = d.spec('expenses');
  const key = 'expenses.transaction';
  const references = foreignKeysTo(expenses, pending);
  if (references.length === 1) {
    d.set(spec, key, references[0]!.columns[0], `column ${expenses.name}.${references[0]!.columns[0]}, a foreign key to ${pending!.name}`);
    return;
  }
  const named = references.length > 1 ? references.map((reference) => reference.columns[0]!) : expenses.columns.map((candidate) => candidate.name).filter((name) => transactionColumn.test(name));
  if (named.length === 1) d.set(spec, key, named[0], `column ${expenses.name}.${named[0]}, named like a transaction id (it has no foreign key)`);
  else if (named.length === 0) d.omit(key, `no column of ${expenses.name} references the pending transactions or is named like transaction_id`);
  else d.todo(spec, key, `${expenses.name} has ${list(named)}, each could hold the pending transaction; write the one it is, or remove this key`);
}

const claimColumns = [...columnSynonyms.claimedBy, ...columnSynonyms.leaseUntil, 'claimed_at', 'locked_at'];

function draftPending(d: Drafter, tenantOf: TenantOf): CatalogTable | undefined {
  const spec = d.spec('pending_transactions');
  const pendingValue = (table: CatalogTable) => {
    const status = statusColumn(table);
    if (status.kind !== 'one') return undefined;
    const allowed = allowedOf(table, status.value);
    if (!allowed) return undefined;
    const match = statusValueFor('pending', allowed.values);
    return match.kind === 'one' ? { value: match.value, evidence: allowed.evidence } : undefined;
  };
  const claim = (table: CatalogTable) => columnsNamed(table, claimColumns);
  const candidates = d.free().filter((table) => pendingValue(table) && claim(table).length > 0);
  const table = d.chooseTable(
    'pending_transactions',
    candidates,
    (candidate) => `${pendingValue(candidate)!.evidence} allows '${pendingValue(candidate)!.value}', and it has a claim column (${list(claim(candidate).map((c) => c.name))})`,
    `no table has a status CHECK with a word for pending (${list(statusSynonyms.pending)}) and a claim column (${list(claimColumns)}); write the table of bank transactions waiting to be reconciled`,
    [
      ['it has an amount', (candidate) => columnsNamed(candidate, columnSynonyms.amount).length > 0],
      ['row-level security on', (candidate) => candidate.rls],
    ],
  );
  if (!table) return undefined;
  draftKey(d, spec, 'pending_transactions', table);
  draftTenantColumn(d, spec, 'pending_transactions', table, tenantOf);
  draftAmount(d, spec, 'pending_transactions', table);
  optionalColumn(d, spec, 'pending_transactions.description', table, columnSynonyms.description, 'a description', (candidate) => textType.test(candidate.type));
  draftStatus(d, spec, 'pending_transactions', table, ['pending', 'claimed', 'processed']);
  optionalColumn(d, spec, 'pending_transactions.claimed_by', table, columnSynonyms.claimedBy, 'who claimed it');
  optionalColumn(d, spec, 'pending_transactions.lease_until', table, columnSynonyms.leaseUntil, 'when a claim expires', (candidate) => timeType.test(candidate.type));
  optionalColumn(d, spec, 'pending_transactions.processed_by', table, columnSynonyms.processedBy, 'who processed it');
  optionalColumn(d, spec, 'pending_transactions.processed_at', table, columnSynonyms.processedAt, 'when it was processed', (candidate) => timeType.test(candidate.type));
  return table;
}

// --- runs, turns, tool_calls -----------------------------------------------

interface Chain {
  calls: CatalogTable;
  turns: CatalogTable;
  runs: CatalogTable;
  /** tool_calls -> turns, turns -> runs. */
  callTurn: string;
  turnRun: string;
}

function draftChain(d: Drafter, tenantOf: TenantOf): { runs?: CatalogTable; turns?: CatalogTable } {
  const free = d.free();
  const freeNames = new Set(free.map((table) => table.name));
  const chains: Chain[] = [];
  for (const calls of free) {
    for (const toTurns of foreignKeys(calls)) {
      const turns = d.table(toTurns.references);
      if (!turns || turns === calls || !freeNames.has(turns.name)) continue;
      for (const toRuns of foreignKeys(turns)) {
        const runs = d.table(toRuns.references);
        if (!runs || runs === calls || runs === turns || !freeNames.has(runs.name) || tenantOf(runs).kind === 'none') continue;
        chains.push({ calls, turns, runs, callTurn: toTurns.columns[0]!, turnRun: toRuns.columns[0]! });
      }
    }
  }
  const named = (chain: Chain) =>
    Number((tableSynonyms.tool_calls as readonly string[]).includes(chain.calls.name)) +
    Number((tableSynonyms.turns as readonly string[]).includes(chain.turns.name)) +
    Number((tableSynonyms.runs as readonly string[]).includes(chain.runs.name));
  let left = chains;
  if (left.length > 1) {
    const best = Math.max(...left.map(named));
    left = left.filter((chain) => named(chain) === best);
  }
  const shown = (chain: Chain) => `${chain.calls.name}.${chain.callTurn} -> ${chain.turns.name}, ${chain.turns.name}.${chain.turnRun} -> ${chain.runs.name}`;
  if (left.length !== 1) {
    const why =
      left.length === 0
        ? 'no foreign-key chain tool_calls -> turns -> runs (runs holding the tenant) was found'
        : `${left.length} foreign-key chains could be tool_calls -> turns -> runs (${list(left.map(shown))})`;
    for (const [part, what] of [['runs', 'runs'], ['turns', 'turns of a run'], ['tool_calls', 'tool calls of a turn']]) d.undecidedTable(part!, `${why}; write the table of ${what}`);
    return {};
  }
  const chain = left[0]!;
  const evidence = `the foreign-key chain ${shown(chain)}${chains.length > 1 ? ` (of ${chains.length}, the one named like tool_calls, turns, runs)` : ''}`;
  for (const [part, table] of [['runs', chain.runs], ['turns', chain.turns], ['tool_calls', chain.calls]] as const) {
    d.chosen.set(part, table);
    d.set(d.spec(part), `${part}.table`, table.name, evidence);
  }

  const runs = d.spec('runs');
  draftKey(d, runs, 'runs', chain.runs);
  draftTenantColumn(d, runs, 'runs', chain.runs, tenantOf);
  optionalColumn(d, runs, 'runs.worker', chain.runs, columnSynonyms.worker, 'the worker');
  draftStatus(d, runs, 'runs', chain.runs, ['running', 'finished', 'failed']);
  optionalColumn(d, runs, 'runs.total_turns', chain.runs, columnSynonyms.totalTurns, 'the number of turns', (c) => integerType.test(c.type));
  optionalColumn(d, runs, 'runs.error', chain.runs, columnSynonyms.error, 'the error');
  optionalColumn(d, runs, 'runs.started_at', chain.runs, columnSynonyms.startedAt, 'when it started', (c) => timeType.test(c.type));
  optionalColumn(d, runs, 'runs.finished_at', chain.runs, columnSynonyms.finishedAt, 'when it finished', (c) => timeType.test(c.type));

  const turns = d.spec('turns');
  draftKey(d, turns, 'turns', chain.turns);
  d.set(turns, 'turns.run', chain.turnRun, `column ${chain.turns.name}.${chain.turnRun}, a foreign key to ${chain.runs.name}`);
  requiredColumn(d, turns, 'turns.number', chain.turns, columnSynonyms.turnNumber, 'the turn number', (c) => integerType.test(c.type));
  draftStatus(d, turns, 'turns', chain.turns, ['running', 'completed', 'failed']);
  optionalColumn(d, turns, 'turns.started_at', chain.turns, columnSynonyms.startedAt, 'when it started', (c) => timeType.test(c.type));
  optionalColumn(d, turns, 'turns.finished_at', chain.turns, columnSynonyms.finishedAt, 'when it finished', (c) => timeType.test(c.type));

  const calls = d.spec('tool_calls');
  draftKey(d, calls, 'tool_calls', chain.calls);
  d.set(calls, 'tool_calls.turn', chain.callTurn, `column ${chain.calls.name}.${chain.callTurn}, a foreign key to ${chain.turns.name}`);
  const toRuns = foreignKeysTo(chain.calls, chain.runs);
  if (toRuns.length === 1) d.set(calls, 'tool_calls.run', toRuns[0]!.columns[0], `column ${chain.calls.name}.${toRuns[0]!.columns[0]}, a foreign key to ${chain.runs.name}`);
  else if (toRuns.length === 0) d.omit('tool_calls.run', `no column of ${chain.calls.name} references ${chain.runs.name} (the run is reached through ${chain.turns.name})`);
  else d.todo(calls, 'tool_calls.run', `${chain.calls.name} has ${list(toRuns.map((key) => key.columns[0]!))} referencing ${chain.runs.name}; write the one it is, or remove this key`);
  optionalColumn(d, calls, 'tool_calls.turn_number', chain.calls, columnSynonyms.callTurnNumber, 'the turn number', (c) => integerType.test(c.type));
  requiredColumn(d, calls, 'tool_calls.number', chain.calls, columnSynonyms.callNumber, 'the call number', (c) => integerType.test(c.type));
  requiredColumn(d, calls, 'tool_calls.tool', chain.calls, columnSynonyms.tool, 'the tool name', (c) => textType.test(c.type));
  requiredColumn(d, calls, 'tool_calls.arguments', chain.calls, columnSynonyms.arguments, 'the arguments');
  optionalColumn(d, calls, 'tool_calls.result', chain.calls, columnSynonyms.result, 'the result');
  draftStatus(d, calls, 'tool_calls', chain.calls, ['started', 'completed', 'failed']);
  optionalColumn(d, calls, 'tool_calls.error', chain.calls, columnSynonyms.error, 'the error');
  optionalColumn(d, calls, 'tool_calls.error_code', chain.calls, columnSynonyms.errorCode, 'the error code');
  optionalColumn(d, calls, 'tool_calls.started_at', chain.calls, columnSynonyms.startedAt, 'when it started', (c) => timeType.test(c.type));
  optionalColumn(d, calls, 'tool_calls.finished_at', chain.calls, columnSynonyms.finishedAt, 'when it finished', (c) => timeType.test(c.type));
  optionalColumn(d, calls, 'tool_calls.duration_ms', chain.calls, columnSynonyms.durationMs, 'the duration', (c) => integerType.test(c.type) || /^numeric/.test(c.type));
  return { runs: chain.runs, turns: chain.turns };
}

/** A part's run column: a foreign key to runs, else a column named as turns' run column. */
function draftRunColumn(d: Drafter, spec: Spec, part: string, table: CatalogTable, runs: CatalogTable | undefined, turns: CatalogTable | undefined, optional: boolean): void {
  const key = `${part}.run`;
  if (!runs) {
    if (optional) d.omit(key, 'the runs table is undecided');
    else d.todo(spec, key, 'decide runs.table first, then write the column that holds the run');
    return;
  }
  const references = foreignKeysTo(table, runs);
  if (references.length === 1) {
    d.set(spec, key, references[0]!.columns[0], `column ${table.name}.${references[0]!.columns[0]}, a foreign key to ${runs.name}`);
    return;
  }
  const runColumn = turns ? foreignKeysTo(turns, runs)[0]?.columns[0] : undefined;
  const named = references.length > 1 ? references.map((reference) => reference.columns[0]!) : table.columns.filter((candidate) => candidate.name === runColumn).map((candidate) => candidate.name);
  if (named.length === 1) d.set(spec, key, named[0], `column ${table.name}.${named[0]}, named as ${turns!.name}'s reference to ${runs.name} (it has no foreign key)`);
  else if (named.length > 1) d.todo(spec, key, `${table.name} has ${list(named)} referencing ${runs.name}; write the one it is${optional ? ', or remove this key' : ''}`);
  else if (optional) d.omit(key, `no column of ${table.name} references ${runs.name}`);
  else d.todo(spec, key, `no column of ${table.name} references ${runs.name}; write the column that holds the run`);
}

// --- outbox, events --------------------------------------------------------

function dedupColumns(table: CatalogTable): string[] {
  return uniqueKeys(table)
    .filter((key) => key.columns.length === 1 && (columnSynonyms.dedupKey as readonly string[]).includes(key.columns[0]!))
    .map((key) => key.columns[0]!);
}

function draftOutbox(d: Drafter, tenantOf: TenantOf, runs: CatalogTable | undefined, turns: CatalogTable | undefined): void {
  const spec = d.spec('outbox');
  const candidates = d.free().filter((table) => dedupColumns(table).length > 0 && statusColumn(table).kind === 'one');
  const table = d.chooseTable(
    'outbox',
    candidates,
    (candidate) => `a unique ${dedupColumns(candidate)[0]} and a status column`,
    `no table has a unique dedup column (${list(columnSynonyms.dedupKey)}) and a status column; write the outbox table`,
    [['it has a status CHECK', (candidate) => { const status = statusColumn(candidate); return status.kind === 'one' && allowedOf(candidate, status.value) !== undefined; }]],
  );
  if (!table) return;
  draftKey(d, spec, 'outbox', table);
  draftTenantColumn(d, spec, 'outbox', table, tenantOf);
  draftRunColumn(d, spec, 'outbox', table, runs, turns, true);
  const dedup = dedupColumns(table);
  if (dedup.length === 1) d.set(spec, 'outbox.dedup_key', dedup[0], `column ${table.name}.${dedup[0]}, unique`);
  else d.todo(spec, 'outbox.dedup_key', `${table.name} has ${list(dedup)}, each unique and named like a dedup key; write the one it is`);
  const text = (c: CatalogColumn) => textType.test(c.type);
  optionalColumn(d, spec, 'outbox.recipient', table, columnSynonyms.recipient, 'the recipient', text);
  optionalColumn(d, spec, 'outbox.subject', table, columnSynonyms.subject, 'the subject', text);
  optionalColumn(d, spec, 'outbox.body', table, columnSynonyms.body, 'the body', text);
  optionalColumn(d, spec, 'outbox.payload', table, columnSynonyms.payload, 'a json payload {to, subject, body}', (c) => jsonType.test(c.type));
  draftStatus(d, spec, 'outbox', table, ['pending', 'dispatched', 'failed']);
  optionalColumn(d, spec, 'outbox.attempts', table, columnSynonyms.attempts, 'the attempts', (c) => integerType.test(c.type));
  optionalColumn(d, spec, 'outbox.last_error', table, columnSynonyms.lastError, 'the last error', text);
  optionalColumn(d, spec, 'outbox.next_attempt_at', table, columnSynonyms.nextAttemptAt, 'when it is tried next', (c) => timeType.test(c.type));
  optionalColumn(d, spec, 'outbox.dispatched_at', table, columnSynonyms.dispatchedAt, 'when it was dispatched', (c) => timeType.test(c.type));
  if (!spec.recipient && !spec.payload) {
    d.todo(spec, 'outbox.payload', `${table.name} has no recipient column (${list(columnSynonyms.recipient)}) and no json payload; write the column that says where a message goes`);
  }
}

/** BEFORE DELETE or BEFORE TRUNCATE triggers: the append-only guard (an updated_at trigger fires on UPDATE only). */
function guardTriggers(table: CatalogTable): string[] {
  return table.triggers.filter((trigger) => (trigger.type & 2) !== 0 && (trigger.type & (8 | 32)) !== 0).map((trigger) => trigger.name);
}

function draftEvents(d: Drafter, tenantOf: TenantOf, runs: CatalogTable | undefined, turns: CatalogTable | undefined): void {
  const spec = d.spec('events');
  const runColumn = turns && runs ? foreignKeysTo(turns, runs)[0]?.columns[0] : undefined;
  const hasRun = (table: CatalogTable) => foreignKeysTo(table, runs).length > 0 || table.columns.some((candidate) => candidate.name === runColumn);
  const named = (table: CatalogTable) => (tableSynonyms.events as readonly string[]).includes(table.name);
  const candidates = d.free().filter((table) => hasRun(table) && (guardTriggers(table).length > 0 || named(table)));
  const table = d.chooseTable(
    'events',
    candidates,
    (candidate) => (guardTriggers(candidate).length > 0 ? `append-only triggers ${list(guardTriggers(candidate))}` : `named ${candidate.name}`),
    'no table with a run column has append-only triggers (BEFORE DELETE or TRUNCATE) or is named agent_events; write the table of agent events',
    [['append-only triggers', (candidate) => guardTriggers(candidate).length > 0]],
  );
  if (!table) return;
  // The ordering column: an increasing key (identity or serial), the primary key when it is one.
  const key = primaryKey(table);
  const keyColumn = key?.columns.length === 1 ? table.columns.find((candidate) => candidate.name === key.columns[0]) : undefined;
  const increasing = table.columns.filter((candidate) => candidate.increasing && integerType.test(candidate.type));
  if (keyColumn && (keyColumn.increasing || integerType.test(keyColumn.type))) {
    d.set(spec, 'events.key', keyColumn.name, `the primary key ${key!.name} of ${table.name} (${keyColumn.type}${keyColumn.increasing ? ', increasing' : ''}): events are read in its order`);
  } else if (increasing.length === 1) {
    d.set(spec, 'events.key', increasing[0]!.name, `column ${table.name}.${increasing[0]!.name}, an identity or serial ${increasing[0]!.type}: events are read in its order`);
  } else {
    d.todo(spec, 'events.key', `${table.name} has no single increasing key (an identity or serial column, or an integer primary key); write the column events are read in order of`);
  }
  draftRunColumn(d, spec, 'events', table, runs, turns, false);
  draftTenantColumn(d, spec, 'events', table, tenantOf, true);
  optionalColumn(d, spec, 'events.turn_number', table, columnSynonyms.callTurnNumber, 'the turn number', (c) => integerType.test(c.type));
  requiredColumn(d, spec, 'events.type', table, columnSynonyms.eventType, 'the event type', (c) => textType.test(c.type) || c.enumValues !== null);
  requiredColumn(d, spec, 'events.payload', table, columnSynonyms.eventPayload, 'the payload');
  optionalColumn(d, spec, 'events.created_at', table, columnSynonyms.createdAt, 'when it happened', (c) => timeType.test(c.type));
}

// --- required, roles -------------------------------------------------------

/** The columns a part's keys name (as the catalog check counts them). */
function namedColumns(spec: Spec): Set<string> {
  const named = new Set<string>();
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'table' || key === 'setting' || key === 'required') continue;
    if (typeof value === 'string') named.add(value);
    else if (Array.isArray(value)) for (const item of value) named.add(String(item));
    else if (value && typeof value === 'object' && 'column' in value) named.add(String((value as { column: unknown }).column));
  }
  return named;
}

function draftRequired(d: Drafter, part: string, tenants: CatalogTable | undefined): void {
  const table = d.chosen.get(part);
  if (!table) return;
  const spec = d.spec(part);
  const covered = namedColumns(spec);
  const required: Spec = {};
  for (const candidate of table.columns.filter((c) => c.notNull && !c.hasDefault && !covered.has(c.name))) {
    const key = `${part}.required.${candidate.name}`;
    const references = foreignKeys(table).find((fk) => fk.columns[0] === candidate.name)?.references;
    const unique = uniqueKeys(table).some((uniqueKey) => uniqueKey.columns.length === 1 && uniqueKey.columns[0] === candidate.name);
    const template = templateFor(candidate, { unique, references, tenantTable: tenants?.name });
    if ('template' in template) {
      d.set(required, key, template.template, `${table.name}.${candidate.name} is NOT NULL with no default and no key fills it (${candidate.type}${references ? `, references ${references}` : ''})`);
    } else {
      d.todo(required, key, `${table.name}.${candidate.name} is NOT NULL with no default and ${template.why}; write a value template ({key}, {tenant}, {uuid} or a constant)`);
    }
  }
  if (Object.keys(required).length > 0) spec.required = required;
}

function draftRoles(d: Drafter): Spec {
  const roles: Spec = {};
  const byName = new Map(d.catalog.roles.map((role) => [role.name, role]));
  const tables = [...d.chosen.values()];
  const owners = [...new Set(tables.map((table) => table.owner))];
  let owner: string | undefined;
  if (tables.length === 0) d.todo(roles, 'roles.owner', 'no table was decided; write the role that owns the tables');
  else if (owners.length === 1) {
    owner = owners[0];
    d.set(roles, 'roles.owner', owner, `owns ${list(tables.map((table) => table.name))}`);
  } else {
    d.todo(roles, 'roles.owner', `the tables have ${owners.length} owners (${list(owners.map((name) => `${name}: ${list(tables.filter((table) => table.owner === name).map((table) => table.name))}`))}); write the role that owns the schema's tables`);
  }

  const expenses = d.chosen.get('expenses');
  const pending = d.chosen.get('pending_transactions');
  const granted = (table: CatalogTable | undefined, privilege: string) =>
    new Set((table?.grants ?? []).filter((grant) => grant.privilege === privilege && grant.role !== 'PUBLIC' && grant.role !== owner && grant.role !== table?.owner).map((grant) => grant.role));
  if (!expenses || !pending) {
    d.todo(roles, 'roles.worker', 'decide expenses.table and pending_transactions.table first, then write the role that has INSERT on the one and UPDATE on the other');
  } else {
    const updates = granted(pending, 'UPDATE');
    const workers = [...granted(expenses, 'INSERT')].filter((role) => updates.has(role)).sort();
    if (workers.length === 1) d.set(roles, 'roles.worker', workers[0], `granted INSERT on ${expenses.name} and UPDATE on ${pending.name}, and owns neither`);
    else if (workers.length === 0) d.todo(roles, 'roles.worker', `no role but the owner is granted INSERT on ${expenses.name} and UPDATE on ${pending.name}; write the role the Worker's tool server connects as`);
    else d.todo(roles, 'roles.worker', `${list(workers)} are each granted INSERT on ${expenses.name} and UPDATE on ${pending.name}; write the one the Worker's tool server connects as`);
  }

  if (!expenses) {
    d.todo(roles, 'roles.reader', 'decide expenses.table first, then write the tenant-scoped reader');
  } else {
    const inserts = granted(expenses, 'INSERT');
    const selecting = [...granted(expenses, 'SELECT')].filter((role) => !inserts.has(role)).sort();
    const why = (name: string) => {
      const role = byName.get(name);
      if (!role) return 'is not a role of this server';
      if (role.superuser) return 'is a superuser (bypasses RLS)';
      if (role.bypassRls) return 'has BYPASSRLS';
      const member = role.memberOf.find((other) => other === owner || other === expenses.owner);
      return member ? `is a member of the owner ${member} (bypasses RLS as it does)` : undefined;
    };
    const readers = selecting.filter((name) => why(name) === undefined);
    const refused = selecting.filter((name) => why(name) !== undefined).map((name) => `${name} ${why(name)}`);
    const also = refused.length > 0 ? ` (not ${list(refused)})` : '';
    if (readers.length === 1) d.set(roles, 'roles.reader', readers[0], `granted SELECT on ${expenses.name} without INSERT; neither superuser, BYPASSRLS nor a member of the owner${also}`);
    else if (readers.length === 0) {
      d.todo(roles, 'roles.reader', `no role is granted SELECT on ${expenses.name} without INSERT that is neither superuser, BYPASSRLS nor a member of the owner${also}; create one, grant it SELECT, and write it here`);
    } else d.todo(roles, 'roles.reader', `${list(readers)} are each granted SELECT on ${expenses.name} without INSERT; write the tenant-scoped reader`);
  }
  return { worker: roles.worker, reader: roles.reader, owner: roles.owner };
}

// ---------------------------------------------------------------------------

/**
 * Drafts a profile from the target's catalog, read only. A draft with no TODO is
 * checked as a run would check it (parseProfile, then profileProblems on this target);
 * what does not pass is added to `undecided`.
 */
export async function draftProfile(client: Queryable, options: { schema?: string } = {}): Promise<DraftResult> {
  const schema = options.schema ?? 'public';
  const draft = draftFromCatalog(await readCatalog(client, schema));
  if (draft.undecided.length > 0) return draft;
  let profile;
  try {
    profile = parseProfile(JSON.stringify(draft.profile), 'the draft');
  } catch (error) {
    if (!(error instanceof ProfileError)) throw error;
    return { ...draft, undecided: [{ key: 'profile', why: error.message }] };
  }
  const { problems } = await profileProblems(client, profile);
  return { ...draft, undecided: problems.map((problem) => ({ key: /^\S+/.exec(problem)?.[0] ?? 'profile', why: problem })) };
}
