// The fleet's answer: its figures as JSON (the fields the issue names first) and
// a short markdown report that answers the capstone's third prompt from them.
// Every sentence that claims something cites a figure of this run.
import type { FleetRun } from './run.js';

export interface BaselineFigures {
  tps: number;
  transactions: number;
  clients: number;
  command: string;
  pgbench: string;
}

export interface PoolingCheckFigure {
  name: string;
  what: string;
  naive: { ok: boolean; detail: string };
  toolServerWay: { ok: boolean; detail: string };
}

export interface FleetOutcome {
  main: FleetRun;
  /** The same load with plain FOR UPDATE claims (--no-skip-locked). */
  forUpdate?: FleetRun;
  baseline?: BaselineFigures | { unavailable: string };
  pooled?: FleetRun | { unavailable: string };
  poolingChecks?: PoolingCheckFigure[];
  target: string;
  when: Date;
  command: string;
}

export interface FleetSummary {
  workers: number;
  transactions: number;
  processed: number;
  duplicates: number;
  lost: number;
  lock_errors: number;
  throughput_tps: number;
  p50_ms: number;
  p99_ms: number;
  backends_peak: number;
}

const round = (value: number, places = 1) => Math.round(value * 10 ** places) / 10 ** places;

export function summary(run: FleetRun): FleetSummary {
  return {
    workers: run.options.workers,
    transactions: run.history.transactions,
    processed: run.history.processed,
    duplicates: run.history.duplicates,
    lost: run.history.lost,
    lock_errors: run.history.lock_errors,
    throughput_tps: round(run.journal.window_s > 0 ? run.history.processed / run.journal.window_s : 0),
    p50_ms: round(run.journal.p50_ms),
    p99_ms: round(run.journal.p99_ms),
    backends_peak: run.activity.backends_peak,
  };
}

/** Whether the run passed: its history check, no host failed, no stall. */
export function passed(run: FleetRun): boolean {
  return run.history.ok && run.hostFailures.length === 0 && !run.stalled;
}

function details(run: FleetRun) {
  return {
    tag: run.plan.tag,
    ok: passed(run),
    seed: run.options.seed,
    hosts: run.options.hosts,
    tool_servers: run.options.toolServers,
    pool_size: run.options.poolSize,
    claims: run.options.claimWithoutLock ? 'no lock (broken)' : run.options.skipLocked ? 'FOR UPDATE SKIP LOCKED' : 'FOR UPDATE',
    kills: run.kills,
    elapsed_s: round(run.elapsed_s, 2),
    window_s: round(run.journal.window_s, 2),
    claim_max_ms: round(run.journal.claim_max_ms),
    write_p50_ms: round(run.journal.write_p50_ms),
    queue_p50_ms: round(run.journal.queue_p50_ms),
    cpu_busy_share: run.cpu_busy_share === undefined ? null : round(run.cpu_busy_share, 3),
    cores: run.cores,
    runs: run.history.runs,
    calls: run.history.calls,
    reclaimed: run.history.reclaimed,
    events: run.journal.events,
    events_per_s: round(run.journal.events_per_s),
    activity_visible: run.activity.visible,
    lock_waits_peak: run.activity.visible ? run.activity.lock_waits_peak : null,
    lock_wait_share: run.activity.visible ? round(run.activity.lock_wait_share, 3) : null,
    advisory_waits_peak: run.activity.advisory_waits_peak,
    pool_saturated_share: round(run.activity.saturated_share, 3),
    samples: run.activity.samples,
    max_connections: run.tables.max_connections,
    table_bytes: run.tables.sizes,
    claim_index_bytes: run.tables.claim_index_bytes,
    claim_plan: run.claim,
    pending_dead_rows: run.tables.pending_dead_rows,
    violations: run.history.violations,
    host_failures: run.hostFailures,
    stalled: run.stalled ?? null,
  };
}

