// `sor-drills tools`: the Worker's four MCP tools (claim, write, queue, read)
// served on stdio, so MCP Inspector or any MCP client can connect:
//   npx @modelcontextprotocol/inspector --cli node dist/cli.js tools --db URL --method tools/list
// While serving, stdout is the protocol channel: nothing else is written to it; logs go to stderr.
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { integerFlag, requiredTargetString, roleNameFlag } from './input-checks.js';
import { type GivenProfile, readGivenProfile } from './profile-file.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { exitCodes } from '../util/exit-codes.js';
import { breakNames, parseBreaks, type ToolBreaks } from '../reconciler/breaks.js';
import { defaultRoles } from '../postgres/roles.js';
import { errorMessage } from '../postgres/errors.js';
import { UsageError, maskUrl } from '../postgres/url.js';

export const toolsFlags = {
  db: { type: 'string' },
  'worker-role': { type: 'string' },
  profile: { type: 'string' },
  'claim-hold-ms': { type: 'string' },
  'lease-ms': { type: 'string' },
  break: { type: 'string' },
} as const;

export const toolsUsage = `Usage: sor-drills tools [--db URL] [--profile FILE | --worker-role NAME] [--claim-hold-ms N] [--lease-ms N] [--break NAMES]

Serves the Worker's MCP tools (claim, write, queue, read) on stdio, connected to the target as the
worker role: when the URL's user is another role, every connection runs SET ROLE worker_write first,
so the tools can do exactly what the Worker's tool server can. stdout is the protocol; logs go to stderr.

Flags
  --db URL           the target (default: DATABASE_URL); it must hold the Reconciler schema
  --profile FILE     what the target calls each thing the tools need (draft it with sor-drills profile);
                     its roles.worker is the role the tools act as. Default: the reference schema's names
  --worker-role NAME the role the tools act as (default ${defaultRoles.worker}; with --profile: its "roles")
  --claim-hold-ms N  how long claim holds its row lock before committing (default 0)
  --lease-ms N       claim lease in milliseconds (default 60000)
  --break NAMES      deliberate breaks, comma-separated, for trying a drill's failure by hand:
                     ${breakNames.join(', ')}
${commonFlagsHelp(21)}

${environmentHelp(['DATABASE_URL', 'PG'])}

Exit codes
  0 the client went away   2 bad usage   3 target unreachable or lacking a privilege
  ${signalExitsHelp}

Try it with MCP Inspector:
  npx @modelcontextprotocol/inspector --cli node dist/cli.js tools --db URL --method tools/list`;

function breaksOf(value: unknown): ToolBreaks {
  try {
    return parseBreaks(value as string | undefined);
  } catch (error) {
    throw new UsageError(`--break: ${errorMessage(error)}`);
  }
}

/** The worker role and the profile: from --profile (its roles.worker) or --worker-role, never both. */
function roleAndProfile(values: Record<string, unknown>): { role: string; profile?: GivenProfile } {
  const role = roleNameFlag('--worker-role', values['worker-role'], defaultRoles.worker);
  if (values.profile === undefined) return { role };
  if (values['worker-role'] !== undefined) {
    throw new UsageError(`--worker-role and --profile both name a role: set the worker role in the profile's "roles"`);
  }
  const profile = readGivenProfile(String(values.profile));
  return { role: profile.profile.roles.worker, profile };
}

/** Every flag and the target, checked before a connection opens. */
function checkToolsInput(values: Record<string, unknown>) {
  return {
    url: requiredTargetString(values.db, 'tools needs a target: --db URL (or DATABASE_URL)'),
    ...roleAndProfile(values),
    claimHoldMs: integerFlag('--claim-hold-ms', values['claim-hold-ms'], { fallback: 0 }),
    leaseMs: integerFlag('--lease-ms', values['lease-ms'], { fallback: 60_000, min: 1 }),
    breaks: breaksOf(values.break),
  };
}

export async function toolsCommand(args: string[]): Promise<number> {
  const { values } = parse(args, toolsFlags);
  if (values.help) {
    // Asked for by a person, not a protocol session: on stdout like every command's help.
    await printHelp(toolsUsage);
    return exitCodes.ok;
  }
  const { url, role, profile, claimHoldMs, leaseMs, breaks } = checkToolsInput(values);
  // Loaded once the input is known to be good: bad input is refused without loading pg or the MCP SDK.
  const { StdioServerTransport } = await import('@modelcontextprotocol/sdk/server/stdio.js');
  const { openWorkerPool } = await import('../reconciler/db.js');
  const { fitProfileOnPool, profileSetting } = await import('../reconciler/actions.js');
  const { createToolServer } = await import('../reconciler/tools.js');
  const log = (event: string, fields: Record<string, unknown>) =>
    process.stderr.write(`${JSON.stringify({ event, ...fields })}\n`);

  const pool = await openWorkerPool(url, {
    role,
    max: 4,
    applicationName: 'sor-tools-stdio',
    onIdleError: (error) => log('idle_connection_lost', { error: errorMessage(error) }),
  });
  try {
    // The same profile the tool server would be handed as SOR_PROFILE; a misfit is a ProfileError (exit 2).
    const setting = profile ? { profile: profile.profile, source: profile.source, given: true } : profileSetting({}, role);
    const server = createToolServer({
      pool,
      profile: await fitProfileOnPool(pool, setting),
      breaks,
      claimHoldMs,
      leaseMs,
      log,
    });
    const transport = new StdioServerTransport();
    const closed = new Promise<void>((resolve) => {
      transport.onclose = () => resolve();
      // The transport does not notice the client going away: stdin ending is that.
      process.stdin.once('end', () => resolve());
      process.stdin.once('close', () => resolve());
    });
    await server.connect(transport);
    log('serving', { transport: 'stdio', target: maskUrl(url), role, profile: setting.source });
    await closed;
    await server.close().catch(() => {});
    return exitCodes.ok;
  } finally {
    await pool.end().catch(() => {});
  }
}
