// Process entry: the tool server. The only process of the Worker's side that
// holds database credentials. Serves the four tools (tools.ts) over MCP's
// Streamable HTTP transport on loopback, stateless (a fresh MCP server per
// request: a restarted Worker needs no session), and refuses every request
// without `Authorization: Bearer <token>` with 401.
//
// Environment (set by startToolServer in system.ts; nothing is inherited):
//   SOR_TOOLS_DATABASE_URL  how to connect (acts as SOR_WORKER_ROLE, default worker_write)
//   SOR_TOOLS_TOKEN         the bearer token the Worker must present
//   SOR_TOOLS_PORT          loopback port (0: any free one)
//   SOR_TOOLS_BREAKS        comma-separated deliberate breaks (actions.ts ToolBreaks)
//   SOR_CLAIM_HOLD_MS       default claim lock hold, ms (0); SIGUSR2 ends every hold in progress
//   SOR_LEASE_MS            claim lease, ms (60000)
//   SOR_TOOLS_POOL_MAX      database connections the server opens at start and keeps (6)
//   SOR_TOOLS_TRANSACTION_POOLING  1: the URL is a transaction pooler (PgBouncer): every call is
//                           one transaction, role SET LOCAL, Worker lock transaction-scoped (journal.ts)
//   SOR_PROFILE             the target's profile as JSON (absent: the reference profile with
//                           SOR_WORKER_ROLE as its worker role); checked on the target at start,
//                           and a misfit ends the server with one line naming the first problem
//
// stdout, one JSON line each: listening {url, port, role, breaks}; claim_locked
// {worker, run_id, transaction_id}; call {worker, run_id, turn, call, tool, status, ...};
// unauthorized {method, path}; holds_released {count} (on SIGUSR2); stopping {signal}.
// Errors go to stderr.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { fitProfileOnPool, parseBreaks, profileSetting } from './actions.js';
import { openWorkerPool } from './db.js';
import { holdsReleasedBySignal } from './holds.js';
import { emit, intSetting, requiredSetting } from './json-lines.js';
import { createToolServer, type ToolContext } from './tools.js';
import { errorMessage } from '../postgres/pg.js';
import type { ProfileInUse } from '../postgres/profile/index.js';

function bearerMatches(header: string | undefined, token: string): boolean {
  const expected = Buffer.from(`Bearer ${token}`);
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function jsonRpcError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function main(): Promise<void> {
  const env = process.env;
  const databaseUrl = requiredSetting(env, 'SOR_TOOLS_DATABASE_URL');
  const token = requiredSetting(env, 'SOR_TOOLS_TOKEN');
  const port = intSetting(env, 'SOR_TOOLS_PORT', 0);
  const breaks = parseBreaks(env.SOR_TOOLS_BREAKS);
  const setting = profileSetting(env, env.SOR_WORKER_ROLE || 'worker_write');
  const role = env.SOR_WORKER_ROLE || setting.profile.roles.worker;
  const transactionPooling = env.SOR_TOOLS_TRANSACTION_POOLING === '1';

  const pool = await openWorkerPool(databaseUrl, {
    role,
    max: intSetting(env, 'SOR_TOOLS_POOL_MAX', 6),
    applicationName: 'sor-tool-server',
    transactionPooling,
    onIdleError: (error) => process.stderr.write(`tool server: idle connection lost: ${errorMessage(error)}\n`),
  });
  let profile: ProfileInUse;
  try {
    profile = await fitProfileOnPool(pool, setting);
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }
  const context: ToolContext = {
    pool,
    profile,
    breaks,
    claimHoldMs: intSetting(env, 'SOR_CLAIM_HOLD_MS', 0),
    leaseMs: intSetting(env, 'SOR_LEASE_MS', 60_000),
    holds: holdsReleasedBySignal(),
    log: (event, fields) => emit(event, fields),
    transactionPooling,
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (!bearerMatches(req.headers.authorization, token)) {
      emit('unauthorized', { method: req.method, path });
      jsonRpcError(res, 401, 'Unauthorized: missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
      return;
    }
    if (path !== '/mcp') {
      jsonRpcError(res, 404, `Not found: ${path} (the MCP endpoint is /mcp)`);
      return;
    }
    if (req.method !== 'POST') {
      // Stateless: no server-initiated stream (GET) and no session to delete (DELETE).
      jsonRpcError(res, 405, 'Method not allowed', { allow: 'POST' });
      return;
    }
    const server = createToolServer(context);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close().catch(() => {});
      void server.close().catch(() => {});
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };

  const http = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      process.stderr.write(`tool server: request failed: ${errorMessage(error)}\n`);
      if (!res.headersSent) jsonRpcError(res, 500, 'Internal server error');
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, '127.0.0.1', () => resolve());
  });
  const address = http.address();
  const actualPort = address && typeof address === 'object' ? address.port : port;
  emit('listening', {
    url: `http://127.0.0.1:${actualPort}/mcp`,
    port: actualPort,
    role,
    breaks: Object.keys(breaks),
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    emit('stopping', { signal });
    http.close();
    http.closeAllConnections();
    void pool.end().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

// A Worker killed mid-request leaves the SDK answering a closed connection: log it, keep serving.
process.on('unhandledRejection', (error) => {
  process.stderr.write(`tool server: unhandled rejection: ${errorMessage(error)}\n`);
});

main().catch((error: unknown) => {
  process.stderr.write(`tool server: ${errorMessage(error)}\n`);
  process.exit(1);
});
