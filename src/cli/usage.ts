// The top-level usage text, shared by --help and by the usage errors of every command.
export const usage = `sor-drills: prove a PostgreSQL database is fit to be the system of record for an AI-agent Worker

Usage
  sor-drills [--db URL] [--yes] [--keep] [--break KEY]... [--auto [--pace MS] [--out FILE]]
                                          the console; headless (as \`run\`) when not a terminal, under CI or with --json
  sor-drills run [--db URL] [--yes] [--break KEY]... [--only KEY]... [--out FILE] [--json] [--junit FILE] [--gate KEY]
                                          the nine drills headless: progress on stderr, the bundle on disk
  sor-drills setup [--db URL] [--yes] [--down] [--keep]
                                          install (or remove) the reference Reconciler schema and seed rows
  sor-drills oracle --db URL --card ID --tables a,b [--expect SPEC]... -- COMMAND [ARGS...]
                                          the db-state oracle around any command
  sor-drills tools --db URL               the Worker's four MCP tools on stdio (for MCP Inspector)
  sor-drills --help | --version

Target
  --db URL     any PostgreSQL 14+ you own (postgres://user:password@host:5432/db?sslmode=require);
               DATABASE_URL is used when --db is absent; without either, a throwaway embedded
               PostgreSQL is started and removed on exit
  --keep       keep the embedded cluster after exit and print how to connect to it
  --yes        consent to writing into a database that holds tables of its own

Each command has --help.

Exit codes
  0 done / PERMITTED   1 BLOCKED or refused   2 bad usage   3 target unreachable or lacking a privilege
  4 ESCALATE (oracle)   70 internal error   130 interrupted (ctrl+c, or quit before the decision)`;
