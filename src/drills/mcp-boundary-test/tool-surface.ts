// The boundary as an MCP client sees it: what tools/list answers, a call to a
// tool that is not on the list (drop_table), and SQL-looking strings sent through
// the allowed tools, which must land as data and leave the catalog as it was.
import { randomUUID } from 'node:crypto';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { KeyInfo, ToolSpec } from '../../postgres/profile/index.js';
import { sql } from '../../postgres/sql.js';
import type { ToolServer } from '../../reconciler/launch.js';
import { withEvidence } from '../evidence.js';
import type { DrillTenant } from '../inputs.js';
import { callTool, templateUses, withToolsClient, writeArguments, type ToolAnswer } from '../mcp.js';
import { CouldNotDetermine } from '../runner.js';
import { countWord, query } from '../sql.js';
import type { DrillContext } from '../types.js';

/** The seed's allow-list: the whole tool surface a Worker may see. */
export const allowedTools = ['claim', 'write', 'queue', 'read'] as const;

/** Strings an attacker (or a confused model) might send hoping they run as SQL, aimed at the target's expenses table. */
export function sqlLookingStringsFor(table: string): readonly [string, string] {
  return [`'); DROP TABLE ${table}; --`, `COMMIT; DROP TABLE ${table}`];
}

/** The reference schema's: aimed at expenses. */
export const sqlLookingStrings = sqlLookingStringsFor('expenses');

/**
 * A run_id that closes a quoted literal and adds a tautology. What precedes the quote is
 * a valid key of the runs table's type (a uuid for uuid keys, a number for integer ones),
 * so that a server splicing it into SQL would run a valid statement and return a run,
 * while one binding it hands the whole text to the key column as one value.
 */
export function sqlLookingRunId(key: Pick<KeyInfo, 'type'>): string {
  const head = key.type === 'uuid' ? randomUUID() : /^(integer|bigint|smallint|numeric)/.test(key.type) ? '0' : 'R-44';
  return `${head}' or '1'='1`;
}

export interface ToolSurface {
  listed: string[];
  /** Listed but not allowed (a raw SQL tool, a renamed tool's new name). */
  extra: string[];
  /** Allowed but not listed (a removed tool, a renamed tool's old name). */
  missing: string[];
  duplicates: string[];
  exact: boolean;
}

/** The surface against an allow-list: the seed's four, or the one the operator's profile declares. */
export function toolSurface(listed: readonly string[], allowed: readonly string[] = allowedTools): ToolSurface {
  const extra = [...new Set(listed.filter((name) => !allowed.includes(name)))];
  const missing = allowed.filter((name) => !listed.includes(name));
  const duplicates = [...new Set(listed.filter((name, index) => listed.indexOf(name) !== index))];
  return {
    listed: [...listed],
    extra,
    missing,
    duplicates,
    exact: extra.length === 0 && missing.length === 0 && duplicates.length === 0,
  };
}

/** `who` leads the line for the operator's tool server ("the operator's tool server `node tool-server.mjs` lists ..."). */
export function describeSurface(surface: ToolSurface, who?: string): string {
  const parts: string[] = [];
  if (surface.extra.length > 0) parts.push(`not allowed: ${surface.extra.join(', ')}`);
  if (surface.missing.length > 0) parts.push(`missing: ${surface.missing.join(', ')}`);
  if (surface.duplicates.length > 0) parts.push(`listed twice: ${surface.duplicates.join(', ')}`);
  return (
    `${who ?? 'tool surface'} lists ${countWord(surface.listed.length)} tools (${surface.listed.join(', ') || 'none'})` +
    (parts.length > 0 ? `; ${parts.join('; ')}` : '')
  );
}

/** The tool names tools/list answers to a client holding the token, in its order. */
export async function listTools(tools: ToolServer): Promise<string[]> {
  return withToolsClient(tools, async (client) => (await client.listTools()).tools.map((tool) => tool.name));
}

export interface DropTableObservation {
  refused: boolean;
  code: number | undefined;
  text: string;
}

