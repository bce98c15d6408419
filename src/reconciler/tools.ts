// The Worker's tool surface: an MCP server with exactly four tools, claim,
// write, queue and read (plus `sql` only under the rawSqlTool break). The same
// server is served over Streamable HTTP to the Worker (tool-server.ts) and over
// stdio to MCP Inspector or any client (`sor-drills tools`).
//
// Every tool but `read` outside a run takes the journal argument and is
// journaled (see journal.ts). Arguments are validated by zod before anything
// runs; a tool that is not in this list is refused by the MCP layer itself
// (-32602 "Tool drop_table not found") before the database is touched.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type pg from 'pg';
import * as z from 'zod';
import type { ProfileInUse } from '../postgres/profile/index.js';
import { sql } from '../postgres/sql.js';
import {
  claim,
  queue,
  readJournal,
  readResume,
  write,
  type JournalResult,
  type ResumeResult,
  type ToolBreaks,
} from './actions.js';
import { describeDbError, type WorkerPool } from './db.js';
import type { Holds } from './holds.js';
import {
  completeCall,
  failCall,
  JournalRefusal,
  lockWorker,
  lockWorkerForCall,
  openCall,
  recordCall,
  unlockWorker,
  type Journal,
  type OpenedCall,
} from './journal.js';

export const serverName = 'sor-drills-reconciler-tools';
export const serverVersion = '0.1.0';

/** The whole tool surface, in the order tools/list shows it. */
export const toolNames = ['claim', 'write', 'queue', 'read'] as const;
export type ToolName = (typeof toolNames)[number];

export interface ToolContext {
  pool: WorkerPool;
  /** The target's names and key columns (SOR_PROFILE resolved on the target, or the reference profile). */
  profile: Pick<ProfileInUse, 'names' | 'keys'>;
  breaks: ToolBreaks;
  /** How long claim holds its row lock before committing, unless the call says (ms). */
  claimHoldMs: number;
  /** Claim lease: a claimed row whose Worker died is reclaimable after it (ms). */
  leaseMs: number;
  /** Claim holds that can be ended early (the HTTP server ends them on SIGUSR2); a plain delay without. */
  holds?: Holds;
  /** One JSON log line (stdout for the HTTP server, stderr for stdio). */
  log: (event: string, fields: Record<string, unknown>) => void;
  /**
   * Behind a transaction pooler (SOR_TOOLS_TRANSACTION_POOLING=1): every call is one
   * transaction, its role SET LOCAL and its Worker lock transaction-scoped (journal.ts).
   */
  transactionPooling?: boolean;
}

const name = z.string().min(1).max(200);

export const journalSchema = z
  .object({
    run_id: name.describe('the run this call belongs to (a uuid chosen by the Worker when it starts a run)'),
    worker: name.describe("the Worker's name; a crashed run is found by it"),
    tenant: name.describe('the tenant the run works for (sets app.tenant_id for row-level security)'),
    turn: z.number().int().min(1).describe('turn number, from 1'),
    of: z.number().int().min(1).max(1000).describe('number of turns of the run'),
    call: z.number().int().min(1).describe('call number within the turn, from 1'),
    ends_turn: z.boolean().optional().describe('this call completes the turn (on the last turn it finishes the run)'),
  })
  .describe('where this call sits in the run journal');

const textResult = (value: Record<string, unknown>): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(value) }],
  structuredContent: value,
});

const errorResult = (message: string, code?: string): CallToolResult => ({
  content: [{ type: 'text', text: message }],
  structuredContent: { error: message, error_code: code ?? null },
  isError: true,
});

interface JournaledAction<R extends Record<string, unknown>> {
  tool: string;
  journal: Journal;
  /** Stored in tool_calls.arguments: the call's arguments without the journal. */
  args: Record<string, unknown>;
  /** Runs on the call's transaction, app.tenant_id set, inside a savepoint. */
  run: (client: pg.PoolClient) => Promise<R>;
  /** Whether the call ends its turn, given its result. */
  endsTurn?: (result: R) => boolean;
  /** The tool_called event's detail besides tool, call_no and status. */
  detail: (result: R) => Record<string, unknown>;
}

