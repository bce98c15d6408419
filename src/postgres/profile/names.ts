// A profile's names as SQL parts: each table schema-qualified and each column an
// Identifier (quoted with the driver's escapeIdentifier when a statement is built
// with the sql tag of ../sql.ts). An optional column the target lacks is
// undefined: the statement that would use it leaves it out, and says less.
//
//   const n = profileNames(profile);
//   sql`select ${n.expenses.key} from ${n.expenses.table} where ${n.expenses.tenant} = ${tenant}`
import { randomUUID } from 'node:crypto';
import { type Identifier, identifier, join, type Sql, sql } from '../sql.js';
import { idempotencyKeyColumn } from './load.js';
import type { Profile, ProfileTable } from './schema.js';

type Part<T extends ProfileTable> = Profile[T];

/** Each name-valued key of a part as an Identifier (undefined when optional and left out). */
type Columns<T> = {
  [K in keyof T as K extends 'table' | 'setting' | '$schema' ? never : T[K] extends string | undefined ? K : never]-?: undefined extends T[K]
    ? Identifier | undefined
    : Identifier;
};

type StatusWords<T> = T extends { status: { values: infer V } } ? V : never;

export type PartNames<T extends ProfileTable> = Columns<Part<T>> & {
  /** schema.table, quoted. */
  table: Identifier;
  /** The table's own name, unquoted (the oracle's table name). */
  tableName: string;
  /** The status column (parts with one), as an Identifier. */
  status: Part<T> extends { status: unknown } ? Identifier : undefined;
  /** The target's value for each of the drills' status words. */
  values: StatusWords<Part<T>>;
  /** NOT NULL columns the drills fill from the profile's templates. */
  required: Record<string, string>;
};

export interface ProfileNames {
  profile: Profile;
  /** The session setting the policies read (app.tenant_id). */
  setting: string;
  tenants: PartNames<'tenants'>;
  expenses: PartNames<'expenses'> & {
    amount: Identifier;
    amountUnit: 'cents' | 'major';
    /** The column of the unique key that holds the Worker's key. */
    idempotencyKey: Identifier;
    /** The unique key's columns, the ON CONFLICT target. */
    conflict: Identifier[];
  };
  pending_transactions: PartNames<'pending_transactions'> & { amount: Identifier; amountUnit: 'cents' | 'major' };
  runs: PartNames<'runs'>;
  turns: PartNames<'turns'>;
  tool_calls: PartNames<'tool_calls'>;
  outbox: PartNames<'outbox'>;
  events: PartNames<'events'>;
}

function partNames<T extends ProfileTable>(profile: Profile, part: T): PartNames<T> {
  const spec = profile[part] as Record<string, unknown>;
  const names: Record<string, unknown> = {
    table: identifier(profile.schema, spec.table as string),
    tableName: spec.table as string,
    required: (spec.required as Record<string, string> | undefined) ?? {},
  };
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'table' || key === 'required' || key === 'setting') continue;
    if (typeof value === 'string') names[key] = identifier(value);
  }
  const status = spec.status as { column: string; values: Record<string, string> } | undefined;
  if (status) {
    names.status = identifier(status.column);
    names.values = status.values;
  }
  return names as PartNames<T>;
}

export function profileNames(profile: Profile): ProfileNames {
  return {
    profile,
    setting: profile.tenants.setting,
    tenants: partNames(profile, 'tenants'),
    expenses: {
      ...partNames(profile, 'expenses'),
      amount: identifier(profile.expenses.amount.column),
      amountUnit: profile.expenses.amount.unit,
      idempotencyKey: identifier(idempotencyKeyColumn(profile)),
      conflict: profile.expenses.idempotency_key.map((column) => identifier(column)),
    },
    pending_transactions: {
      ...partNames(profile, 'pending_transactions'),
      amount: identifier(profile.pending_transactions.amount.column),
      amountUnit: profile.pending_transactions.amount.unit,
    },
    runs: partNames(profile, 'runs'),
    turns: partNames(profile, 'turns'),
    tool_calls: partNames(profile, 'tool_calls'),
    outbox: partNames(profile, 'outbox'),
    events: partNames(profile, 'events'),
  };
}

/** An amount read as integer cents, whatever the column counts: `col` or `round(col * 100)::int`. */
export function centsOf(part: { amount: Identifier; amountUnit: 'cents' | 'major' }, alias?: string): Sql {
  const column = alias ? sql`${identifier(alias)}.${part.amount}` : sql`${part.amount}`;
  return part.amountUnit === 'cents' ? sql`${column}::int` : sql`round(${column} * 100)::int`;
}

/** An amount of `cents` as the column's value: bound as is, or divided by 100. */
export function amountValue(part: { amountUnit: 'cents' | 'major' }, cents: number): Sql {
  return part.amountUnit === 'cents' ? sql`${cents}` : sql`(${cents}::numeric / 100)`;
}

export interface TemplateValues {
  /** A token unique to the row being inserted. */
  key: string;
  /** The tenant's key. */
  tenant?: string;
}

/** A value template rendered: {key}, {tenant}, {uuid} replaced; the result is bound, never spliced. */
export function renderTemplate(template: string, values: TemplateValues): string {
  return template.replace(/\{(key|tenant|uuid)\}/g, (_, name: string) =>
    name === 'uuid' ? randomUUID() : name === 'key' ? values.key : (values.tenant ?? ''),
  );
}

/**
 * The columns and values an INSERT adds for a part's `required` templates. Columns the
 * statement already sets are skipped.
 */
export function requiredInsert(
  part: { required: Record<string, string> },
  values: TemplateValues,
  alreadySet: readonly Identifier[] = [],
): { columns: Identifier[]; values: string[] } {
  const set = new Set(alreadySet.map((column) => column.name));
  const entries = Object.entries(part.required).filter(([column]) => !set.has(column));
  return {
    columns: entries.map(([column]) => identifier(column)),
    values: entries.map(([, template]) => renderTemplate(template, values)),
  };
}

/**
 * An INSERT's column list and VALUES list from pairs; pairs whose column is
 * undefined (an optional column the target lacks) are dropped.
 *   const { columns, values } = insertList([[n.runs.key, id], [n.runs.worker, worker]]);
 *   sql`insert into ${n.runs.table} (${columns}) values (${values})`
 * A value that is an Sql fragment is spliced (an expression); anything else is bound.
 */
export function insertList(pairs: ReadonlyArray<readonly [Identifier | undefined, unknown]>): { columns: Sql; values: Sql } {
  const kept = pairs.filter((pair): pair is readonly [Identifier, unknown] => pair[0] !== undefined);
  return { columns: join(kept.map(([column]) => column)), values: join(kept.map(([, value]) => value)) };
}

/** `a = x, b = y` for an UPDATE, dropping optional columns the target lacks. */
export function setList(pairs: ReadonlyArray<readonly [Identifier | undefined, unknown]>): Sql {
  const kept = pairs.filter((pair): pair is readonly [Identifier, unknown] => pair[0] !== undefined);
  return join(kept.map(([column, value]) => sql`${column} = ${value}`));
}
