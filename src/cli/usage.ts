// The top-level usage (`sor-drills --help`, `sor-drills help`), and the parts every
// command's usage shares: the environment variables and the exit codes of signals.
import { commonFlagsHelp } from './args.js';

// The libpq variables the connection-string parser reads (src/postgres/), as psql does.
const pgVariables = 'PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGSSLROOTCERT PGSSLCERT\nPGSSLKEY PGAPPNAME PGOPTIONS PGCONNECT_TIMEOUT, PGPASSFILE or ~/.pgpass';

/** What each environment variable sor-drills reads does; a command lists the ones it reads. */
const environment = {
  DATABASE_URL: ['DATABASE_URL', 'the target when --db is absent'],
  SOR_WORKER_URL: [
    'SOR_WORKER_URL',
    'a login of the worker role for the tool server and the relay\n(default: on your server, SET ROLE from the --db login; on the embedded\ncluster, a fresh random password set on worker_write at start)',
  ],
  NEON_API_KEY: [
    'NEON_API_KEY, NEON_PROJECT_ID',
    'both set: the migration drill branches on Neon instead of CREATE DATABASE ... TEMPLATE',
  ],
  PG: [
    pgVariables,
    'fill in what the connection string leaves out, as for psql (they never choose the target)',
  ],
  TMPDIR: ['TMPDIR', "where the embedded PostgreSQL's throwaway directory sor-drills-pg-* is made"],
  NO_COLOR: ['NO_COLOR', 'non-empty: no colours in the console (the same as --no-color)'],
  CI: ['CI, CONTINUOUS_INTEGRATION', 'set (and not 0 or false): no console, the drills run headless'],
} as const satisfies Record<string, readonly [string, string]>;

export type EnvironmentEntry = keyof typeof environment;

/** The "Environment" section of a usage: the variables named, with a command's own wording where it differs. */
export function environmentHelp(names: readonly EnvironmentEntry[], own: Partial<Record<EnvironmentEntry, string>> = {}): string {
  const column = 20;
  const lines = ['Environment'];
  for (const name of names) {
    const [label, standard] = environment[name];
    const labels = label.split('\n');
    const text = (own[name] ?? standard).split('\n');
    // A short name has its text beside it; a long one (or a list of them) above it.
    if (labels.length === 1 && label.length + 2 < column) lines.push(`  ${label.padEnd(column - 2)}${text.shift()}`);
    else lines.push(...labels.map((line) => `  ${line}`));
    for (const more of text) lines.push(`${' '.repeat(column)}${more}`);
  }
  return lines.join('\n');
}

/** The exit codes any command can end with besides its own. */
export const signalExitsHelp =
  '70 internal error (please report it)   129 terminal closed   130 interrupted (ctrl+c)\n' +
  '  141 the reader of the output went away   143 terminated (SIGTERM)';

export const usage = `sor-drills: prove a PostgreSQL database is fit to be the system of record for an AI-agent Worker

Usage
  sor-drills [--db URL] [--yes] [--profile FILE] [--keep] [--break KEY]... [--auto [--pace MS] [--out FILE]] [--no-color]
                          the console; headless (as \`sor-drills run\`, with all its flags) when stdin or
                          stdout is not a terminal, under CI, or with --json
  sor-drills run          the nine drills headless: progress on stderr, the bundle on disk
  sor-drills setup        install (or remove) the reference Reconciler schema and seed rows
  sor-drills oracle       the db-state oracle around any command
  sor-drills tools        the Worker's four MCP tools on stdio (for MCP Inspector)
  sor-drills profile      draft a profile of a schema of your own from its catalog (for run --profile)
  sor-drills pack BUNDLE  the bundle and every file it cites in one .tar.gz, for handing in
  sor-drills verify FILE  check a bundle or an archive against the evidence its run wrote (exit 0, or 1)
  sor-drills fleet        beyond the capstone: 100 Workers at once, their history checked, what strained
  sor-drills help [COMMAND]   this help, or a command's (the same as sor-drills COMMAND --help)
  sor-drills --version

Flags of the console
  --db URL          any PostgreSQL 14+ you own (postgres://user:password@host:5432/db?sslmode=require);
                    without it (and without DATABASE_URL) a throwaway embedded PostgreSQL is started
                    and removed on exit
  -y, --yes         consent to writing into a target that is not the embedded one
  --profile FILE    what the target calls each thing the drills need (draft it with sor-drills profile);
                    the target is drilled as it is. Default: the reference schema's names
  --keep            keep the embedded cluster after exit and print how to connect to it
  --break KEY       start that drill with its deliberate break (repeatable)
  --auto            autoplay: the console presses the operator's keys itself
  --pace MS         autoplay's pause between key presses (default 700; 0: as fast as it can);
                    headless, the Worker's pause between tool calls (default 50)
  --out FILE        where the bundle is saved (autoplay saves it there and exits)
  --json            no console: run headless and print the bundle on stdout
${commonFlagsHelp()}
  -v, --version     the version
  Headless only (see sor-drills run --help): --only KEY, --migration FILE, --junit FILE, --gate KEY, --pack,
  --worker-role NAME, --reader-role NAME, --owner-role NAME

${environmentHelp(['DATABASE_URL', 'SOR_WORKER_URL', 'NEON_API_KEY', 'PG', 'TMPDIR', 'NO_COLOR', 'CI'])}

Exit codes
  0 done: release PERMITTED; the oracle: APPROVE
  1 release BLOCKED; the oracle: REJECT; a foreign database refused (no --yes, or n at the prompt)
  2 bad usage   3 target unreachable or lacking a privilege   4 the oracle: ESCALATE; profile: keys left undecided
  70 internal error (please report it)   129 the terminal was closed (SIGHUP)
  130 interrupted: ctrl+c, or the console quit before the decision
  141 the reader of the output went away (| head)   143 terminated (SIGTERM)`;