/** Calls drop_table, a tool that is not on the list, and reads how it was refused. */
export async function callDropTable(tools: ToolServer, table = 'expenses'): Promise<DropTableObservation> {
  const answer = await withToolsClient(tools, (client) => callTool(client, 'drop_table', { table, cascade: true }));
  const code = /MCP error (-?\d+)/.exec(answer.text)?.[1];
  return {
    refused: answer.isError && /tool drop_table not found/i.test(answer.text),
    code: code === undefined ? undefined : Number(code),
    text: answer.text.slice(0, 200),
  };
}

export interface SqlStringsObservation {
  /** Tool calls that failed, as the tool said. */
  errors: string[];
  /** The column the strings are looked for in: the description, or the key column on a target without one. */
  column: string;
  /** How many of the strings are stored verbatim in that column. */
  storedVerbatim: number;
  /** Rows the drill's tenant gained (by query, before and after). */
  delta: number;
  oracleSatisfied: boolean;
  tablesBefore: string[];
  tablesAfter: string[];
  /** Whether the read with an SQL-looking run_id returned no run (or was refused as one value of the key's type). */
  readFoundNothing: boolean | undefined;
  /** How the read was answered when the runs key column refused the whole text as one value. */
  readRefused?: string;
  /** Why no read with an SQL-looking run_id was made (the operator's tool server: no read template takes a run_id). */
  readSkipped?: string;
}

/** Every relation outside the system schemas: a DROP run from data would remove one. */
async function tablesPresent(ctx: DrillContext): Promise<string[]> {
  const rows = await query<{ name: string }>(
    ctx,
    `select n.nspname || '.' || c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
      order by 1`,
  );
  return rows.map((row) => row.name);
}

/** A tool call's answer, with the SQLSTATE the tool server reports for a refused call (structuredContent.error_code). */
async function callWithCode(client: Client, name: string, args: Record<string, unknown>): Promise<ToolAnswer & { errorCode?: string }> {
  try {
    const result = (await client.callTool({ name, arguments: args })) as {
      isError?: boolean;
      content?: Array<{ type: string; text?: string }>;
      structuredContent?: { error_code?: unknown };
    };
    const text = (result.content ?? []).map((part) => part.text ?? '').join('');
    let value: Record<string, unknown> | undefined;
    try {
      value = JSON.parse(text) as Record<string, unknown>;
    } catch {
      value = undefined;
    }
    const code = result.structuredContent?.error_code;
    return { isError: Boolean(result.isError), text, value, ...(typeof code === 'string' ? { errorCode: code } : {}) };
  } catch {
    // A thrown MCP error: the drill's own client reads it the usual way.
    return callTool(client, name, args);
  }
}

/**
 * Writes each SQL-looking string as an expense description (on a target whose expenses
 * have no description column, as the Worker's idempotency key) and reads a run by an
 * SQL-looking run_id, through the tool server; the oracle watches the tenant's
 * expenses, and the rows and the catalog are read before and after by query.
 *
 * With `write` (the operator's declared write tool) the strings go through its argument
 * template; the description when the template sends {description} and the table has the
 * column, else the key. No read is made then: no read template takes a run_id.
 */
