// runOracle: the seed's whole workflow around one action.
//   snapshot before -> exercise the action -> wait for quiescence -> snapshot after
//   -> normalise both -> diff -> apply the predicates -> verdict
// leaving the eight files of the evidence folder and returning what they say.
import { mkdtemp, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { errorMessage } from '../postgres/pg.js';
import { maskSecrets, parseUrl } from '../postgres/url.js';
import { writeFileAtomic } from '../util/fs.js';
import { onCleanup } from '../util/lifecycle.js';
import { runAction } from './action.js';
import { diff } from './diff.js';
import { createEvidenceFolder, defaultEvidenceRoot, evidencePaths, checkCardId } from './evidence.js';
import { prettyLines } from './json-text.js';
import { normalise } from './normalise.js';
import { describeExpectation, evaluate, expectationColumns, needsSchema, parseExpectation } from './predicates.js';
import { waitForQuiescence } from './quiescence.js';
import { releaseSnapshot, scopeTables, snapshot } from './snapshot.js';
import type {
  ActionResult,
  Expectation,
  ExpectationResult,
  OracleAction,
  OracleEvent,
  OracleResult,
  QuiescenceCondition,
  QuiescenceResult,
  Scope,
  Snapshot,
  SnapshotDiff,
  TableScope,
} from './types.js';
import { decideVerdict, displayPath, renderVerdictMarkdown, summariseTables } from './verdict.js';
import { defaultVolatiles, describeVolatiles, keepColumns } from './volatiles.js';

export interface RunOracleOptions {
  /** The target (its password never reaches a file). */
  url: string;
  /** The card (or drill) the evidence belongs to: names the folder. */
  card: string;
  scope: Scope;
  /** Predicates, as text (`widgets:+1`) or parsed. The tables they name join the scope. */
  expectations: ReadonlyArray<string | Expectation>;
  action: OracleAction;
  /** Evidence root (default `.agent-history/oracle`): the folder is `<dir>/<card>/<timestamp>/`. */
  dir?: string;
  /** Wait for async work after the action, before the after-snapshot. */
  quiescence?: { condition: QuiescenceCondition; timeoutMs: number; intervalMs?: number };
  onEvent?: (event: OracleEvent) => void;
  /** Rows of each kind kept per table for predicates (default 1,000). */
  sampleLimit?: number;
  /** Characters of the diff kept in the result (default 256 KiB; diff.txt always has all of it). */
  diffTextLimit?: number;
  /** The clock for the folder's timestamp (tests). */
  now?: () => Date;
}

/** The scope a run really uses: the expectations' tables added, their asserted columns kept. */
export function effectiveScope(scope: Scope, expectations: readonly Expectation[]): Scope {
  const tables: TableScope[] = scopeTables({ ...scope, tables: [...scope.tables, ...expectations.map((e) => e.table)] });
  let volatiles = scope.volatiles ?? defaultVolatiles();
  for (const expectation of expectations) {
    volatiles = keepColumns(volatiles, expectation.table, expectationColumns(expectation));
  }
  const schemaTables = new Set(expectations.filter(needsSchema).map((expectation) => expectation.table));
  return {
    ...scope,
    volatiles,
    tables: tables.map((table) => (schemaTables.has(table.name) ? { ...table, schema: true } : table)),
  };
}

/**
 * The scope for the after-snapshot: each table keyed as the before-snapshot chose (even if the
 * action changed the keys), so the two line up in the merge.
 */
export function scopeForAfter(scope: Scope, before: Snapshot): Scope {
  return {
    ...scope,
    tables: scopeTables(scope).map((table) => {
      const taken = before.tables.find((entry) => entry.table === table.name);
      if (!taken?.exists) return table;
      return { ...table, key: taken.key.wholeRow ? 'row' : taken.key.columns, keyStrict: false };
    }),
  };
}

export function describeScope(scope: Scope): string {
  const tables = scopeTables(scope);
  const parts = [`${tables.map((table) => table.name).join(', ')} (row counts${tables.some((t) => t.rows !== false) ? ' and rows' : ''})`];
  const schema = tables.filter((table) => scope.schema || table.schema).map((table) => table.name);
  if (schema.length) parts.push(`schema state of ${schema.join(', ')}`);
  for (const table of tables) {
    if (table.filter && Object.keys(table.filter).length) {
      parts.push(`${table.name} filtered by ${Object.entries(table.filter).map(([k, v]) => `${k}=${String(v)}`).join(', ')}`);
    }
  }
  return parts.join('; ');
}

function findings(input: {
  action: ActionResult;
  quiescence: QuiescenceResult | null;
  results: ExpectationResult[];
  before: Snapshot;
  after: Snapshot | null;
  afterError: string | null;
  diff: SnapshotDiff | null;
  folder: string;
  scope: Scope;
}): string[] {
  const out: string[] = [];
  const folder = displayPath(input.folder);
  if (input.action.exitCode !== 0) {
    out.push(
      `The action exited ${input.action.exitCode}${input.action.error ? ` (${input.action.error})` : ''}: it did not run as intended, so the after-snapshot is uninformative. Escalate (\`${path.join(folder, 'action.log')}\`).`,
    );
  }
  if (input.afterError) out.push(`The after-snapshot could not be taken: ${input.afterError}. Escalate.`);
  if (input.quiescence && !input.quiescence.settled) {
    out.push(`Async work did not settle: waited for ${input.quiescence.what}, ${input.quiescence.detail}. Every predicate is could-not-determine.`);
  } else if (input.quiescence) {
    out.push(`Quiescence: ${input.quiescence.what} after ${input.quiescence.waitedMs} ms (${input.quiescence.polls} polls).`);
  }
  if (input.results.length === 0) {
    out.push('No expectation was given: a spec that does not name fields is too vague to verify. could-not-determine; surface the ambiguity to the planner.');
  }
  input.results.forEach((result, index) => {
    if (result.verdict !== 'satisfied') {
      out.push(`Spec ${index + 1} (\`${result.expectation.text}\`) ${result.verdict}: ${result.evidence} (\`${path.join(folder, 'diff.txt')}\`).`);
    }
  });
  const asserted = new Set(input.results.map((result) => result.expectation.table));
  for (const table of input.diff?.tables ?? []) {
    const changes = table.addedCount + table.removedCount + table.changedCount;
    if (!asserted.has(table.table) && (changes > 0 || (table.delta ?? 0) !== 0 || (table.schema?.length ?? 0) > 0)) {
      out.push(
        `${table.table} changed (${table.addedCount} added, ${table.removedCount} removed, ${table.changedCount} changed) but no expectation covers it.`,
      );
    }
    if (table.keyMismatch) out.push(`${table.table}: its natural key changed between the snapshots, so rows were compared as wholes.`);
    if (table.truncated) out.push(`${table.table}: more changes than were kept in memory; diff.txt has them all.`);
  }
  for (const table of input.before.tables) {
    const later = input.after?.tables.find((entry) => entry.table === table.table);
    if (!table.exists && !later?.exists) out.push(`Table ${table.table} does not exist (before or after the action).`);
    if (table.streamed || later?.streamed) {
      out.push(`${table.table}: ${Math.max(table.count ?? 0, later?.count ?? 0)} rows, streamed to disk and diffed by a sorted merge.`);
    }
    if (table.rlsFiltered) out.push(`${table.table}: row-level security hides rows from the role that read it; counts may be partial.`);
    if (table.exists && table.key.wholeRow) {
      out.push(`${table.table} has no usable key (primary key volatile or absent): rows are matched as whole rows, so a changed row shows as removed + added.`);
    }
  }
  out.push(`Volatile fields ignored before diffing (the spec is silent on them): ${describeVolatiles(input.scope.volatiles ?? defaultVolatiles())}.`);
  return out;
}

/** `dir` and those of its parents that do not exist yet, innermost first. */
async function missingDirectories(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let at = dir; ; at = path.dirname(at)) {
    const exists = await stat(at).then(
      () => true,
      () => false,
    );
    if (exists || path.dirname(at) === at) return missing;
    missing.push(at);
  }
}

