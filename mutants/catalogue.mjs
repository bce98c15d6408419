// The mutation catalogue of `npm run mutants` (mutants/run.mjs). Each entry is one
// change a careless edit (or a drill written to look green) could make, the text it
// replaces (which must occur exactly once in the file), and the test files that must
// notice it. A catch counts only when a test fails on a verdict, a row, a count or an
// exit code, not only on a message's wording.
//
// Entries come in three groups: the ten mutations made by hand for issue 10 and the
// four that survived them, one per drill for what that drill must notice, and the
// layers around the drills (the runner, the bundle, the oracle, the console, the CLI).

const sqlDrills = 'test/integration/drills-sql.test.ts';
const appendOnlyCodes = 'test/integration/drill-sql-append-only-sqlstates.test.ts';
const readerRoles = 'test/integration/drill-sql-rls-reader-roles.test.ts';
const riders = 'test/integration/migration-review-riders.test.ts';
const migrationStatic = 'test/unit/migration-static.test.ts';
const processDrills = 'test/integration/drills-processes.test.ts';
const outboxDrill = 'test/integration/drill-outbox.test.ts';
const boundaryDrill = 'test/integration/drill-boundary.test.ts';
const forensicsDrill = 'test/integration/drill-forensics.test.ts';
const relay = 'test/integration/reconciler-relay.test.ts';
const worker = 'test/integration/reconciler-worker.test.ts';
const tools = 'test/integration/reconciler-tools.test.ts';
const runCli = 'test/integration/run-cli.test.ts';
const bundle = 'test/unit/bundle.test.ts';
const oracle = 'test/integration/oracle.test.ts';
const predicates = 'test/unit/oracle-predicates.test.ts';
const flow = 'test/tui/flow.test.tsx';
const logic = 'test/tui/logic.test.ts';
const fleet = 'test/integration/fleet.test.ts';

