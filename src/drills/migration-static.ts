// Reading a proposed migration without running it, with the real PostgreSQL
// parser (libpg-query): both directions present, the drop guard, and the scope
// (every statement touches only the migration's own target table). A data change on
// another table (`update tenants ...`) changes no catalog, so this is the only check
// that can see it: every relation any statement names counts, DML included.
import { parse } from 'libpg-query';
import { hasStatements, splitMigration } from '../postgres/migrations.js';

export interface ParsedStatement {
  /** The statement's node type, e.g. AlterTableStmt. */
  kind: string;
  /** Relations it names (schema-qualified names keep their schema). */
  relations: string[];
  /** A DROP TABLE / DROP SCHEMA / TRUNCATE, described; undefined for anything else. */
  destructive?: string;
  /** For CREATE TABLE: the table it creates. */
  creates?: string;
  text: string;
}

export interface StaticReview {
  hasUp: boolean;
  hasDown: boolean;
  up: ParsedStatement[];
  down: ParsedStatement[];
  /** The parser's message with a line and column in the file, when a direction does not parse. */
  parseError?: string;
  /** `-- sor-drills: allow-drop reason: ...` */
  override?: string;
  /** The table of the first up statement that changes the schema (else of the first that names one). */
  target?: string;
  /** Destructive statements not covered by the override (or by the up creating the table). */
  unguardedDrops: string[];
  /** Statements touching a relation other than the target. */
  riders: Array<{ direction: 'up' | 'down'; relation: string; statement: string }>;
  /** DO blocks: their statements are a string to the parser, so their scope cannot be read. */
  opaque: Array<{ direction: 'up' | 'down'; statement: string }>;
}

const overridePattern = /^--\s*sor-drills:\s*allow-drop\b\s*(?:reason:)?\s*(.*)$/im;

function nameOf(node: { relname?: string; schemaname?: string }): string | undefined {
  if (!node.relname) return undefined;
  return node.schemaname ? `${node.schemaname}.${node.relname}` : node.relname;
}

/** Every relation the statement names: any node with a relname, and DROP/COMMENT object lists. */
function relationsOf(kind: string, node: unknown): string[] {
  const found = new Set<string>();
  const walk = (value: unknown) => {
    if (Array.isArray(value)) {
      value.forEach(walk);
      return;
    }
    if (!value || typeof value !== 'object') return;
    const record = value as Record<string, unknown>;
    const name = nameOf(record as { relname?: string; schemaname?: string });
    if (name) found.add(name);
    for (const child of Object.values(record)) walk(child);
  };
  walk(node);
  const record = node as Record<string, unknown>;
  if (kind === 'DropStmt' || kind === 'CommentStmt') {
    const type = String(record.removeType ?? record.objtype ?? '');
    const objects = (kind === 'DropStmt' ? (record.objects as unknown[]) : [record.object]) ?? [];
    for (const object of objects) {
      const items = ((object as { List?: { items?: unknown[] } }).List?.items ?? [object]).map(
        (item) => (item as { String?: { sval?: string } }).String?.sval,
      );
      const names = items.filter((item): item is string => typeof item === 'string');
      if (names.length === 0) continue;
      if (type === 'OBJECT_COLUMN') found.add(names.slice(0, -1).join('.'));
      else if (type === 'OBJECT_SCHEMA') found.add(`schema ${names.join('.')}`);
      else found.add(names.join('.'));
    }
  }
  return [...found];
}

function destructiveOf(kind: string, node: Record<string, unknown>, relations: string[]): string | undefined {
  if (kind === 'DropStmt') {
    const type = String(node.removeType);
    if (type === 'OBJECT_TABLE') return `DROP TABLE ${relations.join(', ')}`;
    if (type === 'OBJECT_SCHEMA') return `DROP SCHEMA ${relations.map((name) => name.replace(/^schema /, '')).join(', ')}`;
  }
  if (kind === 'TruncateStmt') return `TRUNCATE ${relations.join(', ')}`;
  return undefined;
}

/** Statements that read or change rows, not the schema: the migration's target is the table a schema change names. */
const dataStatements = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'SelectStmt', 'CopyStmt']);

/**
 * Turns the parser's cursor into "line L, column C" of the file. libpg-query gives a
 * 0-based count of characters (code points, not UTF-16 units or bytes) into the section.
 */
function position(file: string, sectionStart: number, section: string, cursor: number): string {
  const before = file.slice(0, sectionStart) + Array.from(section).slice(0, Math.max(0, cursor)).join('');
  const lines = before.split('\n');
  return `line ${lines.length}, column ${Array.from(lines.at(-1) ?? '').length + 1}`;
}

