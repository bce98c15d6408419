// The Worker's environment as the OS holds it, read the moment it runs: for the
// operator's own Worker (the profile's processes.worker), which may finish its run
// in milliseconds, and for the reference Worker when it talks to the operator's
// tool server (whose tool names it does not know, so it ends at its first call).
// The supervisor's start resolves once the child has exec'd (node's spawn event),
// so /proc/<pid>/environ is then the environment the program was started with.
// Every process of its group seen while it runs is read too: a wrapper script's
// child holds what the wrapper handed it.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { readProcessCommandLine, readProcessEnvironment, type EnvironmentRead } from '../../reconciler/proc-env.js';
import type { Supervisor } from '../../reconciler/supervisor.js';
import { errorMessage } from '../../postgres/errors.js';
import { waitFor, WaitTimeout } from '../../util/wait.js';
import type { DrillContext } from '../types.js';

/** The pids of a process group, from /proc/<pid>/stat (pgrp is the fifth field, after the parenthesised name). */
export async function groupMembers(pgid: number): Promise<number[]> {
  const members: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) members.push(Number(entry));
    } catch {
      // gone while the directory was read
    }
  }
  return members;
}

/** The environments of several processes as one reading: names joined; the pid is the first holding a credential, else the leader's. */
export function mergeEnvironments(leader: number, reads: readonly EnvironmentRead[]): EnvironmentRead {
  const union = (pick: (env: EnvironmentRead) => string[]) => [...new Set(reads.flatMap(pick))].sort();
  const offending = reads.find((env) => env.credentials.length > 0 || env.urlValued.length > 0);
  return { pid: offending?.pid ?? leader, names: union((env) => env.names), credentials: union((env) => env.credentials), urlValued: union((env) => env.urlValued) };
}

export type WorkerEnvReading =
  | { env: EnvironmentRead; processes: number; run: string; runOk: boolean }
  | { unreadable: string };

export interface WorkerEnvOptions {
  /** The supervisor name of the Worker. */
  name: string;
  /** How evidence names it: "the operator's Worker `node worker.mjs`". */
  who: string;
  /** What its command line must hold (the script's name): a pid reused by another program is not read. */
  program: string;
  /** Starts it; a start that throws is could-not-determine for the environment, named. */
  start: () => Promise<unknown>;
  /** Wait this long for its run to finish (the operator's short run); 0: stop it at once. */
  runTimeoutMs: number;
}

function ended(sup: Supervisor, name: string): boolean {
  const state = sup.get(name)?.state;
  return state === 'exited' || state === 'killed';
}

function howItEnded(sup: Supervisor, name: string): string {
  const info = sup.get(name);
  if (!info) return 'never started';
  const how = info.signal ? `killed by ${info.signal}` : `exited with code ${info.exitCode}`;
  return `${how}; its log: ${info.logFile}`;
}

/**
 * Starts the Worker, reads its environment from /proc at once, then (for a run)
 * reads every process of its group until the run ends or the deadline passes,
 * and stops it. What could not be read is said, with what to fix.
 */
export async function readWorkerEnvironment(ctx: DrillContext, options: WorkerEnvOptions): Promise<WorkerEnvReading> {
  const sup = ctx.system.supervisor();
  ctx.defer(() => ctx.system.stop(options.name));
  try {
    await options.start();
  } catch (error) {
    return { unreadable: `${options.who} did not start: ${errorMessage(error)}` };
  }
  const leader = sup.get(options.name)?.pid;
  if (leader === undefined || ended(sup, options.name)) {
    return { unreadable: `${options.who} ended before its environment could be read (${howItEnded(sup, options.name)})` };
  }
  ctx.observe('worker_pid', leader);
  const reads = new Map<number, EnvironmentRead>();
  try {
    const cmdline = await readProcessCommandLine(leader);
    if (!cmdline.includes(options.program)) throw new Error(`pid ${leader} is not ${options.who} (${cmdline.trim()})`);
    reads.set(leader, await readProcessEnvironment(leader));
  } catch (error) {
    const reason = ended(sup, options.name)
      ? `${options.who} ended before its environment could be read (${howItEnded(sup, options.name)})`
      : `${options.who}'s environment could not be read from the OS: ${errorMessage(error)}`;
    await ctx.system.stop(options.name);
    return { unreadable: reason };
  }
  let run = 'stopped once read';
  let runOk = true;
  if (options.runTimeoutMs > 0) {
    const readGroup = async () => {
      for (const pid of await groupMembers(leader)) {
        if (reads.has(pid)) continue;
        await readProcessEnvironment(pid).then(
          (env) => void reads.set(pid, env),
          () => {}, // gone between the listing and the read
        );
      }
    };
    try {
      await waitFor(`${options.who} to finish its run`, async () => (await readGroup(), ended(sup, options.name)), {
        timeoutMs: options.runTimeoutMs,
        intervalMs: 25,
        signal: ctx.signal,
      });
      runOk = sup.get(options.name)?.exitCode === 0;
      run = runOk ? 'exited with code 0' : howItEnded(sup, options.name);
    } catch (error) {
      if (!(error instanceof WaitTimeout)) throw error;
      run = `still running after ${options.runTimeoutMs / 1000} s: stopped`;
      runOk = false;
    }
  }
  await ctx.system.stop(options.name);
  return { env: mergeEnvironments(leader, [...reads.values()]), processes: reads.size, run, runOk };
}

/** The name a command line shows for a declared command: its last part's file name ("worker.mjs"). */
export function programOf(command: readonly string[]): string {
  return path.basename(command.at(-1) ?? '');
}