async function journaled<R extends Record<string, unknown>>(context: ToolContext, action: JournaledAction<R>): Promise<CallToolResult> {
  const { journal, tool } = action;
  const events = { enabled: !context.breaks.noEvents };
  const { names: n, keys } = context.profile;
  const pooling = context.transactionPooling ?? false;
  const args = { tenant_id: journal.tenant, ...action.args };
  const client = await context.pool.connect();
  // A connection whose state is unknown (a failed ROLLBACK or unlock) is destroyed, not reused:
  // its session-level lock and any open transaction go with it.
  let broken: Error | undefined;
  const markBroken = (error: unknown) => {
    broken = error instanceof Error ? error : new Error(String(error));
  };
  if (!pooling) {
    try {
      await lockWorker(client, journal.worker);
    } catch (error) {
      client.release(error instanceof Error ? error : true);
      const failure = describeDbError(error);
      return errorResult(`${tool} could not be journaled: ${failure.message}`, failure.code);
    }
  }
  try {
    // By default the 'started' row is committed on its own, visible while the action runs.
    let opened: OpenedCall | undefined = pooling ? undefined : await openCall(client, n, keys, events, journal, tool, args);
    await client.query('begin');
    try {
      if (!opened) {
        // Transaction pooling: role, lock and 'started' row in the call's one transaction. The price
        // of pooling: the 'started' row is visible only with the outcome, never while the action runs.
        await context.pool.actInTransaction(client);
        await lockWorkerForCall(client, journal.worker);
        opened = await recordCall(client, n, keys, events, journal, tool, args);
      }
      await client.query(sql`select set_config(${n.setting}, ${journal.tenant}, true)`);
      await client.query('savepoint action');
      let result: R;
      try {
        result = await action.run(client);
        await client.query('release savepoint action');
      } catch (error) {
        const failure = describeDbError(error);
        await client.query('rollback to savepoint action');
        const runError = await failCall(client, n, keys, events, journal, opened, tool, failure);
        await client.query('commit');
        context.log('call', { ...coordinates(journal), tool, status: 'failed', error: failure.message, error_code: failure.code ?? null });
        return errorResult(`${runError}; run ${journal.run_id} marked failed`, failure.code);
      }
      const endsTurn = Boolean(journal.ends_turn) || (action.endsTurn?.(result) ?? false);
      const done = await completeCall(client, n, keys, events, journal, opened, tool, result, endsTurn, action.detail(result));
      await client.query('commit');
      context.log('call', { ...coordinates(journal), tool, status: 'completed', turn_ended: done.turnEnded, run_finished: done.runFinished });
      return textResult(result);
    } catch (error) {
      await client.query('rollback').catch(markBroken);
      throw error;
    }
  } catch (error) {
    if (error instanceof JournalRefusal) return errorResult(error.message);
    const failure = describeDbError(error);
    context.log('call', { ...coordinates(journal), tool, status: 'error', error: failure.message, error_code: failure.code ?? null });
    return errorResult(
      `${tool} could not be journaled: ${failure.message}${failure.code ? ` [SQLSTATE ${failure.code}]` : ''}`,
      failure.code,
    );
  } finally {
    if (!pooling && !broken) await unlockWorker(client, journal.worker).catch(markBroken);
    client.release(broken);
  }
}

const coordinates = (journal: Journal) => ({
  worker: journal.worker,
  run_id: journal.run_id,
  turn: journal.turn,
  call: journal.call,
});

let validator: AjvJsonSchemaValidator | undefined;
const sharedValidator = () => (validator ??= new AjvJsonSchemaValidator());