/**
 * The text of one statement. stmt_location and stmt_len are UTF-8 byte offsets, so the
 * slice is taken from the section's bytes: slicing the JavaScript string would shift by
 * one unit per extra byte of every non-ASCII character before the statement. The
 * comments and blank lines the parser counts into a statement's span are dropped.
 */
export function statementText(bytes: Buffer, location: number, length: number | undefined): string {
  const text = bytes.subarray(location, length ? location + length : undefined).toString('utf8');
  return text.replace(/^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/, '').trim();
}

async function parseSection(
  file: string,
  section: string,
  direction: 'up' | 'down',
): Promise<{ statements: ParsedStatement[]; error?: string }> {
  if (!hasStatements(section)) return { statements: [] };
  const start = file.indexOf(section);
  try {
    const tree = (await parse(section)) as {
      stmts?: Array<{ stmt: Record<string, unknown>; stmt_location?: number; stmt_len?: number }>;
    };
    const bytes = Buffer.from(section, 'utf8');
    const statements = (tree.stmts ?? []).map(({ stmt, stmt_location = 0, stmt_len }) => {
      const [kind, node] = Object.entries(stmt)[0] as [string, Record<string, unknown>];
      const relations = relationsOf(kind, node);
      const text = statementText(bytes, stmt_location, stmt_len);
      const creates = kind === 'CreateStmt' ? nameOf((node.relation ?? {}) as { relname?: string }) : undefined;
      return { kind, relations, destructive: destructiveOf(kind, node, relations), creates, text };
    });
    return { statements };
  } catch (error) {
    const details = (error as { sqlDetails?: { message: string; cursorPosition: number } }).sqlDetails;
    const message = details?.message ?? (error instanceof Error ? error.message : String(error));
    const where = details ? position(file, start, section, details.cursorPosition) : 'unknown position';
    return { statements: [], error: `the ${direction} migration does not parse: ${message} at ${where}` };
  }
}

/** A down's DROP of tables the up created: the up's reverse, not a destructive change. */
export function reversesCreate(statement: Pick<ParsedStatement, 'kind' | 'relations'>, createdByUp: ReadonlySet<string | undefined>): boolean {
  return statement.kind === 'DropStmt' && statement.relations.every((name) => createdByUp.has(name));
}

export async function reviewStatically(file: string): Promise<StaticReview> {
  const { up, down, hasUp, hasDown } = splitMigration(file);
  const parsedUp = await parseSection(file, up, 'up');
  const parsedDown = await parseSection(file, down, 'down');
  const override = overridePattern.exec(file)?.[1]?.trim() || undefined;
  // A rider written first (`update tenants ...; alter table expenses ...`) must not become the target.
  const named = parsedUp.statements.filter((statement) => statement.relations.length > 0);
  const target = (named.find((statement) => !dataStatements.has(statement.kind)) ?? named[0])?.relations[0];
  const createdByUp = new Set(parsedUp.statements.map((statement) => statement.creates).filter(Boolean));
  const unguardedDrops: string[] = [];
  for (const [direction, statements] of [
    ['up', parsedUp.statements],
    ['down', parsedDown.statements],
  ] as const) {
    for (const statement of statements) {
      if (!statement.destructive) continue;
      // Dropping, in the down, a table the up created is the up's reverse, not a destructive change.
      if ((direction === 'down' && reversesCreate(statement, createdByUp)) || override) continue;
      unguardedDrops.push(`${statement.destructive} (${direction})`);
    }
  }
  const opaque: StaticReview['opaque'] = [];
  for (const [direction, statements] of [
    ['up', parsedUp.statements],
    ['down', parsedDown.statements],
  ] as const) {
    for (const statement of statements) {
      if (statement.kind === 'DoStmt') opaque.push({ direction, statement: statement.text.split('\n')[0] ?? '' });
    }
  }
  const riders: StaticReview['riders'] = [];
  if (target) {
    for (const [direction, statements] of [
      ['up', parsedUp.statements],
      ['down', parsedDown.statements],
    ] as const) {
      for (const statement of statements) {
        for (const relation of statement.relations) {
          if (relation !== target) riders.push({ direction, relation, statement: statement.text.split('\n')[0] ?? '' });
        }
      }
    }
  }
  return {
    hasUp,
    hasDown,
    up: parsedUp.statements,
    down: parsedDown.statements,
    parseError: parsedUp.error ?? parsedDown.error,
    override,
    target,
    unguardedDrops,
    riders,
    opaque,
  };
}
