// The example tool server: the only process of this Worker side that holds database
// credentials. MCP over Streamable HTTP at http://127.0.0.1:$PORT/mcp, stateless (a
// fresh McpServer and transport per POST, so a restarted server on the same port
// serves a new client with no session to recover), bearer token required.
//
// Tools: claim_transaction, record_expense, queue_email, read_journal (plus `sql`
// under EXAMPLE_BUG=sql-tool). The first three are journaled (journal.mjs); the
// journal coordinates travel as plain arguments. read_journal only reads, and is not
// journaled: it is called before a run exists, and a one-call run per Worker start
// would fill runs with runs that did nothing.
//
// Environment (declared in profile.json's processes.tool_server.env):
//   DATABASE_URL   how to connect, as the profile's worker role; its application_name
//                  parameter (node-postgres reads it from the URL) tags the sessions
//   PORT           loopback port to listen on
//   TOOLS_TOKEN    the bearer token
//   CLAIM_HOLD_MS  hold each claim's row lock this long before commit (default 0);
//                  SIGUSR2 ends every hold in progress
//   LEASE_MS       claim lease (default 60000)
//   EXAMPLE_BUG    no-skip-locked | sql-tool: a deliberate break for the drills to catch
//
// stdout, one JSON line each: listening {url, port, user, bug}; claim_locked
// {worker, run_id, transaction_id}; call {worker_id, run_id, turn, call, tool, status, ...};
// unauthorized {method, path}; holds_released {count}; stopping {signal}.
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import pg from 'pg';
import * as z from 'zod';
import { exampleBug } from './bugs.mjs';
import { claimTransaction, queueEmail, readJournal, recordExpense } from './actions.mjs';
import { coordinateNames, coordinatesOf, describeError, journaled, Refusal } from './journal.mjs';

const emit = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: declare it in the profile's processes.tool_server.env`);
  return value;
}

function count(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return value;
}

/** Claim holds that SIGUSR2 ends early, so a drill need not wait out a long hold. */
function releasableHolds() {
  const waiting = new Set();
  process.on('SIGUSR2', () => {
    emit('holds_released', { count: waiting.size });
    for (const release of waiting) release();
    waiting.clear();
  });
  return (ms) =>
    new Promise((resolve) => {
      const release = () => {
        clearTimeout(timer);
        waiting.delete(release);
        resolve();
      };
      const timer = setTimeout(release, ms);
      waiting.add(release);
    });
}

const name = z.string().min(1).max(200);
const userId = z.string().min(1).max(100).describe('the user (a uuid) the call works for: sets app.current_user_id');

/** The journal coordinates: all of them for a call of a run, none for a call outside one. */
const coordinates = {
  run_id: z.string().uuid().optional().describe("the run (a uuid the Worker chose when it started it); absent: a one-call run of the call's own"),
  turn: z.number().int().min(1).optional().describe('turn number, from 1'),
  turns: z.number().int().min(1).max(1000).optional().describe("the run's number of turns"),
  call: z.number().int().min(1).optional().describe('call number within the turn, from 1'),
  ends_turn: z.boolean().optional().describe('this call completes its turn (on the last turn it completes the run)'),
};

const answer = (value) => ({ content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value });
const failure = (message, code = null) => ({
  content: [{ type: 'text', text: message }],
  structuredContent: { error: message, error_code: code },
  isError: true,
});

/** tool_calls.input: the call's arguments without the coordinates (they are the row's place). */
const inputOf = (args) => Object.fromEntries(Object.entries(args).filter(([key]) => !coordinateNames.includes(key)));