/** The --json object: the issue's fields first, then what backs them. */
export function fleetJson(outcome: FleetOutcome): Record<string, unknown> {
  const json: Record<string, unknown> = { ...summary(outcome.main) };
  if (outcome.baseline) json.baseline_tps = 'tps' in outcome.baseline ? round(outcome.baseline.tps) : null;
  json.ok = fleetPassed(outcome);
  json.details = details(outcome.main);
  if (outcome.forUpdate) json.no_skip_locked = { ...summary(outcome.forUpdate), details: details(outcome.forUpdate) };
  if (outcome.baseline) json.baseline = outcome.baseline;
  if (outcome.pooled) json.pooler = 'unavailable' in outcome.pooled ? outcome.pooled : { ...summary(outcome.pooled), details: details(outcome.pooled) };
  if (outcome.poolingChecks) json.pooling_checks = outcome.poolingChecks;
  return json;
}

/**
 * Whether the fleet drill passed: the main run's history holds. The side runs are compared,
 * not judged, except that a pooled run must hold its history too (the pooler must not break it).
 */
export function fleetPassed(outcome: FleetOutcome): boolean {
  const pooledOk = !outcome.pooled || 'unavailable' in outcome.pooled || passed(outcome.pooled);
  const checksOk = !outcome.poolingChecks || outcome.poolingChecks.every((check) => check.toolServerWay.ok);
  return passed(outcome.main) && pooledOk && checksOk;
}

const kb = (bytes: number | undefined) => (bytes === undefined ? '?' : bytes >= 1_048_576 ? `${round(bytes / 1_048_576)} MB` : `${round(bytes / 1024)} kB`);
const pct = (share: number) => `${round(share * 100)}%`;

/** The lock waits seen, or why they could not be seen. */
function waits(run: FleetRun): string {
  const a = run.activity;
  return a.visible ? `peak ${a.lock_waits_peak}, in ${pct(a.lock_wait_share)} of ${a.samples} samples` : 'not visible to this login (needs pg_read_all_stats)';
}

function historyLines(run: FleetRun): string[] {
  const h = run.history;
  const lines = [
    `- ${h.processed} of ${h.transactions} transactions processed; ${h.duplicates} duplicated; ${h.lost} lost; ${h.lock_errors} lock errors (55P03 / 40P01 / 40001 / deadlocks).`,
    `- ${h.runs} runs, ${h.calls} journaled calls, ${h.events} agent_events rows; ${h.reclaimed} transactions reclaimed after a lease ran out.`,
  ];
  if (run.kills.length > 0) {
    lines.push(
      `- ${run.kills.length} Worker hosts SIGKILLed mid-run and started again: ${run.kills.map((kill) => `${kill.host} (pid ${kill.pid ?? '?'}) at ${kill.processed} processed`).join('; ')}.`,
    );
  }
  for (const violation of h.violations) {
    lines.push(`- **VIOLATION** ${violation.what}: ${violation.count}${violation.rows.length > 0 ? `, e.g. ${violation.rows.join('; ')}` : ''}`);
  }
  for (const failure of run.hostFailures) lines.push(`- **Worker host failed**: ${failure}`);
  if (run.stalled) lines.push(`- **Stalled**: ${run.stalled}`);
  return lines;
}

function figureRows(label: string, run: FleetRun): string {
  const s = summary(run);
  return `| ${label} | ${s.throughput_tps} | ${s.p50_ms} | ${s.p99_ms} | ${waits(run)} | ${s.backends_peak} | ${round(run.journal.events_per_s)} | ${s.duplicates} / ${s.lost} / ${s.lock_errors} |`;
}

