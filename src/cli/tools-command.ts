// `sor-drills tools`: the Worker's four MCP tools (claim, write, queue, read)
// served on stdio, so MCP Inspector or any MCP client can connect:
//   npx @modelcontextprotocol/inspector --cli node dist/cli.js tools --db URL --method tools/list
// stdout is the protocol channel: nothing else is ever written to it; logs go to stderr.
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { parse } from './args.js';
import { exitCodes } from '../util/exit-codes.js';
import { openWorkerPool } from '../reconciler/db.js';
import { createToolServer } from '../reconciler/tools.js';
import { parseBreaks } from '../reconciler/actions.js';
import { defaultRoles } from '../postgres/roles.js';
import { errorMessage } from '../postgres/errors.js';
import { UsageError, maskUrl, parseUrl } from '../postgres/url.js';

const usage = `Usage: sor-drills tools [--db URL] [--worker-role NAME] [--claim-hold-ms N] [--lease-ms N]

Serves the Worker's MCP tools (claim, write, queue, read) on stdio, connected to the target as the
worker role: when the URL's user is another role, every connection runs SET ROLE worker_write first,
so the tools can do exactly what the Worker's tool server can. Logs go to stderr.
  --db URL           the target (DATABASE_URL when absent); it must hold the Reconciler schema
  --worker-role NAME the role the tools act as (default ${defaultRoles.worker})
  --claim-hold-ms N  how long claim holds its row lock before committing (default 0)
  --lease-ms N       claim lease (default 60000)

Try it with MCP Inspector:
  npx @modelcontextprotocol/inspector --cli node dist/cli.js tools --db URL --method tools/list`;

function nonNegative(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) throw new UsageError(`${flag} takes a whole number of milliseconds\n\n${usage}`);
  return number;
}

export async function toolsCommand(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      db: { type: 'string' },
      'worker-role': { type: 'string' },
      'claim-hold-ms': { type: 'string' },
      'lease-ms': { type: 'string' },
      // Hidden: a deliberate break for trying the boundary drill's failure by hand.
      break: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (values.help) {
    // --help is not a protocol session: usage on stderr keeps stdout clean for a client that asked.
    process.stderr.write(`${usage}\n`);
    return exitCodes.ok;
  }
  const url = (values.db as string | undefined) ?? process.env.DATABASE_URL;
  if (!url) throw new UsageError(`tools needs a target: --db URL (or DATABASE_URL)\n\n${usage}`);
  parseUrl(url);
  const role = (values['worker-role'] as string | undefined) ?? defaultRoles.worker;
  const log = (event: string, fields: Record<string, unknown>) =>
    process.stderr.write(`${JSON.stringify({ event, ...fields })}\n`);

  const pool = await openWorkerPool(url, {
    role,
    max: 4,
    applicationName: 'sor-tools-stdio',
    onIdleError: (error) => log('idle_connection_lost', { error: errorMessage(error) }),
  });
  try {
    const server = createToolServer({
      pool,
      breaks: parseBreaks(values.break as string | undefined),
      claimHoldMs: nonNegative(values['claim-hold-ms'], '--claim-hold-ms', 0),
      leaseMs: nonNegative(values['lease-ms'], '--lease-ms', 60_000),
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
    log('serving', { transport: 'stdio', target: maskUrl(url), role });
    await closed;
    await server.close().catch(() => {});
    return exitCodes.ok;
  } finally {
    await pool.end().catch(() => {});
  }
}
