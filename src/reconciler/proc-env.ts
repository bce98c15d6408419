// A running process's environment and command line, read from the OS
// (/proc/<pid>/environ and /proc/<pid>/cmdline). What a process was exec'd with
// is there whatever it says about itself, so this is how the boundary drill
// checks that a Worker holds no database credentials. Only variable names leave
// this module, never their values.
import { readFile } from 'node:fs/promises';
import { credentialVariables, parseEnviron } from './env.js';

export interface EnvironmentRead {
  pid: number;
  /** Every variable name the process was started with (never the values). */
  names: string[];
  /** DATABASE_URL and PG* names. */
  credentials: string[];
  /** Names (of any kind) whose value holds a postgres:// URL. */
  urlValued: string[];
}

/** Reads a process's environment from the OS and keeps only what may be shown. */
export async function readProcessEnvironment(pid: number): Promise<EnvironmentRead> {
  const env = parseEnviron(await readFile(`/proc/${pid}/environ`, 'utf8'));
  const names = Object.keys(env).sort();
  return {
    pid,
    names,
    credentials: credentialVariables(env).sort(),
    urlValued: names.filter((name) => /postgres(ql)?:\/\//i.test(env[name] ?? '')),
  };
}

/** A process's command line, its arguments joined by spaces (to check which program a pid is). */
export async function readProcessCommandLine(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
}
