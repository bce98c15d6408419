// Key press to the frame that shows it, in the console, while the live counts poll during
// the crash drill (issue 15, item 4). Run by hand after `npm run build` (run.sh).
//
// Per round: the console (`node dist/cli.js`, the embedded default) in a detached 120x40 tmux
// session of its own, in a fresh working directory with its own TMPDIR (so its cluster, its
// capstone home and the stale sweep stay in there), with SOR_DRILLS_FRAME_LOG set: the console
// appends a line per key read, per frame drawn (with what the frame shows: screen, panel, the
// drill's phase, what it asks) and per live-count poll (src/console/bench-log.ts). The harness
// walks to drill 2 with keys (enter, a; enter, a), then, while the Worker runs and the counts
// poll, presses keys whose effect is visible and undone by the next: tab (cycles the panel:
// live counts, diff, processes) and ?/esc (help and back). It answers the drill's asks (k, r)
// on the way. Keys go through one tmux control-mode client (`send-keys` written to its stdin),
// so the harness starts no process per press. For each press: the time just before it was
// handed to tmux, the time the console read the key, and the first frame after it that shows
// the effect (the panel named, the help screen, the drill screen again). Then a pause of
// 40-120 ms (random, so presses do not lock onto the 250 ms poll) before the next press. A
// press that meets the drill's own ask (which moves the panel to the processes by itself) has
// no effect of its own to time: it is counted (racedAnAsk) and left out of the figures; a press
// whose effect never shows within 3 s counts as 3000 ms.
//
// Knobs: ROUNDS (3), ASK_PRESSES (20 at each ask), OUT (the JSON), KEEP_LOGS=1 (keep each
// round's folder and frame log), CONSOLE_ENV (variables for the console, e.g.
// NODE_ENV=development to compare React's builds), NODE_ARGS (node flags, e.g. --cpu-prof).
//
// SIGNAL=pane instead reads the screen back with `tmux capture-pane` for the ?/esc presses
// only (the text of the help screen, the panel tabs' "(tab)" again), to cross-check the frame
// log against what tmux shows; its own cost per capture is measured and reported beside it.
//
// Reported: p50/p90/p99/max and the sample count (all, and per phase: the Worker making calls,
// the Worker stalled at the kill prompt, the Worker dead at the restart prompt), the key's own
// travel (send-keys to the console reading it), the poller's queries per second (its own
// queries, counted from its poll lines) and the target's transactions per second
// (pg_stat_database xact_commit + xact_rollback deltas, read through the kept cluster's pgpass
// file), frames per second, the console's own CPU (from /proc, per second and per frame), and
// the machine's load average (1 min) at the start and end of each round.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const rounds = Number(process.env.ROUNDS ?? 3);
const signal = process.env.SIGNAL ?? 'frame';
/** Presses while the Worker is stalled at the kill prompt, and again while it is dead at the restart prompt. */
const askPresses = Number(process.env.ASK_PRESSES ?? 20);
const out = process.env.OUT ?? path.join(tmpdir(), 'key-latency.json');
const pressTimeoutMs = 3_000;
const now = () => performance.timeOrigin + performance.now();
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The console's log (bench-log.ts), read as it grows. */
class FrameLog {
  constructor(file) {
    this.file = file;
    this.offset = 0;
    this.rest = '';
    this.events = [];
    this.fd = undefined;
  }
  read() {
    if (this.fd === undefined) {
      if (!existsSync(this.file)) return;
      this.fd = openSync(this.file, 'r');
    }
    const buffer = Buffer.alloc(1 << 16);
    for (;;) {
      const n = readSync(this.fd, buffer, 0, buffer.length, this.offset);
      if (n === 0) break;
      this.offset += n;
      const text = this.rest + buffer.subarray(0, n).toString('utf8');
      const lines = text.split('\n');
      this.rest = lines.pop();
      for (const line of lines) {
        const [kind, at, ...fields] = line.split(' ');
        const event = { kind, at: Number(at) };
        if (kind === 'key') event.key = fields.join(' ');
        else for (const field of fields) {
          const [name, value] = field.split('=');
          event[name] = value;
        }
        this.events.push(event);
      }
    }
  }
  frames() {
    return this.events.filter((event) => event.kind === 'frame');
  }
  last() {
    return this.frames().at(-1);
  }
  /** Polls (every 2 ms) for a frame after `since` that satisfies the predicate. */
  async frame(what, predicate, { since = 0, timeoutMs = 60_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.read();
      const found = this.frames().find((event) => event.at > since && predicate(event));
      if (found) return found;
      if (Date.now() > deadline) return undefined;
      await pause(2);
    }
  }
  async must(what, predicate, options) {
    const found = await this.frame(what, predicate, options);
    if (!found) throw new Error(`no frame with ${what} (last: ${JSON.stringify(this.last())})`);
    return found;
  }
  close() {
    if (this.fd !== undefined) closeSync(this.fd);
  }
}