/** A fresh MCP server over the context (one per HTTP request in stateless mode, one per stdio session). */
export function createToolServer(context: ToolContext): McpServer {
  // One JSON Schema validator for every server: left to itself each new server (one per HTTP
  // request) builds an Ajv instance of its own, which under the fleet's load was a good share of
  // the tool server's CPU.
  const server = new McpServer({ name: serverName, version: serverVersion }, { jsonSchemaValidator: sharedValidator() });
  const { names: n, keys } = context.profile;
  const conflict = n.expenses.conflict.map((column) => column.name).join(', ');

  server.registerTool(
    'claim',
    {
      description:
        "Claim the next pending bank transaction of the run's tenant (SELECT ... FOR UPDATE SKIP LOCKED) with a lease, " +
        'so a dead Worker\'s claim expires. transaction_id is null when none is left; such a claim ends the turn.',
      inputSchema: {
        journal: journalSchema,
        hold_ms: z.number().int().min(0).max(60_000).optional().describe('hold the row lock this long before committing (a visible race)'),
        lease_ms: z.number().int().min(1).max(86_400_000).optional().describe('claim lease; default from the server'),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    async ({ journal, hold_ms, lease_ms }) =>
      journaled(context, {
        tool: 'claim',
        journal,
        args: { ...(hold_ms === undefined ? {} : { hold_ms }), ...(lease_ms === undefined ? {} : { lease_ms }) },
        run: (client) =>
          claim(client, n, {
            tenant: journal.tenant,
            worker: journal.worker,
            holdMs: hold_ms ?? context.claimHoldMs,
            leaseMs: lease_ms ?? context.leaseMs,
            skipLocked: !context.breaks.noSkipLocked,
            noLock: context.breaks.claimWithoutLock,
            hold: context.holds?.hold,
            onLocked: (transactionId) =>
              context.log('claim_locked', { worker: journal.worker, run_id: journal.run_id, transaction_id: transactionId }),
          }),
        endsTurn: (result) => result.transaction_id === null,
        detail: (result) => ({
          transaction_id: result.transaction_id,
          amount_cents: result.amount_cents,
          description: result.description,
        }),
      }),
  );

  server.registerTool(
    'write',
    {
      description:
        `Record an expense for the tenant, idempotently: INSERT ... ON CONFLICT (${conflict}) DO NOTHING. ` +
        'inserted tells a new row from a no-op. With transaction_id, marks that pending transaction processed in the same transaction.',
      inputSchema: {
        journal: journalSchema,
        idempotency_key: name.describe('the same key for the same expense, however often it is written'),
        transaction_id: name.optional().describe('the pending transaction this expense reconciles'),
        amount_cents: z.number().int().describe('amount in cents; the database requires it to be positive'),
        description: z.string().min(1).max(2000),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async ({ journal, idempotency_key, transaction_id, amount_cents, description }) =>
      journaled(context, {
        tool: 'write',
        journal,
        args: { idempotency_key, transaction_id, amount_cents, description },
        run: (client) =>
          write(
            client,
            n,
            keys,
            { tenant: journal.tenant, worker: journal.worker, idempotency_key, transaction_id, amount_cents, description },
            context.breaks,
          ),
        detail: (result) => ({
          transaction_id: result.transaction_id,
          amount_cents,
          idempotency_key: result.idempotency_key,
          inserted: result.inserted,
          expense_id: result.expense_id,
        }),
      }),
  );

  server.registerTool(
    'queue',
    {
      description:
        `Queue an email in the outbox with its dedup_key (ON CONFLICT (${n.outbox.dedup_key.name}) DO NOTHING); the outbox relay sends it ` +
        'with the dedup_key as the idempotency key. queued is false when it was already queued.',
      inputSchema: {
        journal: journalSchema,
        dedup_key: name,
        recipient: z.string().min(1).max(320),
        subject: z.string().min(1).max(500),
        body: z.string().max(10_000),
        transaction_id: name.optional().describe('the transaction the message is about (journal narrative only)'),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async ({ journal, dedup_key, recipient, subject, body, transaction_id }) =>
      journaled(context, {
        tool: 'queue',
        journal,
        args: { dedup_key, recipient, subject, body, transaction_id },
        run: (client) => queue(client, n, keys, { tenant: journal.tenant, run_id: journal.run_id, dedup_key, recipient, subject, body }),
        detail: (result) => ({
          transaction_id: transaction_id ?? null,
          outbox_id: result.outbox_id,
          dedup_key,
          recipient,
          subject,
          queued: result.queued,
        }),
      }),
  );

  server.registerTool(
    'read',
    {
      description:
        "Read the journal. what='resume' with worker: the Worker's latest crashed run (status running, finished_at null) with " +
        "its turns and completed calls, or run null. what='journal' with run_id: that run, its turns and calls.",
      inputSchema: {
        what: z.enum(['resume', 'journal']),
        worker: name.optional().describe("for what='resume'"),
        tenant: name
          .optional()
          .describe("for what='resume' on a target whose runs record no worker: the crashed run is then the tenant's"),
        run_id: name.optional().describe("for what='journal'"),
        journal: journalSchema.optional().describe('when the read is a call of a run, to journal it'),
      },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async ({ what, worker, tenant, run_id, journal }) => {
      if (what === 'resume' && !worker) return errorResult("read what='resume' needs worker");
      if (what === 'journal' && !run_id) return errorResult("read what='journal' needs run_id");
      const runTenant = tenant ?? journal?.tenant;
      if (what === 'resume' && !n.runs.worker && !runTenant) {
        return errorResult("read what='resume' needs tenant: this target's runs record no worker (profile runs.worker)");
      }
      const read = async (client: pg.PoolClient): Promise<ResumeResult | JournalResult> =>
        what === 'resume' ? readResume(client, n, worker!, runTenant) : readJournal(client, n, run_id!);
      if (journal) {
        return journaled(context, {
          tool: 'read',
          journal,
          args: { what, ...(worker ? { worker } : {}), ...(tenant ? { tenant } : {}), ...(run_id ? { run_id } : {}) },
          run: read,
          detail: (result) => ({ what, run_id: (result.run as { id?: string } | null)?.id ?? null }),
        });
      }
      const client = await context.pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('begin');
        await context.pool.actInTransaction(client);
        const result = await read(client);
        await client.query('commit');
        return textResult(result);
      } catch (error) {
        await client.query('rollback').catch((rollbackError: unknown) => {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
        const failure = describeDbError(error);
        return errorResult(`read failed: ${failure.message}`, failure.code);
      } finally {
        client.release(broken);
      }
    },
  );

  if (context.breaks.rawSqlTool) {
    // The deliberate break of the MCP boundary drill: the dangerous surface it must catch.
    server.registerTool(
      'sql',
      {
        description: 'DELIBERATE BREAK: executes its argument as SQL. Never present in a real tool server.',
        inputSchema: { query: z.string().min(1) },
      },
      async ({ query }) => {
        const client = await context.pool.connect();
        try {
          const result = await client.query(query);
          const last = Array.isArray(result) ? result[result.length - 1] : result;
          context.log('raw_sql', { query });
          return textResult({ command: last?.command ?? null, row_count: last?.rowCount ?? null, rows: (last?.rows ?? []).slice(0, 100) });
        } catch (error) {
          const failure = describeDbError(error);
          return errorResult(`sql failed: ${failure.message}`, failure.code);
        } finally {
          client.release();
        }
      },
    );
  }

  return server;
}
