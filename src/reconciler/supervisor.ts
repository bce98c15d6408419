// The supervisor: starts the Reconciler's processes (tool server, Workers, relay,
// email service), each a named OS process with an explicit environment, and
// kills, restarts and reports on them.
//
// - Each child is started detached (its own process group) and is killed as a
//   group, `process.kill(-pid, signal)`: a SIGKILL of the leader alone would orphan
//   its children.
// - Nothing is inherited: `extendEnv: false` and the spec's env is the whole
//   environment (see env.ts for the allow-lists).
// - Output is piped (never inherited, it would scribble over Ink), split into
//   lines, appended to `<logDir>/<name>.log`, kept as recent lines, and emitted as
//   `line` events; state changes are `process` events.
// - Detached children are not killed when the console exits, so the supervisor
//   registers stopAll() with onCleanup() (normal exit, Ctrl-C, SIGTERM, crash) and,
//   as the last resort, SIGKILLs every group it still runs from process 'exit'.
import { once, EventEmitter } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, readFileSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import { maskSecrets } from '../postgres/url.js';
import { onCleanup } from '../util/lifecycle.js';
import { parseJsonLine, type JsonLine } from './json-lines.js';

export type ProcessState = 'starting' | 'running' | 'exited' | 'killed';

export interface ProcessSpec {
  /** Unique among the supervisor's processes: what kill() and restart() take. */
  name: string;
  /** The executable; the running Node by default. */
  command?: string;
  args: string[];
  /** The child's whole environment: nothing of the console's is added. */
  env: Record<string, string>;
  cwd?: string;
}

/** A serialisable snapshot of one supervised process (what the console's store holds). */
export interface ProcessInfo {
  name: string;
  pid: number | undefined;
  state: ProcessState;
  /** Set when it exited on its own. */
  exitCode: number | undefined;
  /** Set when a signal ended it ('SIGKILL', ...). */
  signal: string | undefined;
  logFile: string;
  /** How many times it was started (1 for the first start). */
  starts: number;
  startedAt: string | undefined;
  endedAt: string | undefined;
  /** The last lines of its output (both streams), oldest first. */
  recentLines: string[];
}

export interface SupervisorEvents {
  process: [info: ProcessInfo];
  line: [name: string, line: string, stream: 'stdout' | 'stderr'];
}

export interface SupervisorOptions {
  /** Directory for `<name>.log`; created when missing. */
  logDir: string;
  /** Recent lines kept per process (default 500). */
  recentLines?: number;
  /** How long stop() and stopAll() wait after SIGTERM before SIGKILL (default 2000 ms). */
  stopDeadlineMs?: number;
}

export interface WaitLineOptions {
  timeoutMs: number;
  /** Only lines at or after this cursor (from cursor()); default: the current start's first line. */
  since?: number;
}

interface Line {
  seq: number;
  text: string;
}

interface Entry {
  spec: ProcessSpec;
  info: ProcessInfo;
  subprocess: ResultPromise | undefined;
  /** Resolves once the current incarnation has ended and its output is drained. */
  ended: Promise<void>;
  lines: Line[];
  nextSeq: number;
  /** The seq of the current incarnation's first line. */
  startSeq: number;
}

const isGone = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ESRCH';

const hasProc = existsSync('/proc/self/stat');

