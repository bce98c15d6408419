// The boundary as an MCP client sees it: what tools/list answers, a call to a
// tool that is not on the list (drop_table), and SQL-looking strings sent through
// the allowed tools, which must land as data and leave the catalog as it was.
import { randomUUID } from 'node:crypto';
import type { ToolServer } from '../../reconciler/launch.js';
import { withEvidence } from '../evidence.js';
import type { DrillTenant } from '../inputs.js';
import { callTool, withToolsClient, type ToolAnswer } from '../mcp.js';
import { countWord, query } from '../sql.js';
import type { DrillContext } from '../types.js';

/** The seed's allow-list: the whole tool surface a Worker may see. */
export const allowedTools = ['claim', 'write', 'queue', 'read'] as const;

/** Strings an attacker (or a confused model) might send hoping they run as SQL. */
export const sqlLookingStrings = [`'); DROP TABLE expenses; --`, 'COMMIT; DROP TABLE expenses'] as const;

export interface ToolSurface {
  listed: string[];
  /** Listed but not allowed (a raw SQL tool, a renamed tool's new name). */
  extra: string[];
  /** Allowed but not listed (a removed tool, a renamed tool's old name). */
  missing: string[];
  duplicates: string[];
  exact: boolean;
}

export function toolSurface(listed: readonly string[]): ToolSurface {
  const allowed: readonly string[] = allowedTools;
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

export function describeSurface(surface: ToolSurface): string {
  const parts: string[] = [];
  if (surface.extra.length > 0) parts.push(`not allowed: ${surface.extra.join(', ')}`);
  if (surface.missing.length > 0) parts.push(`missing: ${surface.missing.join(', ')}`);
  if (surface.duplicates.length > 0) parts.push(`listed twice: ${surface.duplicates.join(', ')}`);
  return (
    `tool surface lists ${countWord(surface.listed.length)} tools (${surface.listed.join(', ') || 'none'})` +
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
export async function callDropTable(tools: ToolServer): Promise<DropTableObservation> {
  const answer = await withToolsClient(tools, (client) => callTool(client, 'drop_table', { table: 'expenses', cascade: true }));
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
  /** How many of the strings are stored verbatim as descriptions. */
  storedVerbatim: number;
  /** Rows the drill's tenant gained (by query, before and after). */
  delta: number;
  oracleSatisfied: boolean;
  tablesBefore: string[];
  tablesAfter: string[];
  /** Whether the read with an SQL-looking run_id returned no run. */
  readFoundNothing: boolean | undefined;
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

/**
 * Writes each SQL-looking string as an expense description and reads a run by an
 * SQL-looking run_id, through the tool server; the oracle watches the tenant's
 * expenses, and the rows and the catalog are read before and after by query.
 */
export async function sendSqlLookingStrings(ctx: DrillContext, tenant: DrillTenant, tools: ToolServer): Promise<SqlStringsObservation> {
  const countRows = async () =>
    (await query<{ n: number }>(ctx, 'select count(*)::int as n from expenses where tenant_id = $1', [tenant.id]))[0]?.n ?? 0;
  const tablesBefore = await tablesPresent(ctx);
  const rowsBefore = await countRows();
  const runId = randomUUID();
  const answers: ToolAnswer[] = [];
  let readAnswer: ToolAnswer | undefined;
  const result = await withEvidence(
    ctx,
    {
      label: `write ${sqlLookingStrings.length} SQL-looking descriptions through the tool server`,
      tables: [{ name: 'expenses', filter: { tenant_id: tenant.id }, key: ['tenant_id', 'idempotency_key'] }],
      expect: [
        `expenses:+${sqlLookingStrings.length}`,
        ...sqlLookingStrings.map((text) => `expenses:+{tenant_id=${JSON.stringify(tenant.id)},description=${JSON.stringify(text)}}`),
      ],
    },
    async (log) => {
      await withToolsClient(tools, async (client) => {
        for (const [index, text] of sqlLookingStrings.entries()) {
          const call = index + 1;
          const answer = await callTool(client, 'write', {
            journal: {
              run_id: runId,
              worker: tenant.worker,
              tenant: tenant.id,
              turn: 1,
              of: 1,
              call,
              ends_turn: call === sqlLookingStrings.length,
            },
            idempotency_key: `${tenant.id}:sql-looking-${call}`,
            amount_cents: 100 * call,
            description: text,
          });
          log(`write ${JSON.stringify(text)}: ${answer.text}`);
          answers.push(answer);
        }
        readAnswer = await callTool(client, 'read', { what: 'journal', run_id: `R-44' or '1'='1` });
        log(`read run_id "R-44' or '1'='1": ${readAnswer.text.slice(0, 200)}`);
      });
      return answers.every((answer) => !answer.isError) ? 0 : 1;
    },
  );
  const stored = await query<{ description: string }>(
    ctx,
    'select description from expenses where tenant_id = $1 and description = any($2)',
    [tenant.id, [...sqlLookingStrings]],
  );
  const rowsAfter = await countRows();
  const tablesAfter = await tablesPresent(ctx);
  const readRun = readAnswer?.value?.run;
  return {
    errors: answers.filter((answer) => answer.isError).map((answer) => answer.text.slice(0, 200)),
    storedVerbatim: new Set(stored.map((row) => row.description)).size,
    delta: rowsAfter - rowsBefore,
    oracleSatisfied: result.expectations.length > 0 && result.expectations.every((e) => e.verdict === 'satisfied'),
    tablesBefore,
    tablesAfter,
    readFoundNothing: readAnswer && !readAnswer.isError ? readRun === null : undefined,
  };
}

/** Whether every string landed as data and nothing else changed (the step's ok mark). */
export function storedAsData(observation: SqlStringsObservation): boolean {
  return (
    observation.errors.length === 0 &&
    observation.storedVerbatim === sqlLookingStrings.length &&
    observation.delta === sqlLookingStrings.length &&
    observation.oracleSatisfied &&
    observation.readFoundNothing === true &&
    sameList(observation.tablesBefore, observation.tablesAfter)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}