function tmux(...args) {
  return execFileSync('tmux', args, { encoding: 'utf8' });
}

/**
 * Key presses through one tmux control-mode client attached to the session (no output, its
 * size ignored), so a press is one line written to a pipe, not a tmux process started: the
 * harness's own cost stays out of the figure (a `tmux send-keys` process takes 5-20 ms here).
 */
class Keys {
  constructor(session) {
    this.session = session;
    this.client = spawn('tmux', ['-C', 'attach-session', '-f', 'no-output,ignore-size', '-t', session], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.client.stdout.resume();
    this.client.on('error', () => {});
  }
  /** One press; the times just before and after it was handed to tmux. */
  send(key) {
    const before = now();
    this.client.stdin.write(`send-keys -t ${this.session} '${key}'\n`);
    return { before, after: now() };
  }
  close() {
    this.client.stdin.end();
  }
}

/** The console's node process: the child of the pane's shell. */
function consolePid(session) {
  const shell = tmux('list-panes', '-t', session, '-F', '#{pane_pid}').trim();
  const children = readFileSync(`/proc/${shell}/task/${shell}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  return Number(children[0] ?? shell);
}

/** CPU time (user + system, ms) the process has used so far, from /proc. */
function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

function capture(session) {
  const started = now();
  const text = tmux('capture-pane', '-p', '-t', session);
  return { text, started, ended: now() };
}

const panels = ['counts', 'diff', 'processes'];

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

function stats(values) {
  const sorted = values.filter((value) => value !== null).sort((a, b) => a - b);
  const r = (value) => (value === null ? null : Number(value.toFixed(1)));
  return {
    n: sorted.length,
    p50: r(percentile(sorted, 50)),
    p90: r(percentile(sorted, 90)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted.at(-1) ?? null),
  };
}

/** The kept cluster's port and password (the console keeps an unfinished capstone's cluster and its pgpass file). */
function findCluster(dirs) {
  const seen = [];
  const walk = (dir, depth) => {
    if (depth > 4 || !existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory() && entry.name !== 'data') walk(full, depth + 1);
      else if (entry.name === 'owner.json' && existsSync(path.join(dir, 'pgpass'))) seen.push(dir);
    }
  };
  for (const dir of dirs) walk(dir, 0);
  return seen[0];
}

async function targetTransactions(clusterDir) {
  if (!clusterDir) return undefined;
  const { port } = JSON.parse(readFileSync(path.join(clusterDir, 'owner.json'), 'utf8'));
  const line = readFileSync(path.join(clusterDir, 'pgpass'), 'utf8').trim().split('\n')[0];
  const password = line.split(':').slice(4).join(':');
  const { default: pg } = await import(path.join(root, 'node_modules/pg/lib/index.js'));
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'sor_drills', application_name: 'key-latency bench' });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query(
      `select (xact_commit + xact_rollback)::bigint as xacts from pg_stat_database where datname = current_database()`,
    );
    return { at: now(), xacts: Number(rows[0].xacts) };
  } finally {
    await client.end();
  }
}

async function round(index) {
  const dir = mkdtempSync(path.join(tmpdir(), 'key-latency-'));
  const work = path.join(dir, 'work');
  const temp = path.join(dir, 'tmp');
  for (const folder of [dir, work, temp]) {
    mkdirSync(folder, { recursive: true });
    // As root PostgreSQL runs as the postgres user, which must reach its data under these.
    chmodSync(folder, 0o755);
  }
  const logFile = path.join(dir, 'frames.log');
  const session = `key-latency-${process.pid}-${index}`;
  const command =
    `cd ${work} && env -u CI TMPDIR=${temp} SOR_DRILLS_FRAME_LOG=${logFile} ${process.env.CONSOLE_ENV ?? ''} ${process.execPath} ${process.env.NODE_ARGS ?? ''} ${path.join(root, 'dist/cli.js')}` +
    ` 2>${path.join(dir, 'stderr.txt')}; tmux wait-for -S ${session}-done`;
  tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', command);
  const log = new FrameLog(logFile);
  const keys = new Keys(session);
  const send = (_session, key) => keys.send(key);
  const samples = [];
  const load = [loadavg()[0]];
  let window;
  try {
    await log.must('the drill list', (f) => f.screen === 'list', { timeoutMs: 120_000 });
    send(session, 'Enter');
    await log.must('drill 1 ready', (f) => f.screen === 'drill' && f.drill === 'migration_review' && f.phase === 'ready');
    send(session, 'a');
    await log.must('drill 1 finished', (f) => f.drill === 'migration_review' && f.phase === 'finished');
    send(session, 'Enter');
    await log.must('drill 2 ready', (f) => f.screen === 'drill' && f.drill === 'run_journal_resume_drill' && f.phase === 'ready');
    const started = send(session, 'a');
    await log.must('drill 2 running', (f) => f.drill === 'run_journal_resume_drill' && f.phase === 'running', { since: started.before });
    const clusterDir = findCluster([path.join(work, '.sor-drills'), temp]);
    const before = await targetTransactions(clusterDir).catch(() => undefined);
    const pid = consolePid(session);
    window = { from: now(), clusterDir, before, pid, cpuFrom: cpuMs(pid) };
    const answered = { kill: 0, restart: 0 };
    let cycle = 0;
    for (;;) {
      log.read();
      const state = log.last();
      if (state.phase === 'finished') break;
      // The drill's asks: answered once the presses asked of that phase are taken.
      const ask = state.ask;
      if ((ask === 'kill' || ask === 'restart') && state.screen === 'drill') {
        answered[ask] += 1;
        if (answered[ask] > askPresses) {
          const sent = send(session, ask === 'kill' ? 'k' : 'r');
          await log.must(`the ${ask} performed`, (f) => f.ask !== ask, { since: sent.before });
          continue;
        }
      } else if (ask === 'continue' || ask === 'start') {
        const sent = send(session, 'Enter');
        await log.must(`the ${ask} answered`, (f) => f.ask !== ask, { since: sent.before });
        continue;
      }
      const phase = ask === 'kill' ? 'stalled at the kill prompt' : ask === 'restart' ? 'dead at the restart prompt' : 'Worker making calls';
      // tab, tab, tab (back to the panel it started from), then ? and esc.
      const step = cycle % 5;
      cycle += 1;
      let key;
      let shows;
      let what;
      if (state.screen === 'help') {
        key = 'Escape';
        what = 'esc';
        shows = (f) => f.screen === 'drill';
      } else if (step < 3) {
        const next = panels[(panels.indexOf(state.panel) + 1) % panels.length];
        key = 'Tab';
        what = 'tab';
        shows = (f) => f.screen === 'drill' && f.panel === next;
      } else {
        key = '?';
        what = '?';
        shows = (f) => f.screen === 'help';
      }
      const usePane = signal === 'pane' && (what === '?' || what === 'esc');
      const sent = send(session, key);
      const sample = { key: what, phase, at: sent.before, sendMs: sent.after - sent.before, history: Number(state.history) };
      if (usePane) {
        const paneShows = what === '?' ? (text) => text.includes('Processes (drill screen)') : (text) => text.includes('(tab)');
        const captures = [];
        let shown;
        while (now() - sent.before < pressTimeoutMs) {
          const shot = capture(session);
          captures.push(shot.ended - shot.started);
          if (paneShows(shot.text)) {
            shown = shot;
            break;
          }
        }
        sample.paneMs = shown ? shown.ended - sent.before : null;
        sample.captureMs = captures;
      }
      const frame = await log.frame(what, shows, { since: sent.before, timeoutMs: pressTimeoutMs });
      log.read();
      const arrived = log.events.find((event) => event.kind === 'key' && event.at >= sent.before);
      sample.ms = frame ? frame.at - sent.before : null;
      sample.keyMs = arrived ? arrived.at - sent.before : null;
      sample.renderMs = frame && arrived ? frame.at - arrived.at : null;
      // An ask arriving moves the panel to the processes by itself (src/console/operator.ts): a press
      // that meets one has no effect of its own to time, so it is counted apart, not as a latency.
      const until = frame ? frame.at : sent.before + pressTimeoutMs;
      if (log.frames().some((f) => f.at > sent.before && f.at <= until && f.ask !== state.ask)) sample.raced = true;
      else if (!frame) {
        // What the console did instead, for the report: the frames after the press.
        sample.timeout = true;
        sample.expected = what === 'tab' ? `panel after ${state.panel}` : what;
        sample.framesAfter = log.events
          .filter((event) => event.at > sent.before && event.kind !== 'poll')
          .slice(0, 8)
          .map((event) => `${(event.at - sent.before).toFixed(1)} ${event.kind} ${event.key ?? `${event.screen} ${event.panel} ask=${event.ask} history=${event.history}`}`);
      }
      samples.push(sample);
      // Consume the key line so the next press finds its own.
      if (arrived) arrived.kind = 'key-used';
      await pause(40 + Math.random() * 80);
      if (!frame && log.last()?.screen !== 'drill' && log.last()?.screen !== 'help') throw new Error(`lost the drill screen: ${JSON.stringify(log.last())}`);
    }
    window.to = now();
    window.cpuTo = cpuMs(window.pid);
    window.after = await targetTransactions(clusterDir).catch(() => undefined);
    load.push(loadavg()[0]);
  } finally {
    // Quit: q, and y when it asks (a drill finished but the capstone is not).
    try {
      const sent = send(session, 'q');
      const asked = await log.frame('the quit question', (f) => f.quit === 'asked' || f.screen === 'exiting', { since: sent.before, timeoutMs: 10_000 });
      if (asked?.quit === 'asked') send(session, 'y');
      spawnSync('tmux', ['wait-for', `${session}-done`], { timeout: 60_000 });
    } finally {
      keys.close();
      spawnSync('tmux', ['kill-session', '-t', session]);
      log.read();
      log.close();
    }
  }
  const events = log.events;
  const inWindow = (event) => window && event.at >= window.from && event.at <= window.to;
  const polls = events.filter((event) => event.kind === 'poll' && inWindow(event));
  const frames = events.filter((event) => event.kind === 'frame' && inWindow(event));
  const seconds = window ? (window.to - window.from) / 1000 : 0;
  const queries = polls.reduce((sum, event) => sum + Number(event.queries ?? 0), 0);
  const result = {
    round: index,
    seconds: Number(seconds.toFixed(2)),
    samples,
    poller: {
      queries,
      qps: Number((queries / seconds).toFixed(2)),
      ticks: polls.filter((event) => Number(event.queries) > 0).length,
      pollMs: stats(polls.map((event) => Number(event.ms))),
    },
    target: window?.before && window?.after ? { xactsPerSecond: Number(((window.after.xacts - window.before.xacts) / ((window.after.at - window.before.at) / 1000)).toFixed(1)) } : 'not read',
    framesPerSecond: Number((frames.length / seconds).toFixed(1)),
    consoleCpu: window?.cpuTo !== undefined && window?.cpuFrom !== undefined
      ? { percent: Number(((window.cpuTo - window.cpuFrom) / (seconds * 10)).toFixed(1)), msPerFrame: Number(((window.cpuTo - window.cpuFrom) / frames.length).toFixed(2)) }
      : 'not read',
    load,
  };
  if (process.env.KEEP_LOGS) result.dir = dir;
  else rmSync(dir, { recursive: true, force: true });
  return result;
}

const results = [];
for (let index = 0; index < rounds; index += 1) results.push(await round(index));
const raced = results.flatMap((result) => result.samples).filter((sample) => sample.raced).length;
const all = results.flatMap((result) => result.samples).filter((sample) => !sample.raced);
const byPhase = Object.fromEntries([...new Set(all.map((sample) => sample.phase))].map((phase) => [phase, stats(all.filter((s) => s.phase === phase).map((s) => s.ms))]));
const byKey = Object.fromEntries([...new Set(all.map((sample) => sample.key))].map((key) => [key, stats(all.filter((s) => s.key === key).map((s) => s.ms))]));
const timeouts = all.filter((sample) => sample.timeout).length;
const summary = {
  node: process.version,
  signal,
  rounds,
  keyToFrame: { ...stats(all.map((s) => (s.timeout ? pressTimeoutMs : s.ms))), timeouts, racedAnAsk: raced },
  byPhase,
  byKey,
  keyTravel: stats(all.map((s) => s.keyMs)),
  keyToFrameInConsole: stats(all.map((s) => s.renderMs)),
  sendKeys: stats(all.map((s) => s.sendMs)),
  ...(signal === 'pane'
    ? {
        pane: stats(all.filter((s) => s.paneMs !== undefined).map((s) => s.paneMs)),
        capturePane: stats(all.flatMap((s) => s.captureMs ?? [])),
      }
    : {}),
  pollerQps: results.map((r) => r.poller.qps),
  pollMs: results.map((r) => r.poller.pollMs),
  targetXactsPerSecond: results.map((r) => r.target?.xactsPerSecond ?? r.target),
  framesPerSecond: results.map((r) => r.framesPerSecond),
  consoleCpu: results.map((r) => r.consoleCpu),
  load1: results.map((r) => r.load.map((v) => Number(v.toFixed(2)))),
};
writeFileSync(out, JSON.stringify({ summary, results }, null, 2));
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