/** Which of the nine drills' guarantees held at this scale, each with the figure that says so. */
function guarantees(run: FleetRun): string[] {
  const h = run.history;
  const has = (words: string) => h.violations.some((violation) => violation.what.includes(words));
  const held = (ok: boolean) => (ok ? 'held' : '**did not hold**');
  const boundary = 'unreadable' in run.boundary ? `could not be read (${run.boundary.unreadable})` : `${run.boundary.credentials.length + run.boundary.urlValued.length} database credentials in Worker host pid ${run.boundary.pid}'s environment (read from /proc)`;
  return [
    `- Run journal crash/resume: ${held(!has('run not finished') && !has('made again'))}. ${run.kills.length} hosts killed (${run.kills.length * Math.ceil(run.options.workers / run.options.hosts)} Workers at most) resumed from the journal: ${h.violations.find((v) => v.what.includes('run not finished'))?.count ?? 0} runs left unfinished, ${h.violations.find((v) => v.what.includes('made again'))?.count ?? 0} completed calls made again.`,
    `- Idempotent retry: ${held(!has('more than one expense') && !has('more than one outbox'))}. ${h.duplicates} transactions with a second expense, outbox row or processing write.`,
    `- SKIP LOCKED claims: ${held(!has('held by two') && h.lock_errors === 0)}. ${h.violations.find((v) => v.what.includes('held by two'))?.count ?? 0} transactions held by two Workers at once; ${h.lock_errors} lock errors; lock waits: ${waits(run)}.`,
    `- Outbox: ${held(!has('outbox'))}. One outbox row per expense for all ${h.processed} processed transactions; the relay is not part of the fleet, so the ${h.processed} rows queued wait for it (the outbox drill measures dispatch).`,
    `- Append-only events: ${held(!has('agent_events'))}. ${h.events} agent_events rows, one tool_called per completed call, ${round(run.journal.events_per_s)} rows/s.`,
    `- Row-level security tenant flip: ${held(!has('another tenant'))}. ${h.violations.find((v) => v.what.includes('another tenant'))?.count ?? 0} expenses under another tenant than their transaction's, over ${run.options.tenants} tenants.`,
    `- MCP tool boundary: ${'unreadable' in run.boundary ? 'could not be determined' : held(run.boundary.credentials.length + run.boundary.urlValued.length === 0)}: ${boundary}; every write went through ${run.options.toolServers} tool servers.`,
    `- Migration review and forensics: not exercised by the fleet (no migration runs; the journal above is what forensics would read: every processed transaction has its write call, run and Worker).`,
  ];
}

/** The share above which a resource counts as strained: waited on in a fifth of the samples, or twice as slow. */
const strainedShare = 0.2;
const slowerBy = 2;

/**
 * What strained first, each resource with its figures, then the first one whose figure
 * crosses its line, in this order: the claim's row locks (a fifth of the samples with a lock
 * wait), the claim's row search (its p50 twice the write's), connections (every pooled
 * connection busy in a fifth of the samples), the machine's CPU (busy 90% of the run).
 */
