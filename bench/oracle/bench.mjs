#!/usr/bin/env node
// The db-state oracle's whole command at scale, by hand (not a test, not in CI):
//   npm run build && node bench/oracle/bench.mjs [--rows 1000000] [--repeat 5]
//   npm run build && node bench/oracle/bench.mjs --rows 10000000 --repeat 3
//   node bench/oracle/bench.mjs --dist /path/to/other/checkout/dist   (another build, e.g. before a change)
//
// Starts its own embedded PostgreSQL, fills `big` (bigint primary key `id`, two text
// columns, a bigint `amount` and a volatile created_at) with generate_series in SQL,
// then measures, interleaved round by round (the order alternates), in the same run:
//   baseline: two plain `COPY (SELECT * FROM big ORDER BY id) TO STDOUT` reads, each
//             read to the end and discarded (pg + pg-copy-streams, in this process);
//   oracle:   the whole command as a user runs it, spawned:
//               node dist/cli.js oracle --db URL --card bench --key big=id \
//                 --expect 'big:~{id=N}->{amount+=1}' --dir DIR -- <one-row update>
//             from spawn to exit: node's start, both snapshots, the eight evidence files
//             (four of them a row per line of the whole table), the diff and verdict.md.
//             The update is psql when it is on PATH, else bench/oracle/update-one-row.mjs.
// Peak RSS is the oracle process's own VmHWM (read at its exit by bench/oracle/peak-rss.mjs,
// preloaded with --import). The load average (/proc/loadavg) is printed before and after
// each measurement: on a shared machine the ratio, measured in the same rounds, is the figure.
// The cluster is stopped and its directory removed at the end, also on failure.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    repeat: { type: 'string', default: '5' },
    dist: { type: 'string', default: path.join(root, 'dist') },
  },
});
const dist = path.resolve(values.dist);
const rows = Number(values.rows);
const repeat = Number(values.repeat);
if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(repeat) || repeat < 1) {
  console.error('usage: node bench/oracle/bench.mjs [--rows N] [--repeat N] [--dist DIR]');
  process.exit(2);
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const mask = (text, url) => text.split(url).join(url.replace(/:\/\/([^:]+):[^@]*@/, '://$1:***@'));

function onPath(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The oracle command, as argv, for one round. */
function oracleCommand(url, dir, id) {
  const act = onPath('psql')
    ? ['psql', url, '-q', '-c', `update big set amount = amount + 1 where id = ${id}`]
    : [process.execPath, path.join(here, 'update-one-row.mjs'), url, String(id)];
  return [
    path.join(dist, 'cli.js'),
    'oracle',
    '--db',
    url,
    '--card',
    'bench',
    '--key',
    'big=id',
    '--expect',
    `big:~{id=${id}}->{amount+=1}`,
    '--dir',
    dir,
    '--',
    ...act,
  ];
}

async function runOracleCommand(url, work, round, id) {
  const dir = path.join(work, `evidence-${round}`);
  const rssFile = path.join(work, `rss-${round}`);
  const args = oracleCommand(url, dir, id);
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(here, 'peak-rss.mjs')).href, ...args], {
    env: { ...process.env, ORACLE_BENCH_RSS_FILE: rssFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const code = await new Promise((resolve) => child.on('exit', (exit) => resolve(exit)));
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`the oracle exited ${code} (0 is APPROVE):\n${mask(output, url)}`);
  const peakRssMb = Math.round(Number(await readFile(rssFile, 'utf8')) / 1024);
  await rm(dir, { recursive: true, force: true });
  return { ms, peakRssMb };
}

async function main() {
  const { startEmbedded } = await import(pathToFileURL(path.join(dist, 'postgres/embedded.js')).href);
  const { withPgClient } = await import(pathToFileURL(path.join(dist, 'postgres/pg.js')).href);
  const { to: copyTo } = await import('pg-copy-streams');
  const cluster = await startEmbedded({ database: 'oracle_bench' });
  const work = await mkdtemp(path.join(tmpdir(), 'sor-oracle-bench-'));
  try {
    const fillStarted = performance.now();
    await withPgClient(cluster.url, async (client) => {
      await client.query(`create table big (
        id bigint primary key, account text not null, amount bigint not null,
        memo text, created_at timestamptz not null default now())`);
      await client.query(
        `insert into big (id, account, amount, memo)
         select g, 'acct-' || (g % 1000), g * 7 % 100000, 'memo ' || md5(g::text) from generate_series(1, $1::bigint) g`,
        [rows],
      );
      await client.query('vacuum analyze big');
    });
    const size = await withPgClient(cluster.url, async (client) =>
      (await client.query(`select pg_size_pretty(pg_total_relation_size('big')) as size`)).rows[0].size,
    );
    console.error(`big: ${rows} rows (${size}) filled in ${Math.round(performance.now() - fillStarted)} ms`);

    const baseline = async () => {
      const started = performance.now();
      let bytes = 0;
      for (let read = 0; read < 2; read += 1) {
        await withPgClient(cluster.url, async (client) => {
          const stream = client.query(copyTo('COPY (SELECT * FROM big ORDER BY id) TO STDOUT'));
          for await (const chunk of stream) bytes += chunk.length;
        });
      }
      return { ms: performance.now() - started, bytes };
    };

    const id = Math.ceil(rows / 2);
    const shown = ['node', ...oracleCommand(cluster.url, path.join(work, 'evidence-N'), id).map((arg) => (/[\s'{}>]/.test(arg) ? `'${arg}'` : arg))]
      .join(' ')
      .replace(dist, path.relative(root, dist) || 'dist')
      .replace(here, 'bench/oracle');
    console.error(`oracle command: ${mask(shown, cluster.url)}`);

    await baseline(); // warm the caches once
    const results = [];
    for (let round = 1; round <= repeat; round += 1) {
      const entry = { round, loadBefore: loadAverage() };
      const measureBaseline = async () => {
        entry.baselineMs = Math.round((await baseline()).ms);
      };
      const measureOracle = async () => {
        const oracle = await runOracleCommand(cluster.url, work, round, id);
        entry.oracleMs = Math.round(oracle.ms);
        entry.peakRssMb = oracle.peakRssMb;
      };
      if (round % 2 === 1) {
        await measureBaseline();
        await measureOracle();
      } else {
        await measureOracle();
        await measureBaseline();
      }
      entry.loadAfter = loadAverage();
      entry.ratio = Number((entry.oracleMs / entry.baselineMs).toFixed(2));
      results.push(entry);
      console.error(
        `round ${round}: baseline ${entry.baselineMs} ms, oracle ${entry.oracleMs} ms (${entry.ratio}x), peak RSS ${entry.peakRssMb} MB, load ${entry.loadBefore} -> ${entry.loadAfter}`,
      );
    }
    const baselineMs = median(results.map((entry) => entry.baselineMs));
    const oracleMs = median(results.map((entry) => entry.oracleMs));
    const summary = {
      rows,
      node: process.version,
      postgres: cluster.display.replace(/:\/\/.*@/, '://***@'),
      cpu: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'})`,
      memoryGb: Math.round(totalmem() / 2 ** 30),
      act: onPath('psql') ? 'psql' : 'bench/oracle/update-one-row.mjs',
      baselineMs,
      oracleMs,
      ratio: Number((oracleMs / baselineMs).toFixed(2)),
      ratios: results.map((entry) => entry.ratio),
      peakRssMb: Math.max(...results.map((entry) => entry.peakRssMb)),
      loadAverages: results.map((entry) => `${entry.loadBefore} -> ${entry.loadAfter}`),
    };
    console.log(JSON.stringify(summary, null, 2));
  } finally {
    await cluster.stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (!existsSync(path.join(dist, 'cli.js'))) {
  console.error('bench/oracle: build first (npm run build)');
  process.exit(2);
}
await main();
