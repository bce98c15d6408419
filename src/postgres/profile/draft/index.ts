// Drafting a profile from the target's catalog (`sor-drills profile`): the public
// surface. Read only: it reads pg_catalog and never writes to the target.
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
//
// pg-catalog.ts reads the catalog, vocabulary.ts holds the synonyms, drafter.ts the
// drafter's state; one file a group of profile parts, called in order below.
import { profileProblems } from '../check.js';
import { parseProfile, ProfileError } from '../load.js';
import { draftEvents } from './agent-events.js';
import { draftChain } from './agent-runs.js';
import { Drafter, type MappedKey, type Spec, type UndecidedKey } from './drafter.js';
import { draftExpenses, draftExpenseTransaction } from './expenses.js';
import { draftOutbox } from './outbox.js';
import { draftPending } from './pending-transactions.js';
import { type Catalog, type CatalogTable, type Queryable, readCatalog } from './pg-catalog.js';
import { draftRequired } from './required-columns.js';
import { draftRoles } from './roles-from-grants.js';
import { draftTenants, tenantColumn, tenantColumns } from './tenants.js';

export type { MappedKey, UndecidedKey } from './drafter.js';
export { type Catalog, type CatalogColumn, type CatalogConstraint, type CatalogRole, type CatalogTable, readCatalog } from './pg-catalog.js';
export { columnSynonyms, type Found, statusSynonyms, statusValueFor, type StatusWord, templateFor } from './vocabulary.js';

export interface DraftResult {
  /** The profile, in the schema's key order; an undecided key holds a "TODO: ..." string. */
  profile: Record<string, unknown>;
  mapped: MappedKey[];
  /** Optional keys with no evidence, left out of the profile. */
  leftOut: UndecidedKey[];
  undecided: UndecidedKey[];
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
