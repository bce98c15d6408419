// `sor-drills profile`: drafts a profile from the target's catalog (read only) and
// writes it to --out or stdout. On stderr, one line per key: what it mapped and from
// what evidence, what it left out, and what it could not decide. An undecided key is
// written as a "TODO: ..." string, which a run refuses, naming it, until it is edited.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { requiredTargetString, writableFile } from './input-checks.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { exitCodes } from '../util/exit-codes.js';
import { UsageError } from '../postgres/url.js';

export const profileFlags = {
  db: { type: 'string' },
  out: { type: 'string' },
  force: { type: 'boolean' },
  schema: { type: 'string' },
} as const;

export const profileUsage = `Usage: sor-drills profile [--db URL] [--out FILE [--force]] [--schema NAME]

Drafts a profile (what the target calls each thing the drills need) from the target's catalog:
foreign keys, unique keys, CHECK constraints (status values), row-level policies (the session
setting), triggers (append-only), grants and owners (the roles). Read only: nothing is written
to the target. On stderr, one line per key: what it mapped and from what evidence, what it left
out (an optional key with no column), and what it could not decide. An undecided key is
written as "TODO: ..."; sor-drills run --profile FILE refuses the file, naming the key, until
each TODO is edited.

Flags
  --db URL          the target (default: DATABASE_URL)
  --out FILE        write the profile there (default: stdout)
  --force           overwrite --out when it already exists (refused without it)
  --schema NAME     the schema that holds the tables (default public)
${commonFlagsHelp()}

${environmentHelp(['DATABASE_URL', 'PG'])}

Exit codes
  0 drafted, every key decided   4 drafted, with keys left undecided (TODO): edit them
  2 bad usage, or --out exists without --force   3 target unreachable or lacking a privilege
  ${signalExitsHelp}`;

function schemaFlag(value: unknown): string {
  if (value === undefined) return 'public';
  const name = String(value);
  if (name === '' || Buffer.byteLength(name) > 63) throw new UsageError(`--schema ${JSON.stringify(name)}: expected a schema name of 1 to 63 bytes`);
  return name;
}

/** Every flag and the target, checked before a connection opens. */
function checkProfileInput(values: Record<string, unknown>) {
  const url = requiredTargetString(values.db, 'profile needs a target: --db URL (or DATABASE_URL)');
  const schema = schemaFlag(values.schema);
  if (values.force && values.out === undefined) throw new UsageError('--force overwrites --out FILE; without --out the profile goes to stdout');
  let out: string | undefined;
  if (values.out !== undefined) {
    out = writableFile('--out', String(values.out));
    if (!values.force && existsSync(out)) {
      throw new UsageError(`--out ${String(values.out)} already exists; add --force to overwrite it, or name another file`);
    }
  }
  return { url, schema, out, shownOut: values.out === undefined ? undefined : String(values.out) };
}

const write = (line: string) => process.stderr.write(`${line}\n`);

export async function profileCommand(args: string[]): Promise<number> {
  const { values } = parse(args, profileFlags);
  if (values.help) {
    await printHelp(profileUsage);
    return exitCodes.ok;
  }
  const input = checkProfileInput(values);
  const { resolveTarget } = await import('../postgres/target.js');
  const { withPgClient } = await import('../postgres/pg.js');
  const { draftProfile } = await import('../postgres/profile/draft/index.js');
  const { findTodos } = await import('../postgres/profile/load.js');
  const target = await resolveTarget({ db: input.url });
  let draft;
  try {
    write(`target: ${target.display} (schema ${input.schema}, read only)`);
    draft = await withPgClient(
      target.url,
      async (client) => {
        // The draft only reads; a read-only session makes sure of it.
        await client.query('set session characteristics as transaction read only');
        return draftProfile(client, { schema: input.schema });
      },
      { applicationName: 'sor-drills-profile' },
    );
  } finally {
    await target.close();
  }

  for (const line of draft.mapped) write(`mapped     ${line.key} = ${JSON.stringify(line.value)}  (${line.evidence})`);
  for (const line of draft.leftOut) write(`left out   ${line.key}  (${line.why})`);
  for (const line of draft.undecided) write(`undecided  ${line.key}  (${line.why})`);

  // The published schema beside the package, as a path from where the profile lands: an editor resolves it.
  const schemaFile = fileURLToPath(new URL('../../profile.schema.json', import.meta.url));
  const $schema = path.relative(input.out ? path.dirname(input.out) : process.cwd(), schemaFile).split(path.sep).join('/');
  const text = `${JSON.stringify({ $schema, ...draft.profile }, null, 2)}\n`;
  if (input.out) {
    const { writeFileAtomic } = await import('../util/fs.js');
    await writeFileAtomic(input.out, text);
  } else {
    await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
  }
  const where = input.shownOut ? `written to ${input.shownOut}` : 'printed on stdout';
  const counts = `${draft.mapped.length} keys mapped, ${draft.leftOut.length} left out`;
  if (draft.undecided.length === 0) {
    write(`profile ${where}: ${counts}; complete: nothing left undecided`);
    return exitCodes.ok;
  }
  const undecided = draft.undecided.length === 1 ? '1 key undecided' : `${draft.undecided.length} keys undecided`;
  const file = input.shownOut ?? 'the profile';
  // A draft without a TODO is undecided only when the run's own checks refuse it (the lines above say why).
  const edit = findTodos(draft.profile).length > 0 ? `edit each TODO in ${file}` : `fix each key named above in ${file}`;
  write(`profile ${where}: ${counts}; ${undecided}: ${edit}; a run refuses the profile until then`);
  return exitCodes.escalate;
}