export const catalogue = [
  {
    id: 'fleet-history-never-sees-two-holders',
    file: 'src/drills/fleet/history.ts',
    find: 'a.worker < b.worker and a.locked_at < b.ended and b.locked_at < a.ended',
    replace: 'a.worker < b.worker and false',
    tests: [fleet],
    why: 'the fleet drill: a claim that takes no row lock must be caught, naming the transactions two Workers held at once',
  },
  {
    id: 'fleet-history-counts-a-lost-transaction-as-processed',
    file: 'src/drills/fleet/history.ts',
    find: "row.status !== 'processed' || row.expenses === 0 || row.outbox === 0",
    replace: 'false',
    tests: [fleet],
    why: 'the fleet drill: a transaction never processed must count as lost',
  },
  // ---------------------------------------------------------------- issue 10's own list
  {
    id: 'append-only-any-sqlstate-is-a-refusal',
    file: 'src/drills/append-only-event-test.ts',
    find: "  if (attempt.code) return 'other';",
    replace: "  if (attempt.code) return 'grant';",
    tests: [appendOnlyCodes, sqlDrills],
    why: 'a lock timeout or a serialization failure would count as the grant refusing the UPDATE',
  },
  {
    id: 'append-only-no-lock-timeout',
    file: 'src/drills/append-only-event-test.ts',
    find: "  const limit = [`set local lock_timeout = '${lockTimeout}'`];",
    replace: '  const limit: string[] = [];',
    tests: [appendOnlyCodes],
    why: 'a lock held by another session would hang the drill instead of ending could-not-determine',
  },
  {
    id: 'rls-no-superuser-check',
    file: 'src/drills/rls-identity-flip-test.ts',
    find: '  if (state.readerSuperuser) reasons.push(`${reader} is a superuser`);',
    replace: '',
    tests: [readerRoles, sqlDrills],
    why: 'a superuser reader bypasses every policy; on data where nothing leaks only this check stands',
  },
  {
    id: 'rls-no-bypassrls-check',
    file: 'src/drills/rls-identity-flip-test.ts',
    find: '  if (state.readerBypassrls) reasons.push(`${reader} has BYPASSRLS`);',
    replace: '',
    tests: [readerRoles],
    why: 'a BYPASSRLS reader skips the policies',
  },
  {
    id: 'rls-no-owner-without-force-check',
    file: 'src/drills/rls-identity-flip-test.ts',
    find: '    if (state.readerIsOwner) reasons.push(`${reader} owns ${table} and RLS is not forced`);',
    replace: '    if (false) reasons.push(`${reader} owns ${table} and RLS is not forced`);',
    tests: [readerRoles],
    why: 'the owner of a table without FORCE ROW LEVEL SECURITY is not subject to its policies',
  },
  {
    id: 'rls-owner-by-relowner-only',
    file: 'src/drills/rls-identity-flip-test.ts',
    find: '        state.readerHasOwnerPrivileges = info.owner_privileges;',
    replace: '        state.readerHasOwnerPrivileges = false;',
    tests: [readerRoles],
    why: 'a member of the owning role counts as the owner (pg_has_role), not only relowner',
  },
  {
    id: 'migration-no-rider-check',
    file: 'src/drills/migration-review.ts',
    find: '        if (result.riders.length > 0) {',
    replace: '        if (false) {',
    tests: [riders, sqlDrills],
    why: 'a DML-only rider (UPDATE tenants ...) changes no catalog: only the static check sees it',
  },
  {
    id: 'migration-slices-the-js-string',
    file: 'src/drills/migration-static.ts',
    find: "  const text = bytes.subarray(location, length ? location + length : undefined).toString('utf8');",
    replace:
      "  const text = bytes.toString('utf8').slice(location, length ? location + length : undefined);",
    tests: [migrationStatic],
    why: 'libpg-query gives UTF-8 byte offsets: a comment with é before a statement shifts every slice',
  },
  {
    id: 'relay-claim-without-skip-locked',
    file: 'src/reconciler/relay.ts',
    find: '        for update skip locked`,',
    replace: '        for update`,',
    tests: [relay],
    why: 'two relays at once would both send the same row (or wait for each other)',
  },
  {
    id: 'append-only-trigger-when-ignored',
    file: 'src/drills/append-only-event-test.ts',
    find: "  if (trigger.hasWhen) why.push('has a WHEN condition');",
    replace: '',
    tests: ['test/integration/drill-sql-append-only-catalog.test.ts'],
    why: 'a trigger with a WHEN condition (on current_user, on the seed run) lets other changes through',
  },
  {
    id: 'append-only-column-grant-ignored',
    file: 'src/drills/append-only-event-test.ts',
    find: '  if (!privileges.update && privileges.anyColumnUpdate) {',
    replace: '  if (false) {',
    tests: ['test/integration/drill-sql-append-only-catalog.test.ts'],
    why: 'a column grant of UPDATE lets the Worker rewrite events though the table grant is absent',
  },
  {
    id: 'rls-worker-flip-skipped',
    file: 'src/drills/rls-identity-flip-test.ts',
    find: "        state.workerReadsExpenses = worker[0]?.reads === true;",
    replace: '        state.workerReadsExpenses = false;',
    tests: ['test/integration/drill-sql-rls-more.test.ts'],
    why: 'a permissive policy for the Worker role leaks every tenant to the tool server',
  },

  // ---------------------------------------------------------------- one per drill: what it must notice
  {
    id: 'migration-drop-guard-off',
    file: 'src/drills/migration-review.ts',
    find: '        if (result.unguardedDrops.length > 0) {',
    replace: '        if (false) {',
    tests: [sqlDrills, migrationStatic],
    why: 'migration_review: a DROP TABLE without the override must fail the review',
  },
  {
    id: 'journal-worker-repeats-completed-calls',
    file: 'src/reconciler/worker-run.ts',
    find: '    const reused = recorded.get(callKey(turn, call));',
    replace: '    const reused = recorded.get(callKey(-1, -1));',
    tests: [processDrills, worker],
    why: "run_journal_resume_drill: a resumed Worker that runs its crashed turn's completed calls again",
  },
  {
    id: 'idempotency-verdict-ignores-the-count',
    file: 'src/drills/idempotency-retry-test.ts',
    find: '    if (landed !== 1 || inserted(first) !== true || inserted(second) !== false) {',
    replace: '    if (false) {',
    tests: [processDrills],
    why: 'idempotency_retry_test: two rows for one key must fail',
  },
  {
    id: 'idempotency-write-without-on-conflict',
    file: 'src/reconciler/actions.ts',
    find: 'const onConflict = breaks.noIdempotencyKey ? empty : sql` on conflict (${join(e.conflict)}) do nothing`;',
    replace: 'const onConflict = empty;',
    tests: [processDrills, tools],
    why: 'idempotency_retry_test: the retried write must be a no-op, not a duplicate-key error',
  },
  {
    id: 'claim-without-skip-locked',
    file: 'src/reconciler/actions.ts',
    find: "         ${raw(options.noLock ? '' : options.skipLocked ? 'for update skip locked' : 'for update')}`,",
    replace: "         ${raw(options.noLock ? '' : 'for update')}`,",
    tests: [processDrills, worker],
    why: 'concurrency_claim_test: B must take the next row while A holds the first',
  },
  {
    id: 'relay-sends-without-the-key',
    file: 'src/reconciler/relay.ts',
    find: "  if (withKey) headers['idempotency-key'] = row.dedup_key;",
    replace: '  void withKey;',
    tests: [outboxDrill, relay],
    why: 'outbox_relay_retry_test: a re-send after a crash must not be a second delivery',
  },
  {
    id: 'boundary-tool-list-not-checked',
    file: 'src/drills/mcp-boundary-test/verdict.ts',
    find: '  if (!surface.exact) failures.push(describeSurface(surface, tools));',
    replace: '',
    tests: [boundaryDrill],
    why: 'mcp_boundary_test: a tool beyond claim, write, queue, read must fail the boundary',
  },
  {
    id: 'boundary-env-not-checked',
    file: 'src/drills/mcp-boundary-test/verdict.ts',
    find: '  else if (env.credentials.length > 0 || env.urlValued.length > 0) {',
    replace: '  else if (env.credentials.length < 0 && env.urlValued.length < 0) {',
    tests: [boundaryDrill],
    why: "mcp_boundary_test: a credential in the Worker's environment must fail the boundary",
  },
  {
    id: 'forensics-events-never-written',
    file: 'src/reconciler/journal.ts',
    find: '  if (!events.enabled) return;',
    replace: '  return;',
    tests: [forensicsDrill],
    why: 'forensics_drill: a run with no agent_events cannot be rebuilt',
  },
  {
    id: 'rls-unset-context-not-checked',
    file: 'src/drills/rls-identity-flip-test.ts',
    find: '    else if (own === null && read.total > 0) {',
    replace: '    else if (own === null && read.total < 0) {',
    tests: [sqlDrills],
    why: 'rls_identity_flip_test: an unset (or pattern) tenant context that sees rows must fail',
  },
  {
    id: 'relay-claim-without-tenant-scope',
    file: 'src/reconciler/relay.ts',
    find: 'and ${o.tenant} = ${settings.tenant}',
    replace: 'and ${settings.tenant}::text is not null',
    tests: [outboxDrill, relay],
    why: "no harm: the drill's relay must never send or mark dispatched the target's own pending emails",
  },
  {
    id: 'worker-login-rotates-on-any-target',
    file: 'src/drills/session.ts',
    find: "ownCluster: options.target.kind === 'embedded'",
    replace: 'ownCluster: true',
    tests: ['test/integration/no-harm.test.ts'],
    why: "no harm: on a server the console did not create, the worker role's password is never changed",
  },
  {
    id: 'missing-name-is-a-fail',
    file: 'src/drills/runner.ts',
    find: "    return { verdict: 'could-not-determine', reason: `could not determine: ${describeMissing(missing)}` };",
    replace: "    return { verdict: 'fail', reason: describeMissing(missing) };",
    tests: ['test/integration/unmapped-schema.test.ts'],
    why: 'a schema the drills cannot map is could-not-determine, never a habit missing',
  },

  // ---------------------------------------------------------------- the layers around the drills
  {
    id: 'bundle-permitted-with-a-failure',
    file: 'src/drills/bundle.ts',
    find: "  return bundleKeys.every((key) => results.find((result) => result.key === key)?.verdict === 'pass')",
    replace: "  return bundleKeys.some((key) => results.find((result) => result.key === key)?.verdict === 'pass')",
    tests: [bundle],
    why: 'the release decision must be PERMITTED only when all nine pass',
  },
  {
    id: 'bundle-could-not-determine-is-pass',
    file: 'src/drills/bundle.ts',
    find: "  if (result.verdict === 'pass') return 'pass';",
    replace: "  if (result.verdict !== 'fail') return 'pass';",
    tests: [bundle],
    why: 'could-not-determine counts as fail in the bundle',
  },
  {
    id: 'oracle-count-delta-ignored',
    file: 'src/oracle/predicates.ts',
    find: "        table.delta === expectation.delta ? 'satisfied' : 'unsatisfied',",
    replace: "        table.delta !== 0 ? 'satisfied' : 'unsatisfied',",
    tests: [predicates, oracle],
    why: 'an expectation of +1 must not be satisfied by +2',
  },
  {
    id: 'worker-env-inherits-everything',
    file: 'src/reconciler/env.ts',
    find: '  source: NodeJS.ProcessEnv = process.env,\n): Record<string, string> {\n  const env: Record<string, string> = {};',
    replace:
      '  source: NodeJS.ProcessEnv = process.env,\n): Record<string, string> {\n  const env: Record<string, string> = { ...(source as Record<string, string>) };',
    tests: ['test/unit/reconciler-plan.test.ts', boundaryDrill],
    why: "the Worker's environment is built from an allow-list; inheriting the console's leaks DATABASE_URL",
  },
  {
    id: 'console-kill-key-does-nothing',
    file: 'src/drills/processes.ts',
    find: '      await get().kill(name, signal);',
    replace: '      void name;',
    tests: [flow],
    why: 'the kill key must reach a real process (its pid gone, its state killed)',
  },
  {
    id: 'run-exit-code-ignores-the-decision',
    file: 'src/cli/run-command.ts',
    find: "    let code: number = decision === 'PERMITTED' ? exitCodes.ok : exitCodes.blocked;",
    replace: '    let code: number = exitCodes.ok;',
    tests: [runCli],
    why: 'a BLOCKED run must exit 1, a PERMITTED one 0',
  },
];