/**
 * Whether a process runs. A zombie (dead, not yet reaped: a killed grandchild
 * waits for PID 1 to reap it) is not alive, though signal 0 still reaches it.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // Without /proc (not Linux) signal 0 is all we know.
  if (!hasProc) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).charAt(0);
    return state !== 'Z' && state !== 'X';
  } catch (error) {
    // Gone between the signal and the read: not alive.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly logDir: string;
  private readonly entries = new Map<string, Entry>();
  private readonly keepLines: number;
  private readonly stopDeadlineMs: number;
  private readonly pids: number[] = [];
  private readonly forgetCleanup: () => void;
  private readonly killOnExit = () => {
    for (const entry of this.entries.values()) {
      if (entry.info.pid !== undefined && (entry.info.state === 'running' || entry.info.state === 'starting')) {
        try {
          process.kill(-entry.info.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  };

  constructor(options: SupervisorOptions) {
    super();
    this.logDir = options.logDir;
    this.keepLines = options.recentLines ?? 500;
    this.stopDeadlineMs = options.stopDeadlineMs ?? 2_000;
    mkdirSync(this.logDir, { recursive: true });
    this.forgetCleanup = onCleanup('supervised processes', () => this.stopAll());
    process.on('exit', this.killOnExit);
  }

  /** Starts a process; resolves once it is running (or has already failed to start). */
  async start(spec: ProcessSpec): Promise<ProcessInfo> {
    const existing = this.entries.get(spec.name);
    if (existing && (existing.info.state === 'running' || existing.info.state === 'starting')) {
      throw new Error(`process ${spec.name} is already running (pid ${existing.info.pid})`);
    }
    const entry: Entry = existing ?? {
      spec,
      info: {
        name: spec.name,
        pid: undefined,
        state: 'starting',
        exitCode: undefined,
        signal: undefined,
        logFile: path.join(this.logDir, `${spec.name.replace(/[^\w.-]+/g, '_')}.log`),
        starts: 0,
        startedAt: undefined,
        endedAt: undefined,
        recentLines: [],
      },
      subprocess: undefined,
      ended: Promise.resolve(),
      lines: [],
      nextSeq: 0,
      startSeq: 0,
    };
    entry.spec = spec;
    entry.startSeq = entry.nextSeq;
    entry.info = {
      ...entry.info,
      pid: undefined,
      state: 'starting',
      exitCode: undefined,
      signal: undefined,
      starts: entry.info.starts + 1,
      startedAt: new Date().toISOString(),
      endedAt: undefined,
    };
    this.entries.set(spec.name, entry);
    this.emitState(entry);

    const log: WriteStream = createWriteStream(entry.info.logFile, { flags: 'a' });
    log.on('error', () => {});
    const subprocess = execa(spec.command ?? process.execPath, spec.args, {
      env: spec.env,
      extendEnv: false,
      cwd: spec.cwd,
      detached: true,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: false,
    });
    entry.subprocess = subprocess;
    if (subprocess.pid !== undefined) this.pids.push(subprocess.pid);
    log.write(`--- ${entry.info.startedAt} start #${entry.info.starts} pid ${subprocess.pid ?? '?'}: ${spec.args.join(' ')}\n`);

    const readers = (['stdout', 'stderr'] as const).map((stream) => {
      const source = subprocess[stream];
      if (!source) return Promise.resolve();
      const reader = createInterface({ input: source, crlfDelay: Infinity });
      reader.on('line', (raw) => this.takeLine(entry, log, raw, stream));
      return once(reader, 'close').then(() => undefined);
    });

    entry.ended = (async () => {
      const result = await subprocess;
      await Promise.all(readers);
      const signal = result.signal ?? undefined;
      entry.info = {
        ...entry.info,
        state: signal ? 'killed' : 'exited',
        exitCode: signal ? undefined : (result.exitCode ?? (result.failed ? 127 : undefined)),
        signal,
        endedAt: new Date().toISOString(),
      };
      const how = signal ? `killed by ${signal}` : `exited with code ${entry.info.exitCode}`;
      const failure = result.failed && !signal && result.exitCode === undefined ? `: ${result.shortMessage}` : '';
      await new Promise<void>((resolve) => log.end(`--- ${entry.info.endedAt} ${how}${failure}\n`, () => resolve()));
      this.emitState(entry);
    })();

    await Promise.race([once(subprocess, 'spawn').catch(() => undefined), entry.ended]);
    if (entry.info.state === 'starting') {
      entry.info = { ...entry.info, pid: subprocess.pid, state: 'running' };
      this.emitState(entry);
    }
    return this.get(spec.name)!;
  }

  /**
   * Sends the signal to the whole process group and resolves once the process
   * has exited. A signal other than SIGKILL that has not ended it within the
   * stop deadline is followed by SIGKILL.
   */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<ProcessInfo> {
    const entry = this.entry(name);
    if (!this.isRunning(entry)) return this.get(name)!;
    this.signalGroup(entry, signal);
    if (signal !== 'SIGKILL') {
      const ended = await Promise.race([
        entry.ended.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), this.stopDeadlineMs).unref()),
      ]);
      if (!ended) this.signalGroup(entry, 'SIGKILL');
    }
    await entry.ended;
    return this.get(name)!;
  }

  /** SIGTERM, then SIGKILL after the stop deadline. */
  stop(name: string): Promise<ProcessInfo> {
    return this.kill(name, 'SIGTERM');
  }

  /** Starts the process again with the same spec (stopping it first if it still runs). */
  async restart(name: string): Promise<ProcessInfo> {
    const entry = this.entry(name);
    if (this.isRunning(entry)) await this.stop(name);
    return this.start(entry.spec);
  }

  /** Stops every running process (SIGTERM, then SIGKILL after the deadline). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.entries.values()].filter((entry) => this.isRunning(entry)).map((entry) => this.stop(entry.spec.name)));
  }

  /** stopAll(), then forgets the exit hooks: for tests and a console that is done with its processes. */
  async close(): Promise<void> {
    await this.stopAll();
    this.forgetCleanup();
    process.off('exit', this.killOnExit);
  }

  get(name: string): ProcessInfo | undefined {
    const entry = this.entries.get(name);
    if (!entry) return undefined;
    return { ...entry.info, recentLines: entry.lines.map((line) => line.text) };
  }

  list(): ProcessInfo[] {
    return [...this.entries.keys()].map((name) => this.get(name)!);
  }

  /** Every pid this supervisor ever started, in order. */
  startedPids(): number[] {
    return [...this.pids];
  }

  /** A position in the process's output: lines after it are those still to come. */
  cursor(name: string): number {
    return this.entry(name).nextSeq;
  }

  /**
   * The first line (of the current start, or after `since`) that matches.
   * Rejects at the deadline, or when the process ends without printing one,
   * naming its last lines.
   */
  waitForLine(name: string, predicate: (line: string) => boolean, options: WaitLineOptions): Promise<string> {
    const entry = this.entry(name);
    const since = options.since ?? entry.startSeq;
    const found = entry.lines.find((line) => line.seq >= since && predicate(line.text));
    if (found) return Promise.resolve(found.text);
    return new Promise<string>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.off('line', onLine);
        this.off('process', onProcess);
      };
      const onLine = (lineName: string, text: string) => {
        if (lineName === name && predicate(text)) {
          cleanup();
          resolve(text);
        }
      };
      const onProcess = (info: ProcessInfo) => {
        if (info.name === name && (info.state === 'exited' || info.state === 'killed')) {
          cleanup();
          const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exitCode}`;
          reject(new Error(`${name} ${how} before printing the awaited line; last lines: ${info.recentLines.slice(-5).join(' | ')}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${options.timeoutMs} ms waiting for a line from ${name}; last lines: ${entry.lines.slice(-5).map((line) => line.text).join(' | ')}`));
      }, options.timeoutMs);
      this.on('line', onLine);
      this.on('process', onProcess);
      if (!this.isRunning(entry)) onProcess(this.get(name)!);
    });
  }

  /** waitForLine for a JSON line `{"event": event, ...}` that also matches `match`. */
  async waitForEvent(
    name: string,
    event: string,
    options: WaitLineOptions & { match?: (line: JsonLine) => boolean },
  ): Promise<JsonLine> {
    const line = await this.waitForLine(
      name,
      (text) => {
        const parsed = parseJsonLine(text);
        return parsed?.event === event && (options.match?.(parsed) ?? true);
      },
      options,
    );
    return parseJsonLine(line)!;
  }

  /** Resolves with the process's info once its current start has ended. */
  async waitForExit(name: string): Promise<ProcessInfo> {
    await this.entry(name).ended;
    return this.get(name)!;
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`no supervised process named ${name}`);
    return entry;
  }

  private isRunning(entry: Entry): boolean {
    return entry.info.state === 'running' || entry.info.state === 'starting';
  }

  private signalGroup(entry: Entry, signal: NodeJS.Signals): void {
    const pid = entry.subprocess?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch (error) {
      if (!isGone(error)) throw error;
    }
  }

  private takeLine(entry: Entry, log: WriteStream, raw: string, stream: 'stdout' | 'stderr'): void {
    const text = maskSecrets(raw);
    entry.lines.push({ seq: entry.nextSeq, text });
    entry.nextSeq += 1;
    if (entry.lines.length > this.keepLines) entry.lines.splice(0, entry.lines.length - this.keepLines);
    log.write(stream === 'stderr' ? `[stderr] ${text}\n` : `${text}\n`);
    this.emit('line', entry.spec.name, text, stream);
  }

  private emitState(entry: Entry): void {
    this.emit('process', this.get(entry.spec.name)!);
  }
}
