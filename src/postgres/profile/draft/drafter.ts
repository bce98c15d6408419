// The drafter's state: the keys mapped (with their evidence), left out and undecided,
// each part's spec as it is written, and the table each part was given; and the
// choice of a part's table among candidates, which every part makes.
import type { Catalog, CatalogTable } from './pg-catalog.js';
import { tableSynonyms } from './vocabulary.js';

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

export type Spec = Record<string, unknown>;

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
export type TieBreaker = readonly [string, (table: CatalogTable) => boolean];

export const list = (values: readonly string[]) => values.join(', ');
export const quoted = (values: readonly string[]) => values.map((value) => `'${value}'`).join(', ');

export class Drafter {
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