function strain(run: FleetRun): string[] {
  const a = run.activity;
  if (!a.visible) {
    return [
      'Could not be determined: the login the fleet samples with is neither superuser nor a member of pg_read_all_stats, ' +
        "so pg_stat_activity hides the tool servers' wait events. Run it with such a login (or `grant pg_read_all_stats to <login>`) to rank what strained.",
    ];
  }
  const j = run.journal;
  const backends = run.options.toolServers * run.options.poolSize;
  const sizes = run.tables.sizes;
  const total = Object.values(sizes).reduce((sum, bytes) => sum + bytes, 0);
  const events = sizes.agent_events ?? 0;
  const claimRatio = j.write_p50_ms > 0 ? j.p50_ms / j.write_p50_ms : 0;
  const cpu = run.cpu_busy_share;
  const search = run.claim;
  const lines = [
    `- The claim's row locks: a backend waiting on a lock in ${pct(a.lock_wait_share)} of ${a.samples} pg_stat_activity samples (every 100 ms; peak ${a.lock_waits_peak}, ${a.advisory_waits_peak} on the Worker lock).`,
    `- The claim's row search: claim p50 ${round(j.p50_ms)} ms, p99 ${round(j.p99_ms)} ms, against the write's p50 ${round(j.write_p50_ms)} ms and the queue's ${round(j.queue_p50_ms)} ms (${round(claimRatio, 1)}x the write). ` +
      `After the run (EXPLAIN ANALYZE of the claim's SELECT for ${run.plan.tenants[0]}): ${search.scan}, ${search.rows_removed} rows read and thrown away, ${round(search.execution_ms, 2)} ms` +
      (search.rows_removed > 0
        ? ". The (status, id) index cannot serve the claim's `status = 'pending' or (status = 'claimed' and locked_until < now)` filter with its tenant: each claim walks the rows before its own, so claim time grows with the table."
        : '.'),
    `- Connections: all ${backends} pooled connections busy (in a statement or a transaction) in ${pct(a.saturated_share)} of samples; ${run.options.workers} Workers share them (${round(run.options.workers / backends)} per connection); peak ${a.backends_peak} backends of max_connections ${run.tables.max_connections}.`,
    `- CPU: ${cpu === undefined ? 'not measured here (no /proc/stat)' : `this machine's ${run.cores} cores busy ${pct(cpu)} of the run`} (the Workers and tool servers ran on it; the database too when it is local).`,
    `- The events table: ${kb(events)} after the run, ${total > 0 ? pct(events / total) : '?'} of the Reconciler tables' ${kb(total)}, written at ${round(j.events_per_s)} rows/s: it grows fastest, but no call waited on it.`,
    `- The outbox relay: not run in the fleet; ${run.history.processed} rows queued (${kb(sizes.outbox)}) for it.`,
  ];
  const first =
    a.lock_wait_share >= strainedShare
      ? `the claim's row locks (a lock wait in ${pct(a.lock_wait_share)} of samples)`
      : claimRatio >= slowerBy
        ? `the claim's row search (claim p50 ${round(claimRatio, 1)}x the write's; ${search.rows_removed} rows read to find none after the run)`
        : a.saturated_share >= strainedShare
          ? `connections (every pooled connection busy in ${pct(a.saturated_share)} of samples)`
          : cpu !== undefined && cpu >= 0.9
            ? `CPU (${run.cores} cores busy ${pct(cpu)} of the run)`
            : undefined;
  return [
    ...lines,
    '',
    `The rule: the first of these to cross its line strained first: a lock wait in ${pct(strainedShare)} of samples; the claim's p50 ${slowerBy}x the write's; every pooled connection busy in ${pct(strainedShare)} of samples; the CPU busy 90% of the run.`,
    first ? `Strained first: **${first}**.` : 'Nothing crossed its line: at this load no resource measured here strained.',
  ];
}