function createTools(context) {
  const { pool, log, bug } = context;
  const server = new McpServer({ name: 'example-worker-side-tools', version: '0.1.0' });

  const run = async (tool, args, action, detail) => {
    let at;
    try {
      at = coordinatesOf(tool, args);
    } catch (error) {
      if (error instanceof Refusal) return failure(error.message);
      throw error;
    }
    const done = await journaled(pool, { tool, userId: args.user_id, at, input: inputOf(args), action: (client) => action(client, at), detail, log });
    return done.ok ? answer(done.result) : failure(done.message, done.code);
  };

  server.registerTool(
    'claim_transaction',
    {
      description:
        "Claim the user's next pending bank transaction (or one whose lease ran out) with FOR UPDATE SKIP LOCKED and a lease. " +
        'transaction_id is null when none is left: that claim ends the run.',
      inputSchema: {
        worker_id: name.describe("the Worker's name: claimed_by, and the run's worker_id"),
        user_id: userId,
        lease_ms: z.number().int().min(1).max(86_400_000).optional().describe('claim lease; default LEASE_MS'),
        ...coordinates,
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    async (args) =>
      run(
        'claim_transaction',
        args,
        (client, at) =>
          claimTransaction(client, {
            userId: args.user_id,
            workerId: args.worker_id,
            leaseMs: args.lease_ms ?? context.leaseMs,
            holdMs: context.claimHoldMs,
            skipLocked: bug !== 'no-skip-locked',
            hold: context.hold,
            onLocked: (transactionId) => log('claim_locked', { worker: args.worker_id, run_id: at.runId, transaction_id: transactionId }),
          }),
        (result) => ({ transaction_id: result.transaction_id, amount_cents: result.amount_cents, description: result.memo }),
      ),
  );

  server.registerTool(
    'record_expense',
    {
      description:
        'Record an expense idempotently: INSERT ... ON CONFLICT (idempotency_key) DO NOTHING; inserted tells a new row from a no-op. ' +
        'With transaction_id, marks that pending transaction done in the same transaction.',
      inputSchema: {
        user_id: userId,
        idempotency_key: name.describe('the same key for the same expense, however often it is written'),
        amount: z
          .union([z.string().regex(/^-?\d{1,10}(\.\d{1,2})?$/, 'must be an amount in units, such as "12.34"'), z.number()])
          .describe('amount in units ("12.34"); the database requires it to be positive'),
        memo: z.string().max(2000).optional(),
        transaction_id: z.string().min(1).max(100).nullable().optional().describe('the pending transaction this expense reconciles'),
        worker_id: name.optional().describe("the Worker's name (a call of a run)"),
        ...coordinates,
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async (args) =>
      run(
        'record_expense',
        args,
        (client) =>
          recordExpense(client, {
            userId: args.user_id,
            idempotencyKey: args.idempotency_key,
            transactionId: args.transaction_id ?? null,
            amount: String(args.amount),
            memo: args.memo ?? null,
          }),
        (result) => ({ ...result, amount: String(args.amount) }),
      ),
  );

  server.registerTool(
    'queue_email',
    {
      description:
        'Queue an email in outbox_messages (payload {to, subject, body}) with its dedup_key, ON CONFLICT (dedup_key) DO NOTHING; ' +
        'the relay sends it with the dedup_key as its Idempotency-Key. queued is false when it was already queued.',
      inputSchema: {
        user_id: userId,
        dedup_key: name,
        to: z.string().min(1).max(320),
        subject: z.string().min(1).max(500),
        body: z.string().max(10_000),
        transaction_id: z.string().min(1).max(100).optional().describe('the transaction the message is about (events only)'),
        worker_id: name.optional().describe("the Worker's name (a call of a run)"),
        ...coordinates,
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async (args) =>
      run(
        'queue_email',
        args,
        (client, at) =>
          queueEmail(client, { userId: args.user_id, runId: at.runId, dedupKey: args.dedup_key, to: args.to, subject: args.subject, body: args.body }),
        (result) => ({ ...result, recipient: args.to, subject: args.subject, transaction_id: args.transaction_id ?? null }),
      ),
  );

  server.registerTool(
    'read_journal',
    {
      description:
        "Read the journal: the Worker's latest crashed run (status running, ended_at null), or the run run_id names, " +
        'with its turns and its completed calls and their results; run is null when there is none.',
      inputSchema: {
        user_id: userId,
        worker_id: name,
        run_id: z.string().min(1).max(100).optional().describe('read this run instead of the latest crashed one'),
      },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async (args) => {
      const client = await pool.connect();
      let broken;
      try {
        return answer(await readJournal(client, { userId: args.user_id, workerId: args.worker_id, runId: args.run_id }));
      } catch (error) {
        broken = error;
        const { message, code } = describeError(error);
        return failure(`read_journal failed: ${message}${code ? ` [SQLSTATE ${code}]` : ''}`, code);
      } finally {
        client.release(broken);
      }
    },
  );

  if (bug === 'sql-tool') {
    // EXAMPLE_BUG=sql-tool: the dangerous surface the MCP boundary drill must catch.
    server.registerTool(
      'sql',
      { description: 'DELIBERATE BUG: executes its argument as SQL.', inputSchema: { query: z.string().min(1) } },
      async ({ query }) => {
        try {
          const result = await pool.query(query);
          const last = Array.isArray(result) ? result.at(-1) : result;
          log('raw_sql', { query });
          return answer({ command: last?.command ?? null, row_count: last?.rowCount ?? null, rows: (last?.rows ?? []).slice(0, 100) });
        } catch (error) {
          const { message, code } = describeError(error);
          return failure(`sql failed: ${message}`, code);
        }
      },
    );
  }
  return server;
}

function bearerMatches(header, token) {
  const expected = Buffer.from(`Bearer ${token}`);
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function refuse(res, status, message, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function main() {
  const bug = exampleBug(process.env);
  const databaseUrl = required('DATABASE_URL');
  const token = required('TOOLS_TOKEN');
  const port = count('PORT', 0);
  const context = {
    bug,
    // connectionString alone: application_name and the rest come from the URL as given.
    pool: new pg.Pool({ connectionString: databaseUrl, max: 8 }),
    claimHoldMs: count('CLAIM_HOLD_MS', 0),
    leaseMs: count('LEASE_MS', 60_000),
    hold: releasableHolds(),
    log: emit,
  };
  // Without a listener, an idle connection whose backend dies crashes the process.
  context.pool.on('error', (error) => process.stderr.write(`tool server: idle connection lost: ${error.message}\n`));
  let user;
  try {
    ({ rows: [{ user }] } = await context.pool.query('select current_user as user'));
  } catch (error) {
    await context.pool.end().catch(() => {});
    const { message, code } = describeError(error);
    throw new Error(`cannot connect with DATABASE_URL: ${message}${code ? ` [SQLSTATE ${code}]` : ''}`, { cause: error });
  }

  const handle = async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (!bearerMatches(req.headers.authorization, token)) {
      emit('unauthorized', { method: req.method, path });
      refuse(res, 401, 'Unauthorized: missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
      return;
    }
    if (path !== '/mcp') return refuse(res, 404, `Not found: ${path} (the MCP endpoint is /mcp)`);
    // Stateless: no server-initiated stream (GET), no session to end (DELETE).
    if (req.method !== 'POST') return refuse(res, 405, 'Method not allowed', { allow: 'POST' });
    const server = createTools(context);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close().catch(() => {});
      void server.close().catch(() => {});
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };

  const http = createServer((req, res) => {
    handle(req, res).catch((error) => {
      process.stderr.write(`tool server: request failed: ${describeError(error).message}\n`);
      if (!res.headersSent) refuse(res, 500, 'Internal server error');
      else res.end();
    });
  });
  await new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, '127.0.0.1', resolve);
  });
  const actual = http.address().port;
  emit('listening', { url: `http://127.0.0.1:${actual}/mcp`, port: actual, user, bug: bug ?? null, claim_hold_ms: context.claimHoldMs });

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    emit('stopping', { signal });
    http.close();
    http.closeAllConnections();
    void context.pool.end().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

// A Worker killed mid-request leaves the SDK answering a closed connection: log it, keep serving.
process.on('unhandledRejection', (error) => {
  process.stderr.write(`tool server: unhandled rejection: ${describeError(error).message}\n`);
});

main().catch((error) => {
  process.stderr.write(`tool server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