/** Removes each directory in turn while it is empty (files the snapshot left are its own temporaries). */
async function removeEmpty(dirs: string[]): Promise<void> {
  const [folder, ...rest] = dirs;
  if (folder) await rm(folder, { recursive: true, force: true });
  for (const dir of rest) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
  }
}

export async function runOracle(options: RunOracleOptions): Promise<OracleResult> {
  checkCardId(options.card);
  const expectations = options.expectations.map((entry) => (typeof entry === 'string' ? parseExpectation(entry) : entry));
  const scope = effectiveScope(options.scope, expectations);
  const password = parseUrl(options.url).password;
  const secrets = password ? [password, encodeURIComponent(password)] : [];
  const emit = (event: OracleEvent) => options.onEvent?.(event);
  const workDir = await mkdtemp(path.join(tmpdir(), 'sor-oracle-'));
  // Streamed rows live here until the run ends, also when it ends by Ctrl-C.
  const forget = onCleanup('oracle work directory', () => rm(workDir, { recursive: true, force: true }));
  let before: Snapshot | undefined;
  let after: Snapshot | null = null;
  try {
    // The folder first: the before-snapshot writes its two files as its rows stream in. A snapshot
    // that fails leaves no folder behind (nor the directories made for it), as if never begun.
    const root = options.dir ?? defaultEvidenceRoot;
    const made = await missingDirectories(path.resolve(root, options.card));
    const folder = await createEvidenceFolder(root, options.card, options.now?.() ?? new Date());
    const files = evidencePaths(folder);
    try {
      before = await snapshot(options.url, scope, {
        workDir,
        onTable: (table) => emit({ type: 'snapshot', phase: 'before', table: table.table, count: table.count, streamed: table.streamed }),
        files: { raw: files['before.json'], normalised: files['before.normalised.json'] },
      });
    } catch (error) {
      await removeEmpty([folder, ...made]);
      throw error;
    }
    const normalisedBefore = normalise(before);

    emit({ type: 'action-start', label: 'run' in options.action ? options.action.label : options.action.command });
    const action = await runAction(options.action, folder, secrets);
    emit({ type: 'action-exit', exitCode: action.exitCode, durationMs: action.durationMs });

    let quiescence: QuiescenceResult | null = null;
    if (options.quiescence && action.exitCode === 0) {
      quiescence = await waitForQuiescence(options.quiescence.condition, {
        timeoutMs: options.quiescence.timeoutMs,
        intervalMs: options.quiescence.intervalMs,
      });
      emit({ type: 'quiescence', result: quiescence });
    }

    let afterError: string | null = null;
    let snapshotDiff: SnapshotDiff | null = null;
    try {
      after = await snapshot(options.url, scopeForAfter(scope, before), {
        workDir,
        onTable: (table) => emit({ type: 'snapshot', phase: 'after', table: table.table, count: table.count, streamed: table.streamed }),
        files: {
          raw: files['after.json'],
          normalised: files['after.normalised.json'],
          counts: Object.fromEntries(before.tables.map((table) => [table.table, table.count])),
        },
      });
      const normalisedAfter = normalise(after);
      snapshotDiff = await diff(normalisedBefore, normalisedAfter, {
        file: files['diff.txt'],
        sampleLimit: options.sampleLimit,
        textLimit: options.diffTextLimit,
      });
      emit({ type: 'diff', linesAdded: snapshotDiff.linesAdded, linesRemoved: snapshotDiff.linesRemoved });
    } catch (error) {
      afterError = maskSecrets(errorMessage(error), secrets);
      const stub = `${prettyLines({ error: afterError }, '').join('\n')}\n`;
      await writeFileAtomic(files['after.json'], stub);
      await writeFileAtomic(files['after.normalised.json'], stub);
      await writeFileAtomic(files['diff.txt'], '');
    }

    let results: ExpectationResult[] = [];
    if (snapshotDiff && after) {
      results = evaluate(expectations, { diff: snapshotDiff, before, after });
    } else {
      results = expectations.map((expectation) => ({
        expectation,
        predicate: describeExpectation(expectation),
        verdict: 'could-not-determine' as const,
        evidence: `no after-snapshot: ${afterError}`,
      }));
    }
    if (action.exitCode !== 0) {
      results = results.map((result) => ({
        ...result,
        verdict: 'could-not-determine' as const,
        evidence: `the action exited ${action.exitCode}, so the after-snapshot is uninformative (the diff says: ${result.verdict}, ${result.evidence})`,
      }));
    } else if (quiescence && !quiescence.settled) {
      results = results.map((result) => ({
        ...result,
        verdict: 'could-not-determine' as const,
        evidence: `async work did not settle (${quiescence!.detail}); the diff says: ${result.verdict}, ${result.evidence}`,
      }));
    }

    const verdict = decideVerdict({ action, quiescence, results, afterError });
    const tables = summariseTables(before, after, snapshotDiff?.tables ?? [], results);
    const notes = findings({ action, quiescence, results, before, after, afterError, diff: snapshotDiff, folder, scope });
    await writeFileAtomic(
      files['verdict.md'],
      renderVerdictMarkdown({
        verdict,
        card: options.card,
        folder,
        before,
        scopeText: describeScope(scope),
        action,
        tables,
        results,
        findings: notes,
      }),
    );
    emit({ type: 'verdict', verdict, folder });
    return {
      verdict,
      card: options.card,
      folder,
      files,
      action,
      quiescence,
      expectations: results,
      tables,
      findings: notes,
      diffText: snapshotDiff?.text ?? '',
      diff: snapshotDiff,
    };
  } finally {
    if (before) await releaseSnapshot(before);
    if (after) await releaseSnapshot(after);
    await rm(workDir, { recursive: true, force: true });
    forget();
  }
}
