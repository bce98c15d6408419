// SQL text built from parts, so that a statement written once works on any
// target's names. A tagged template:
//
//   const q = sql`select ${n.key} from ${n.table} where ${n.tenant} = ${tenantId}`;
//   await client.query(q.text, q.values);
//
// Each interpolated part is one of:
//   - an Identifier (identifier(), or a profile's names): quoted with the driver's
//     escapeIdentifier, never bound;
//   - another Sql fragment: spliced in, its parameters renumbered;
//   - raw() text: spliced in as written (SQL keywords a caller chooses, never input);
//   - anything else: a value, bound as the next $n parameter.
// Values are therefore always bind parameters, whatever they hold.
import pg from 'pg';

export class Identifier {
  /** One or two parts (schema, name); each is quoted on its own. */
  constructor(readonly parts: readonly string[]) {}
  get name(): string {
    return this.parts[this.parts.length - 1]!;
  }
  toString(): string {
    return this.parts.map((part) => pg.escapeIdentifier(part)).join('.');
  }
}

class Raw {
  constructor(readonly text: string) {}
}

type Part = { kind: 'text'; text: string } | { kind: 'value'; value: unknown };

export class Sql {
  constructor(readonly parts: readonly Part[]) {}

  /** The statement with $1, $2, ... in order of appearance. */
  get text(): string {
    let n = 0;
    return this.parts.map((part) => (part.kind === 'text' ? part.text : `$${++n}`)).join('');
  }

  get values(): unknown[] {
    return this.parts.flatMap((part) => (part.kind === 'value' ? [part.value] : []));
  }

  /**
   * The statement as the operator reads it on screen: each value written as a
   * literal (escapeLiteral), so the shown line can be pasted into psql. Only for
   * display: what runs is `text` with `values` bound.
   */
  get shown(): string {
    return this.parts
      .map((part) => (part.kind === 'text' ? part.text : displayValue(part.value)))
      .join('')
      .replace(/\s+/g, ' ')
      .trim();
  }
}

function displayValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `${pg.escapeLiteral(`{${value.map(String).join(',')}}`)}`;
  if (value instanceof Date) return pg.escapeLiteral(value.toISOString());
  return pg.escapeLiteral(typeof value === 'string' ? value : JSON.stringify(value));
}

export function identifier(...parts: string[]): Identifier {
  if (parts.length === 0 || parts.some((part) => part.length === 0)) throw new Error('internal: an empty identifier');
  return new Identifier(parts);
}

/** SQL text spliced in as written: keywords and operators the code chooses, never input. */
export function raw(text: string): Raw {
  return new Raw(text);
}

export function sql(strings: TemplateStringsArray, ...values: unknown[]): Sql {
  const parts: Part[] = [];
  strings.forEach((text, index) => {
    if (text) parts.push({ kind: 'text', text });
    if (index < values.length) parts.push(...partsOf(values[index]));
  });
  return new Sql(parts);
}

function partsOf(value: unknown): Part[] {
  if (value instanceof Sql) return [...value.parts];
  if (value instanceof Identifier) return [{ kind: 'text', text: value.toString() }];
  if (value instanceof Raw) return [{ kind: 'text', text: value.text }];
  return [{ kind: 'value', value }];
}

/** Fragments joined by a separator (`, ` unless given), e.g. a column list. */
export function join(items: readonly unknown[], separator = ', '): Sql {
  const parts: Part[] = [];
  items.forEach((item, index) => {
    if (index > 0) parts.push({ kind: 'text', text: separator });
    parts.push(...partsOf(item));
  });
  return new Sql(parts);
}

/** An empty fragment, for optional clauses: sql`... ${cond ? sql`and x` : empty}`. */
export const empty = new Sql([]);

/** What client.query takes: `client.query(q.text, q.values)` written once. */
export function query(q: Sql): { text: string; values: unknown[] } {
  return { text: q.text, values: q.values };
}
