// Every drill's before/after evidence goes through the oracle: snapshot the
// drill's tables on a fresh connection, act, snapshot again, normalise, diff,
// and write the seed's evidence folder under .agent-history/oracle/<bundle-key>/.
// The oracle's per-expectation verdicts become the drill's observations.
import {
  defaultVolatiles,
  extendVolatiles,
  isVolatileColumn,
  runOracle,
  type OracleResult,
  type QuiescenceCondition,
  type Scope,
  type TableScope,
} from '../oracle/index.js';
import type { ProfileTable } from '../postgres/profile/index.js';
import type { DrillContext } from './types.js';

export interface EvidenceSpec {
  /** What the action is, for action.log and the verdict file. */
  label: string;
  tables: Array<string | TableScope>;
  schema?: boolean;
  /** Oracle expectations, e.g. `expenses:+1`; each becomes an observation. */
  expect: string[];
  /** Extra volatile columns for this drill (`col`, `table.col`), or `!col` to keep one the default set drops. */
  volatiles?: string[];
  /** Snapshot a different database than the target (the migration branch). */
  url?: string;
  quiescence?: { condition: QuiescenceCondition; timeoutMs: number };
}

/**
 * Runs `act` inside the oracle's workflow. `act` returns the action's exit code
 * (0 when the drill's action did what it set out to do); a thrown error is
 * recorded as exit code 1 and rethrown after the evidence is written.
 */
export async function withEvidence(
  ctx: DrillContext,
  spec: EvidenceSpec,
  act: (log: (text: string) => void) => Promise<number | void>,
): Promise<OracleResult> {
  let thrown: unknown;
  const scope: Scope = {
    tables: spec.tables,
    schema: spec.schema,
  };
  if (spec.volatiles) scope.volatiles = extendVolatiles(defaultVolatiles(), spec.volatiles);
  const result = await runOracle({
    url: spec.url ?? ctx.url,
    card: ctx.key,
    scope,
    expectations: spec.expect,
    dir: ctx.options.evidenceRoot,
    quiescence: spec.quiescence,
    action: {
      label: spec.label,
      primary: 'library-qa',
      run: async (log) => {
        try {
          const code = await act(log);
          return code ?? 0;
        } catch (error) {
          thrown = error;
          log(`error: ${error instanceof Error ? error.message : String(error)}`);
          return 1;
        }
      },
    },
  });
  ctx.evidenceDirs.push(result.folder);
  ctx.emit({ type: 'diff', key: ctx.key, text: result.diffText, folder: result.folder });
  for (const expectation of result.expectations) {
    // Satisfied is as the habit needs, unsatisfied against it; what the oracle could not tell is neither.
    const ok = expectation.verdict === 'satisfied' ? true : expectation.verdict === 'unsatisfied' ? false : undefined;
    ctx.observe(`oracle ${expectation.predicate}`, `${expectation.verdict}: ${expectation.evidence}`, ok);
  }
  if (thrown) throw thrown;
  return result;
}

/** Whether a key column's type holds text (T-101, O-405, R-44), not a number or a uuid the database makes up. */
export function isTextType(type: string): boolean {
  return type === 'text' || /^(character varying|varchar|character|char|citext)\b/.test(type);
}

/**
 * The `!table.key` volatile entries that keep natural keys in a drill's diff: each part's
 * key, when its values are text (the ids the lesson talks about: T-101, O-405, R-44) and
 * the default volatile set would drop it (a column named `id`). A surrogate key (an
 * identity or serial number, a uuid) stays volatile, so a diff does not depend on it.
 * The names and types are the profile's, so this holds on another schema too.
 */
export function naturalKeys(ctx: DrillContext, parts: readonly ProfileTable[]): string[] {
  const defaults = defaultVolatiles();
  return parts.flatMap((part) => {
    const { tableName, key } = ctx.profile.names[part];
    return isTextType(ctx.profile.keys[part].type) && isVolatileColumn(defaults, tableName, key.name) ? [`!${tableName}.${key.name}`] : [];
  });
}

/** True when every expectation of the oracle run was satisfied. */
export function oracleSatisfied(result: OracleResult): boolean {
  return result.expectations.length > 0 && result.expectations.every((expectation) => expectation.verdict === 'satisfied');
}
