#!/usr/bin/env node
// The db-state oracle at scale, by hand (not in CI):
//   npm run build && node bench/oracle/bench.mjs [--rows 1000000] [--repeat 3]
//
// Starts its own embedded PostgreSQL, fills `ledger` (bigint primary key + four columns,
// one of them a volatile created_at), then measures in the same run:
//   baseline: two plain `COPY (SELECT * FROM ledger ORDER BY entry_no) TO STDOUT` reads,
//             each read to the end and discarded;
//   oracle:   snapshot, one row updated, snapshot, normalise both, diff (diff.txt written):
//             the comparison the goal is about (at most 2x the baseline);
//   workflow: runOracle() whole: the same plus the eight evidence files (before.json etc.).
// Each oracle measurement runs in a child process so its peak RSS (VmHWM) is its own.
// The cluster is stopped and its directory removed at the end, also on failure.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '../../dist');
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    repeat: { type: 'string', default: '3' },
    child: { type: 'string' },
    url: { type: 'string' },
    dir: { type: 'string' },
  },
});

function peakRssMb() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

async function child(kind, url, dir) {
  const { withPgClient } = await import(`${dist}/postgres/pg.js`);
  const oracle = await import(`${dist}/oracle/index.js`);
  const change = (client) => client.query(`update ledger set amount_cents = amount_cents + 1 where entry_no = 500000`);
  const revert = (client) => client.query(`update ledger set amount_cents = amount_cents - 1 where entry_no = 500000`);
  const started = performance.now();
  let detail;
  if (kind === 'oracle') {
    const scope = { tables: ['ledger'] };
    const before = await oracle.snapshot(url, scope, { workDir: dir });
    const snapshotBeforeMs = performance.now() - started;
    await withPgClient(url, change);
    const changedAt = performance.now();
    const after = await oracle.snapshot(url, oracle.scopeForAfter(scope, before), { workDir: dir });
    const snapshotAfterMs = performance.now() - changedAt;
    const diffStarted = performance.now();
    const result = await oracle.diff(oracle.normalise(before), oracle.normalise(after), { file: path.join(dir, 'diff.txt') });
    const diffMs = performance.now() - diffStarted;
    const ms = performance.now() - started;
    await oracle.releaseSnapshot(before);
    await oracle.releaseSnapshot(after);
    await withPgClient(url, revert);
    const table = result.tables[0];
    detail = { ms, snapshotBeforeMs: Math.round(snapshotBeforeMs), snapshotAfterMs: Math.round(snapshotAfterMs), diffMs: Math.round(diffMs), streamed: before.tables[0].streamed, rows: before.tables[0].count, changed: table.changedCount, added: table.addedCount, removed: table.removedCount, diffLines: result.linesAdded + result.linesRemoved };
  } else {
    const result = await oracle.runOracle({
      url,
      card: 'bench',
      dir,
      scope: { tables: ['ledger'] },
      expectations: ['ledger:+0', 'ledger:~{entry_no=500000}->{amount_cents+=1}'],
      action: { label: 'update one row', run: async () => withPgClient(url, async (client) => { await change(client); return 0; }) },
    });
    const ms = performance.now() - started;
    await withPgClient(url, revert);
    detail = { ms, verdict: result.verdict, expectations: result.expectations.map((entry) => entry.verdict) };
  }
  process.stdout.write(`${JSON.stringify({ ...detail, peakRssMb: peakRssMb() })}\n`);
}

async function main() {
  const rows = Number(values.rows);
  const repeat = Number(values.repeat);
  const { startEmbedded } = await import(`${dist}/postgres/embedded.js`);
  const { withPgClient } = await import(`${dist}/postgres/pg.js`);
  const { to: copyTo } = await import('pg-copy-streams');
  const cluster = await startEmbedded({ database: 'oracle_bench' });
  const work = await mkdtemp(path.join(tmpdir(), 'sor-oracle-bench-'));
  try {
    const fillStarted = performance.now();
    await withPgClient(cluster.url, async (client) => {
      await client.query(`create table ledger (
        entry_no bigint primary key, account text not null, amount_cents bigint not null,
        memo text, created_at timestamptz not null default now())`);
      await client.query(
        `insert into ledger (entry_no, account, amount_cents, memo)
         select g, 'acct-' || (g % 1000), g * 7 % 100000, 'memo ' || md5(g::text) from generate_series(1, $1::int) g`,
        [rows],
      );
      await client.query('vacuum analyze ledger');
    });
    const { rows: [size] } = await withPgClient(cluster.url, (client) =>
      client.query(`select pg_size_pretty(pg_total_relation_size('ledger')) as size`),
    );
    console.error(`ledger: ${rows} rows (${size.size}) in ${Math.round(performance.now() - fillStarted)} ms`);

    const baseline = async () => {
      const started = performance.now();
      let bytes = 0;
      for (let read = 0; read < 2; read += 1) {
        await withPgClient(cluster.url, async (client) => {
          const stream = client.query(copyTo('COPY (SELECT * FROM ledger ORDER BY entry_no) TO STDOUT'));
          for await (const chunk of stream) bytes += chunk.length;
        });
      }
      return { ms: performance.now() - started, bytes };
    };
    const measure = (kind) => {
      const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', kind, '--url', cluster.url, '--dir', work], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      });
      if (out.status !== 0) throw new Error(`${kind} child failed: ${out.stderr}`);
      return JSON.parse(out.stdout.trim().split('\n').pop());
    };

    const results = { baseline: [], oracle: [], workflow: [] };
    await baseline(); // warm the cache once
    for (let round = 0; round < repeat; round += 1) {
      results.baseline.push(await baseline());
      results.oracle.push(measure('oracle'));
      results.workflow.push(measure('workflow'));
      const phases = results.oracle.at(-1);
      console.error(`round ${round + 1}: oracle phases: snapshot ${phases.snapshotBeforeMs} + ${phases.snapshotAfterMs} ms, diff ${phases.diffMs} ms`);
      console.error(`round ${round + 1}: baseline ${Math.round(results.baseline.at(-1).ms)} ms, oracle ${Math.round(results.oracle.at(-1).ms)} ms (${results.oracle.at(-1).peakRssMb} MB), workflow ${Math.round(results.workflow.at(-1).ms)} ms (${results.workflow.at(-1).peakRssMb} MB)`);
    }
    const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
    const b = median(results.baseline.map((r) => r.ms));
    const o = median(results.oracle.map((r) => r.ms));
    const w = median(results.workflow.map((r) => r.ms));
    const summary = {
      rows,
      node: process.version,
      postgres: cluster.display.replace(/:\/\/.*@/, '://***@'),
      cpu: execFileSync('nproc').toString().trim() + ' cores',
      baselineMs: Math.round(b),
      oracleMs: Math.round(o),
      oracleRatio: Number((o / b).toFixed(2)),
      oraclePeakRssMb: Math.max(...results.oracle.map((r) => r.peakRssMb)),
      workflowMs: Math.round(w),
      workflowRatio: Number((w / b).toFixed(2)),
      workflowPeakRssMb: Math.max(...results.workflow.map((r) => r.peakRssMb)),
      oracleDetail: results.oracle[0],
      workflowDetail: results.workflow[0],
    };
    console.log(JSON.stringify(summary, null, 2));
  } finally {
    await cluster.stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (values.child) await child(values.child, values.url, values.dir);
else await main();