export function renderFleetReport(outcome: FleetOutcome): string {
  const run = outcome.main;
  const s = summary(run);
  const verdict = fleetPassed(outcome) ? 'PASS' : 'FAIL';
  const lines: string[] = [
    `# Fleet drill: ${s.workers} Workers over ${s.transactions} transactions: ${verdict}`,
    '',
    `- When: ${outcome.when.toISOString()}`,
    `- Target: ${outcome.target}`,
    `- Command: \`${outcome.command}\``,
    `- Rows: tenants ${run.plan.tenants[0]} to ${run.plan.tenants.at(-1)} (tag ${run.plan.tag}); seed ${run.options.seed}`,
    '',
    '## How the fleet ran',
    '',
    `${s.workers} Workers, each a whole reference Worker with its own MCP session, name and runs of ${run.options.turns} turns, ` +
      `hosted ${Math.ceil(s.workers / run.options.hosts)} to a process in ${run.options.hosts} Node process${run.options.hosts === 1 ? '' : 'es'} (100 Node processes on 2 cores would measure the scheduler, not the database), ` +
      `reaching the database only through ${run.options.toolServers} tool servers of ${run.options.poolSize} connections each. ` +
      `Claims: ${details(run).claims}. The database was their only coordination. Wall clock ${round(run.elapsed_s, 2)} s; the journal's window ${round(run.journal.window_s, 2)} s.`,
    '',
    '## History check (from the database alone)',
    '',
    ...historyLines(run),
    '',
    '## Figures',
    '',
    '| run | throughput (tx/s) | claim p50 (ms) | claim p99 (ms) | lock waits | backends peak | events rows/s | duplicates / lost / lock errors |',
    '|---|---|---|---|---|---|---|---|',
    figureRows(details(run).claims, run),
  ];
  if (outcome.forUpdate) lines.push(figureRows('FOR UPDATE (--no-skip-locked)', outcome.forUpdate));
  if (outcome.pooled && !('unavailable' in outcome.pooled)) lines.push(figureRows('through PgBouncer (transaction pooling)', outcome.pooled));
  lines.push('');
  lines.push('Claim latency is each claim call\'s started_at to finished_at in the journal; throughput is processed transactions over the journal\'s window.');
  if (outcome.forUpdate) {
    const a = summary(run);
    const b = summary(outcome.forUpdate);
    lines.push(
      '',
      '## SKIP LOCKED against plain FOR UPDATE',
      '',
      `With plain FOR UPDATE, every Worker of a tenant queues on the same first row: lock waits ${waits(outcome.forUpdate)} (SKIP LOCKED: ${waits(run)}), ` +
        `claim p99 ${b.p99_ms} ms (SKIP LOCKED: ${a.p99_ms} ms), throughput ${b.throughput_tps} tx/s (SKIP LOCKED: ${a.throughput_tps}, ${a.throughput_tps > 0 ? round(b.throughput_tps / a.throughput_tps, 2) : '?'}x).`,
      ...historyLines(outcome.forUpdate),
    );
  }
  if (outcome.baseline) {
    lines.push('', '## Against pgbench', '');
    if ('unavailable' in outcome.baseline) lines.push(`Not run: ${outcome.baseline.unavailable}`);
    else {
      const ratio = outcome.baseline.tps > 0 ? s.throughput_tps / outcome.baseline.tps : 0;
      lines.push(
        `pgbench ran the SQL the tool server runs for one transaction (claim, write and queue, each with its journal rows) at the concurrency the database sees from the fleet ` +
          `(${outcome.baseline.clients} clients, as many as the tool servers' connections; ${outcome.baseline.transactions} transactions): ` +
          `${round(outcome.baseline.tps)} tx/s. The fleet: ${s.throughput_tps} tx/s, **${round(ratio, 2)}x** the baseline (goal 0.5x): ` +
          `the rest is the tool server, MCP over HTTP and the Workers. Both run the same claim, so a claim bound by its row search (below) bounds both alike. ` +
          `(\`${outcome.baseline.command}\`, ${outcome.baseline.pgbench})`,
      );
    }
  }
  if (outcome.pooled || outcome.poolingChecks) {
    lines.push('', '## Through PgBouncer (transaction pooling)', '');
    if (outcome.pooled && 'unavailable' in outcome.pooled) lines.push(`Not run: ${outcome.pooled.unavailable}`);
    else if (outcome.pooled) {
      const p = summary(outcome.pooled);
      lines.push(`Backends peak ${p.backends_peak} (direct: ${s.backends_peak}); throughput ${p.throughput_tps} tx/s (direct: ${s.throughput_tps}).`, ...historyLines(outcome.pooled));
    }
    for (const check of outcome.poolingChecks ?? []) {
      lines.push(
        `- ${check.name}: ${check.what.replace(/\.?$/, '.')} The naive way ${check.naive.ok ? 'held' : '**broke**'} (${check.naive.detail}); the tool server's way ${check.toolServerWay.ok ? 'held' : '**broke**'} (${check.toolServerWay.detail}).`,
      );
    }
  }
  lines.push('', '## Which guarantees held at this scale', '', ...guarantees(run), '', '## What strained first', '', ...strain(run), '');
  return lines.join('\n');
}