export async function sendSqlLookingStrings(
  ctx: DrillContext,
  tenant: DrillTenant,
  tools: ToolServer,
  write?: ToolSpec,
): Promise<SqlStringsObservation> {
  const e = ctx.profile.names.expenses;
  const table = e.tableName;
  const strings = sqlLookingStringsFor(table);
  // Where a string lands decides what is sent: the description, or the key itself.
  const inKey = e.description === undefined || (write !== undefined && !templateUses(write.arguments, 'description'));
  if (write && inKey && !templateUses(write.arguments, 'key')) {
    throw new CouldNotDetermine(
      `processes.tool_server.tools.write (${write.name}) sends neither {description} nor {key}, so no SQL-looking text can reach ${table} through it: ` +
        'put {description} (or {key}) in its arguments',
    );
  }
  const column = e.description ?? e.idempotencyKey;
  const keyOf = (text: string, call: number) => (inKey ? `${tenant.id}:${text}` : `${tenant.id}:sql-looking-${call}`);
  const landed = strings.map((text, index) => (inKey ? keyOf(text, index + 1) : text));
  const countRows = async () =>
    (await query<{ n: number }>(ctx, sql`select count(*)::int as n from ${e.table} where ${e.tenant} = ${tenant.id}`))[0]?.n ?? 0;
  const tablesBefore = await tablesPresent(ctx);
  const rowsBefore = await countRows();
  const runId = randomUUID();
  const probe = sqlLookingRunId(ctx.profile.keys.runs);
  const answers: ToolAnswer[] = [];
  let readAnswer: (ToolAnswer & { errorCode?: string }) | undefined;
  const result = await withEvidence(
    ctx,
    {
      label: `write ${strings.length} SQL-looking ${inKey ? 'idempotency keys' : 'descriptions'} through the tool server`,
      tables: [{ name: table, filter: { [e.tenant.name]: tenant.id }, key: [e.tenant.name, e.idempotencyKey.name] }],
      expect: [
        `${table}:+${strings.length}`,
        ...landed.map((value) => `${table}:+{${e.tenant.name}=${JSON.stringify(tenant.id)},${column.name}=${JSON.stringify(value)}}`),
      ],
    },
    async (log) => {
      await withToolsClient(tools, async (client) => {
        for (const [index, text] of strings.entries()) {
          const call = index + 1;
          if (write) {
            const values = { tenant: tenant.id, worker: tenant.worker, key: keyOf(text, call), amountCents: 100 * call, description: text };
            const answer = await callTool(client, write.name, writeArguments(write, values));
            log(`${write.name} ${JSON.stringify(text)}: ${answer.text}`);
            answers.push(answer);
            continue;
          }
          const answer = await callTool(client, 'write', {
            journal: {
              run_id: runId,
              worker: tenant.worker,
              tenant: tenant.id,
              turn: 1,
              of: 1,
              call,
              ends_turn: call === strings.length,
            },
            idempotency_key: keyOf(text, call),
            amount_cents: 100 * call,
            description: text,
          });
          log(`write ${JSON.stringify(text)}: ${answer.text}`);
          answers.push(answer);
        }
        if (write) return;
        readAnswer = await callWithCode(client, 'read', { what: 'journal', run_id: probe });
        log(`read run_id ${JSON.stringify(probe)}: ${readAnswer.text.slice(0, 200)}`);
      });
      return answers.every((answer) => !answer.isError) ? 0 : 1;
    },
  );
  const stored = await query<{ stored: string }>(
    ctx,
    sql`select ${column}::text as stored from ${e.table} where ${e.tenant} = ${tenant.id} and ${column}::text = any(${landed}::text[])`,
  );
  const rowsAfter = await countRows();
  const tablesAfter = await tablesPresent(ctx);
  const readRun = readAnswer?.value?.run;
  // The text before the quote is a valid key of the runs key's type: spliced, the statement would
  // run and return a run. A 22P02 says the whole text reached the column as one value: bound, as data.
  const refusedAsValue = readAnswer?.isError === true && readAnswer.errorCode === '22P02';
  return {
    errors: answers.filter((answer) => answer.isError).map((answer) => answer.text.slice(0, 200)),
    column: column.name,
    storedVerbatim: new Set(stored.map((row) => row.stored)).size,
    delta: rowsAfter - rowsBefore,
    oracleSatisfied: result.expectations.length > 0 && result.expectations.every((expectation) => expectation.verdict === 'satisfied'),
    tablesBefore,
    tablesAfter,
    readFoundNothing: refusedAsValue ? true : readAnswer && !readAnswer.isError ? readRun === null : undefined,
    ...(refusedAsValue ? { readRefused: `the runs key column refused the whole run_id as one value (22P02): ${readAnswer!.text.slice(0, 120)}` } : {}),
    ...(write ? { readSkipped: 'the contract has the drills call only the write tool of the operator\'s tool server: no read by an SQL-looking run_id' } : {}),
  };
}

/** Whether every string landed as data and nothing else changed (the step's ok mark). */
export function storedAsData(observation: SqlStringsObservation): boolean {
  return (
    observation.errors.length === 0 &&
    observation.storedVerbatim === sqlLookingStrings.length &&
    observation.delta === sqlLookingStrings.length &&
    observation.oracleSatisfied &&
    (observation.readFoundNothing === true || observation.readSkipped !== undefined) &&
    sameList(observation.tablesBefore, observation.tablesAfter)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}
