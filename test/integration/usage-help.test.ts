// Help as people expect it: `sor-drills help <command>` is `sor-drills <command> --help`;
// every --help goes to stdout (exit 0) and lists every flag the command takes and the
// environment variables it reads; a usage error is one line pointing at that help;
// --no-color does what NO_COLOR does; the README's exit-code table lists every code.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { hasTmux, launch, type Terminal } from '../e2e/tmux.js';
import { commonFlags } from '../../src/cli/args.js';
import { runFlags } from '../../src/cli/run-flags.js';
import { defaultFlags } from '../../src/cli/default-command.js';
import { setupFlags } from '../../src/cli/setup-command.js';
import { oracleFlags } from '../../src/cli/oracle-command.js';
import { toolsFlags } from '../../src/cli/tools-command.js';
import { profileFlags } from '../../src/cli/profile-command.js';
import { packFlags } from '../../src/cli/pack-command.js';
import { verifyFlags } from '../../src/cli/verify-command.js';
import { fleetFlags } from '../../src/cli/fleet-command.js';
import { exitCodes } from '../../src/util/exit-codes.js';

// The libpq variables src/postgres/ reads to fill in a connection string.
const pgVariables = [
  'PGHOST', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE', 'PGSSLMODE', 'PGSSLROOTCERT', 'PGSSLCERT', 'PGSSLKEY',
  'PGAPPNAME', 'PGOPTIONS', 'PGCONNECT_TIMEOUT', 'PGPASSFILE', '.pgpass',
];

/** Each command: the flags it parses, and the environment it reads (read from the code: process.env uses). */
const commands = [
  {
    name: '',
    flags: defaultFlags,
    environment: ['DATABASE_URL', 'SOR_WORKER_URL', 'NEON_API_KEY', 'NEON_PROJECT_ID', 'NO_COLOR', 'CI', 'CONTINUOUS_INTEGRATION', 'TMPDIR', ...pgVariables],
  },
  { name: 'run', flags: runFlags, environment: ['DATABASE_URL', 'SOR_WORKER_URL', 'NEON_API_KEY', 'NEON_PROJECT_ID', 'TMPDIR', ...pgVariables] },
  { name: 'setup', flags: setupFlags, environment: ['DATABASE_URL', 'TMPDIR', ...pgVariables] },
  { name: 'oracle', flags: oracleFlags, environment: ['DATABASE_URL', 'TMPDIR', ...pgVariables] },
  { name: 'tools', flags: toolsFlags, environment: ['DATABASE_URL', ...pgVariables] },
  { name: 'profile', flags: profileFlags, environment: ['DATABASE_URL', ...pgVariables] },
  { name: 'pack', flags: packFlags, environment: ['TMPDIR'] },
  { name: 'verify', flags: verifyFlags, environment: ['TMPDIR'] },
  { name: 'fleet', flags: fleetFlags, environment: ['DATABASE_URL', 'SOR_WORKER_URL', 'TMPDIR', ...pgVariables] },
];

const args = (name: string, ...rest: string[]) => (name ? [name, ...rest] : rest);
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe.each(commands)('sor-drills $name --help', ({ name, flags, environment }) => {
  let help = '';
  beforeAll(async () => {
    const result = await runCli(args(name, '--help'));
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    help = result.stdout;
  });

  it('goes to stdout, and `help` and `-h` say the same word for word', async () => {
    expect(help).toMatch(/Usage/);
    const viaHelp = await runCli(['help', ...(name ? [name] : [])]);
    expect(viaHelp).toMatchObject({ exitCode: 0, stdout: help, stderr: '' });
    const short = await runCli(args(name, '-h'));
    expect(short).toMatchObject({ exitCode: 0, stdout: help, stderr: '' });
  });

  it('lists every flag the command takes', () => {
    for (const flag of Object.keys({ ...commonFlags, ...flags })) {
      expect(help, `--${flag}`).toMatch(new RegExp(`--${escape(flag)}(?![\\w-])`));
    }
  });

  it('lists the environment variables it reads', () => {
    for (const variable of environment) expect(help, variable).toMatch(new RegExp(`(?<![\\w])${escape(variable)}(?![\\w])`));
  });

  it('takes --no-color like every command', async () => {
    const result = await runCli(args(name, '--no-color', '--help'));
    expect(result).toMatchObject({ exitCode: 0, stdout: help });
  });
});

