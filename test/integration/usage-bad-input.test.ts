// Bad input is refused before any work starts: exit 2, one line on stderr naming
// the flag (or variable) and where to read the usage, and nothing started. What
// "nothing started" means here, checked for every case:
// - no embedded cluster: the child's TMPDIR is a fresh directory watched with
//   inotify (fs.watch) for the whole run, so even a cluster created and removed
//   again before the exit would be seen (sor-drills-pg-*), and no oracle spool;
// - no connection: the URL targets point at a loopback listener that counts the
//   connections it accepts;
// - no command: the oracle's command writes a marker file if it ever runs;
// - nothing written where the run writes (evidence/, .agent-history/).
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, watch, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, runCli } from '../helpers/cli.js';
import { scratchDir } from '../helpers/scratch.js';

let listener: Server;
let connections = 0;
const sockets: Socket[] = [];
let target = '';
let files = '';
let aFile = '';

beforeAll(async () => {
  listener = createServer((socket) => {
    connections += 1;
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  target = `postgres://u:Secr3t-pw@127.0.0.1:${(listener.address() as { port: number }).port}/db`;
  files = scratchDir('bad-input-files-');
  aFile = path.join(files, 'a-file');
  writeFileSync(aFile, 'not a directory');
  mkdirSync(path.join(files, 'a-dir'));
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => listener.close(() => resolve()));
});

interface Case {
  args: string[];
  /** What the one line must name (the flag or the variable). */
  names: RegExp;
  env?: Record<string, string>;
}

/** Runs the CLI in a fresh cwd and TMPDIR and returns what it printed and everything it started. */
async function attempt(input: Case) {
  const tmp = scratchDir('bad-input-tmp-');
  const cwd = scratchDir('bad-input-cwd-');
  const marker = path.join(cwd, 'command-ran');
  const args = input.args.map((arg) => arg.replace('{target}', target).replace('{file}', aFile).replace('{dir}', path.join(files, 'a-dir')).replace('{marker}', marker));
  const created: string[] = [];
  const watcher = watch(tmp, (_event, name) => created.push(String(name)));
  const before = connections;
  try {
    const result = await runCli(args, { cwd, env: { TMPDIR: tmp, ...(input.env ?? {}) } });
    return { ...result, args, tmp, cwd, marker, created, connected: connections - before };
  } finally {
    watcher.close();
  }
}

function expectRefused(outcome: Awaited<ReturnType<typeof attempt>>, input: Case, command: string) {
  const context = `${outcome.args.join(' ')}\n${outcome.stderr}`;
  expect(outcome.exitCode, context).toBe(2);
  const lines = outcome.stderr.trimEnd().split('\n');
  expect(lines, context).toHaveLength(1);
  expect(lines[0], context).toMatch(/^sor-drills: /);
  expect(lines[0], context).toMatch(input.names);
  expect(lines[0], context).toMatch(new RegExp(`; see sor-drills ${command ? `${command} ` : ''}--help$`));
  expect(lines[0], context).not.toContain('Secr3t-pw');
  expect(outcome.stdout, context).toBe('');
  // Nothing started.
  expect(outcome.created.filter((name) => name.startsWith('sor-drills-pg-') || name.startsWith('sor-oracle-')), context).toEqual([]);
  expect(readdirSync(outcome.tmp), context).toEqual([]);
  expect(outcome.connected, context).toBe(0);
  expect(existsSync(outcome.marker), context).toBe(false);
  expect(readdirSync(outcome.cwd), context).toEqual([]);
}

const runCases: Case[] = [
  { args: ['--migration', '/no/such/migration.sql'], names: /^sor-drills: --migration \/no\/such\/migration\.sql: no such file/ },
  { args: ['--db', '{target}', '--yes', '--migration', '{dir}'], names: /--migration .*: is a directory/ },
  { args: ['--db', '{target}', '--yes', '--out', '{file}/bundle.md'], names: /--out .*a-file is a file, not a directory/ },
  { args: ['--out', '{dir}'], names: /--out .*: is a directory; name a file/ },
  { args: ['--db', '{target}', '--yes', '--junit', '{file}/junit.xml'], names: /--junit .*a-file is a file, not a directory/ },
  { args: ['--db', '{target}', '--yes', '--out', 'same.xml', '--junit', 'same.xml'], names: /--out and --junit both name/ },
  { args: ['--pace', 'abc'], names: /--pace "abc": expected a whole number of milliseconds/ },
  { args: ['--db', '{target}', '--yes', '--pace=-1'], names: /--pace "-1": expected a whole number/ },
  { args: ['--db', '{target}', '--yes', '--pace', '1.5'], names: /--pace "1.5"/ },
  { args: ['--db', '{target}', '--yes', '--break', 'no_such_drill'], names: /--break no_such_drill: not a drill; the keys are migration_review, / },
  { args: ['--db', '{target}', '--yes', '--only', 'nope'], names: /--only nope: not a drill/ },
  { args: ['--db', '{target}', '--yes', '--gate', 'nope'], names: /--gate nope: not a drill/ },
  { args: ['--db', 'not a url'], names: /--db: / },
  { args: ['--db', ''], names: /--db is empty/ },
  { args: [], env: { DATABASE_URL: 'mysql://u:Secr3t-pw@h/db' }, names: /DATABASE_URL: / },
  { args: ['--db', '{target}', '--yes'], env: { SOR_WORKER_URL: 'mysql://w@h/db' }, names: /SOR_WORKER_URL: / },
  { args: ['--db', '{target}', '--yes', '--worker-role', ''], names: /--worker-role "": expected a role name/ },
  { args: ['--db', '{target}', '--yes', '--frobnicate'], names: /unknown flag --frobnicate/ },
  { args: ['--db', '{target}', '--out'], names: /--out needs a value/ },
  { args: ['--db', '{target}', '--yes', '--keep'], names: /--keep keeps the embedded cluster, and this target is given by URL/ },
];

describe('sor-drills run: bad input', () => {
  it.each(runCases)('run $args', async (input) => {
    expectRefused(await attempt({ ...input, args: ['run', ...input.args] }), input, 'run');
  });
});

describe('sor-drills (the default command, in a pipe: headless): bad input', () => {
  const cases: Case[] = [...runCases, { args: ['--auto'], names: /--auto needs a terminal/ }];
  it.each(cases)('sor-drills $args', async (input) => {
    expectRefused(await attempt(input), input, '');
  });
});

describe('sor-drills setup: bad input', () => {
  const cases: Case[] = [
    { args: ['--db', 'not a url'], names: /--db: / },
    { args: ['--db', ''], names: /--db is empty/ },
    { args: [], env: { DATABASE_URL: 'http://u:Secr3t-pw@h/db' }, names: /DATABASE_URL: / },
    { args: ['--frobnicate'], names: /unknown flag --frobnicate/ },
    { args: ['--yes=1'], names: /--yes takes no value/ },
    { args: ['extra'], names: /unexpected argument "extra"/ },
    { args: ['--db', '{target}', '--keep'], names: /--keep keeps the embedded cluster/ },
  ];
  it.each(cases)('setup $args', async (input) => {
    expectRefused(await attempt({ ...input, args: ['setup', ...input.args] }), input, 'setup');
  });
});

describe('sor-drills oracle: bad input (the command never runs)', () => {
  const command = ['--', process.execPath, '-e', 'require("fs").writeFileSync(process.argv[1], "ran")', '{marker}'];
  const base = ['--db', '{target}', '--card', 'bad-input', '--tables', 'widgets'];
  const cases: Case[] = [
    { args: [...base, '--dir', '{file}/evidence', ...command], names: /--dir .*a-file is a file, not a directory/ },
    { args: ['--db', '{target}', '--card', 'a b', '--tables', 'widgets', ...command], names: /--card: bad card id "a b"/ },
    { args: [...base, '--expect', 'widgets:?', ...command], names: /--expect: bad expectation "widgets:\?"/ },
    { args: [...base, '--timeout', '0', ...command], names: /--timeout "0": expected a number of seconds above 0/ },
    { args: [...base, '--stream-threshold', '0', ...command], names: /--stream-threshold "0": expected a whole number of rows from 1/ },
    { args: [...base, '--settle', 'select 1', '--settle-for', 'soon', ...command], names: /--settle-for "soon"/ },
    { args: [...base, '--settle-timeout', '5', ...command], names: /--settle-timeout needs --settle/ },
    { args: [...base, '--volatile', 'a b', ...command], names: /--volatile: bad volatile field/ },
    { args: [...base, '--key', 'widgets', ...command], names: /--key widgets: expected table=col/ },
    { args: ['--db', 'not a url', '--card', 'x', '--tables', 'widgets', ...command], names: /--db: / },
    { args: ['--card', 'x', '--tables', 'widgets', ...command], names: /--db URL \(or DATABASE_URL\)/ },
    { args: [...base], names: /name the command to run after --/ },
    { args: ['--db', '{target}', '--tables', 'widgets', ...command], names: /--card ID/ },
  ];
  it.each(cases)('oracle $args', async (input) => {
    expectRefused(await attempt({ ...input, args: ['oracle', ...input.args] }), input, 'oracle');
  });
});

describe('sor-drills tools: bad input (no connection is opened)', () => {
  const cases: Case[] = [
    { args: ['--db', '{target}', '--lease-ms=-5'], names: /--lease-ms "-5": expected a whole number of milliseconds from 1/ },
    { args: ['--db', '{target}', '--lease-ms', '0'], names: /--lease-ms "0"/ },
    { args: ['--db', '{target}', '--claim-hold-ms', 'x'], names: /--claim-hold-ms "x"/ },
    { args: ['--db', '{target}', '--break', 'noSuchBreak'], names: /--break: unknown break noSuchBreak/ },
    { args: ['--db', '{target}', '--worker-role', ''], names: /--worker-role ""/ },
    { args: ['--db', 'not a url'], names: /--db: / },
    { args: [], names: /tools needs a target: --db URL \(or DATABASE_URL\)/ },
  ];
  it.each(cases)('tools $args', async (input) => {
    expectRefused(await attempt({ ...input, args: ['tools', ...input.args] }), input, 'tools');
  });
});

describe('the console (stdin and stdout a terminal): bad input is refused before the first frame', () => {
  const hasScript = (() => {
    try {
      execFileSync('script', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasScript).each([
    { args: ['--pace', 'abc'], names: /--pace "abc"/ },
    { args: ['--break', 'nope'], names: /--break nope: not a drill/ },
    { args: ['--out', '{dir}'], names: /--out .*: is a directory/ },
    { args: ['--migration', 'm.sql'], names: /--migration is for the headless run: use sor-drills run --migration/ },
    { args: ['--db', 'not a url'], names: /--db: / },
  ])('sor-drills $args at a terminal', async (input) => {
    // script(1) gives the CLI a pseudo-terminal for stdin and stdout; -e returns its exit code.
    const shell = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
    const tmp = scratchDir('bad-input-tty-');
    const created: string[] = [];
    const watcher = watch(tmp, (_event, name) => created.push(String(name)));
    const before = connections;
    try {
      const args = input.args.map((arg) => arg.replace('{dir}', path.join(files, 'a-dir')));
      const command = ['node', cliPath, ...args].map(shell).join(' ');
      const result = await execa('script', ['-qefc', command, '/dev/null'], {
        reject: false,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TMPDIR: tmp, TERM: 'xterm-256color' },
        extendEnv: false,
        stdin: 'ignore',
      });
      const text = String(result.stdout).replace(/\r/g, '').trim();
      expect(result.exitCode, text).toBe(2);
      expect(text.split('\n'), text).toHaveLength(1);
      expect(text).toMatch(input.names);
      expect(text).toMatch(/; see sor-drills --help$/);
      // No frame was drawn (Ink would have hidden the cursor first), nothing was started.
      expect(text).not.toContain('\u001b[?25l');
      expect(created).toEqual([]);
      expect(connections - before).toBe(0);
    } finally {
      watcher.close();
    }
  });
});