describe('usage errors', () => {
  it('one line naming the mistake and the help to read, never the whole usage', async () => {
    for (const [command, line] of [
      [['setup', '--frobnicate'], 'sor-drills: unknown flag --frobnicate; see sor-drills setup --help'],
      [['run', '--json=yes'], 'sor-drills: --json takes no value; see sor-drills run --help'],
      [['--frobnicate'], 'sor-drills: unknown flag --frobnicate; see sor-drills --help'],
      [['frobnicate'], 'sor-drills: unknown command: frobnicate (the commands are setup, run, oracle, tools, profile, pack, verify, fleet); see sor-drills --help'],
      [['help', 'frobnicate'], 'sor-drills: unknown command: frobnicate (the commands are setup, run, oracle, tools, profile, pack, verify, fleet); see sor-drills --help'],
      [['help', 'run', 'setup'], 'sor-drills: help takes one command, not "setup"; see sor-drills --help'],
    ] as const) {
      const result = await runCli([...command]);
      expect(result.exitCode, command.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(line);
    }
  });
});

describe('exit codes', () => {
  it("the README's table lists every code the program can exit with, and nothing else", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = /^## Exit codes\n([\s\S]*?)\n## /m.exec(readme)?.[1] ?? '';
    const listed = [...section.matchAll(/^\| (\d+) \|/gm)].map((match) => Number(match[1]));
    expect(listed).toEqual(Object.values(exitCodes).sort((a, b) => a - b));
  });

  it('the top-level help names every code too', async () => {
    const { stdout } = await runCli(['--help']);
    const section = stdout.slice(stdout.indexOf('Exit codes'));
    for (const code of Object.values(exitCodes)) expect(section).toMatch(new RegExp(`(?<!\\d)${code} `));
  });
});

describe('--no-color in the console: the same as NO_COLOR', () => {
  // The console's first frame, waiting on a target that never answers: drawn, and nothing started.
  let silent: Server;
  const sockets: Socket[] = [];
  let url = '';
  let terminal: Terminal | undefined;
  beforeAll(async () => {
    silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    url = `postgres://u:pw@127.0.0.1:${(silent.address() as { port: number }).port}/db`;
  });
  afterAll(async () => {
    terminal?.kill();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  /** The SGR codes of the first frame (colours are 30-37, 38;..., 90-97 and their backgrounds). */
  const isColour = (code: string) => /^(3[0-8]|4[0-8]|9[0-7]|10[0-7])$/.test(code);
  /**
   * The SGR codes on screen once the first frame is up. With `untilColour` the screen is read
   * again, up to a deadline, until a colour shows: under load one read had none (the cause was
   * not established; a later frame of the same screen has them). The no-colour cases read once.
   */
  async function firstFrameStyles(extraArgs: string[], env: Record<string, string> = {}, untilColour = false): Promise<string[]> {
    terminal = launch({ args: ['--db', url, ...extraArgs], env, columns: 100, rows: 30 });
    await terminal.waitFor((screen) => screen.includes('connecting to the target'), 'the first frame', 20_000);
    const codes = () =>
      [...execFileSync('tmux', ['capture-pane', '-p', '-e', '-t', terminal!.name], { encoding: 'utf8' }).matchAll(/\u001b\[([\d;]*)m/g)].flatMap((match) =>
        (match[1] ?? '').split(';'),
      );
    let seen = codes();
    const deadline = Date.now() + 10_000;
    while (untilColour && !seen.some(isColour) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      seen = codes();
    }
    terminal.kill();
    terminal = undefined;
    return seen;
  }

  it.skipIf(!hasTmux())('colours by default; none with NO_COLOR=1; none with --no-color', async () => {
    expect((await firstFrameStyles([], {}, true)).some(isColour)).toBe(true);
    expect((await firstFrameStyles([], { NO_COLOR: '1' })).filter(isColour)).toEqual([]);
    expect((await firstFrameStyles(['--no-color'])).filter(isColour)).toEqual([]);
  }, 90_000);
});
