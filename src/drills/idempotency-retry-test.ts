// Drill 3, idempotency_retry_test (Lesson 3, idempotency keys). The same write,
// with the same idempotency key, sent twice through the tool server as an agent
// retrying would: exactly one expenses row may land, and the second call must say
// it was a no-op. The count is read by the oracle before and after, and again by
// query; the unique key that makes ON CONFLICT work lives in the target.
//
// When the profile declares the operator's own tool server, that one is started and
// the write is the profile's tools.write, its argument template filled; the verdict
// is then the row count alone (what their tool answers is theirs to shape), and the
// evidence names whose tool server was drilled.
import { randomUUID } from 'node:crypto';
import { drillTenantStep, toolServerStep, type TenantState, type ToolServerState } from './common-steps.js';
import { withEvidence } from './evidence.js';
import {
  callTool,
  declaredWrite,
  operatorBreakUnavailable,
  startOperatorTools,
  templateUses,
  withToolsClient,
  writeArguments,
  type ToolAnswer,
} from './mcp.js';
import { hasOperator } from './operator-side.js';
import { sql } from '../postgres/sql.js';
import { countWord, query, shownSql } from './sql.js';
import { CouldNotDetermine } from './runner.js';
import { need, type Drill, type VerdictResult } from './types.js';

function inserted(answer: ToolAnswer | undefined): boolean | undefined {
  const value = answer?.value?.inserted;
  return typeof value === 'boolean' ? value : undefined;
}

/** What a write's answer said it did: a no-op (inserted=false), a new row, or nothing it said. */
export function writeOutcome(answer: ToolAnswer | undefined): string {
  const value = inserted(answer);
  return value === false ? 'a no-op' : value === true ? 'a new row' : 'not reported';
}

const capital = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);

interface State extends TenantState, ToolServerState {
  /** The two answers of the tool server, in call order. */
  answers: ToolAnswer[];
  /** expenses rows of the drill tenant after both calls. */
  landed: number;
  /** Set when the operator's tool server was drilled: its name in evidence, and the write tool called. */
  operator?: { whose: string; tool: string };
}

const referenceToolServer = toolServerStep<State>({
  why: 'The write goes through the MCP tool server, the only process holding database credentials.',
  hint: {
    look: 'tool_server is where both write calls go. The Worker never writes expenses itself: it asks this server, which holds the credentials and turns each call into an INSERT with the key the caller sent.',
    mistake: 'A tool that makes its own fresh key on each call (a random id, a timestamp). Every retry then looks new to the unique constraint and lands again; the key must come from the caller and be the same on every retry.',
  },
  breaks: { noIdempotencyKey: true },
});

export const idempotencyRetryTest: Drill<State> = {
  number: 3,
  key: 'idempotency_retry_test',
  title: 'Idempotent retry',
  lesson: 3,
  habit: 'idempotency keys',
  tables: ['expenses', 'tool_calls'],
  needs: ['tenants', 'expenses', 'runs', 'turns', 'tool_calls', 'agent_events'],
  breakDescription: 'the tool server writes without the idempotency key (a fresh key per call, no ON CONFLICT): delta +2',
  fix: (n) => {
    const key = n.expenses.conflict.map((column) => column.name).join(', ');
    return `keep a unique key on ${n.expenses.tableName} (${key}) and write with INSERT ... ON CONFLICT (${key}) DO NOTHING, passing the same key on every retry`;
  },
  init: () => ({ answers: [], landed: 0 }),
  steps: [
    drillTenantStep('idem', 'The drill writes its own rows, so it can run again and never disturbs the rows other drills count.', {
      look: 'tenant is a fresh drill-idem tenant with no expenses yet, so the count after the two writes is exactly what they landed.',
      mistake: "Counting rows on a busy tenant like Alice. Other writes move the count, so a +1 could hide two inserts and a delete; a tenant of the drill's own makes the delta mean one thing.",
    }),
    {
      ...referenceToolServer,
      async run(ctx, state) {
        if (!hasOperator(ctx.profile, 'tool_server')) return referenceToolServer.run(ctx, state);
        if (ctx.broken) throw operatorBreakUnavailable(ctx, 'tool server');
        const write = declaredWrite(ctx.profile, 'the same write twice');
        if (!templateUses(write.arguments, 'key')) {
          throw new CouldNotDetermine(
            `processes.tool_server.tools.write (${write.name}) sends no {key}: put {key} in its arguments where the idempotency key goes, ` +
              'so the drill can send the same key twice',
          );
        }
        const server = await startOperatorTools(ctx);
        state.tools = server;
        state.operator = { whose: server.whose, tool: write.name };
      },
    },
    {
      id: 'write-twice',
      title: 'Send the same write twice',
      why: 'A retry after a timeout sends the same call again; with the same key the second must be a no-op, not a second row.',
      hint: {
        look: "write_1 should be inserted=true and write_2 inserted=false, with one idempotency_key, and rows_landed 1. The oracle's diff shows one new expenses row for this tenant, not two.",
        mistake: 'Guarding with SELECT first, then INSERT if nothing was found. Two retries at once both find nothing and both insert. Only a unique key on (tenant_id, idempotency_key) with INSERT ... ON CONFLICT DO NOTHING holds under a race.',
      },
      sql: (n) => {
        // Their tool server's SQL is theirs: what the drill sends is the declared call.
        const theirs = n.profile.processes?.tool_server?.tools.write;
        if (n.profile.processes?.tool_server) {
          return [theirs ? `call ${theirs.name} ${JSON.stringify(theirs.arguments)} twice, with the same {key}` : 'processes.tool_server.tools.write is not declared'];
        }
        const e = n.expenses;
        const columns = [e.tenant, e.idempotencyKey, e.transaction, e.amount, e.description].filter((column) => column !== undefined);
        const values = columns.map((_, index) => `$${index + 1}`);
        return [
          shownSql(
            `insert into ${e.table} (${columns.join(', ')}) values (${values.join(', ')}) on conflict (${e.conflict.join(', ')}) do nothing returning ${e.key}`,
          ),
        ];
      },
      async run(ctx, state) {
        const tenant = need(state.tenant, 'the drill tenant');
        const tools = need(state.tools, 'the tool server');
        const e = ctx.profile.names.expenses;
        const key = `${tenant.id}:retry-1`;
        const runId = randomUUID();
        ctx.observe('idempotency_key', key);
        const answers: ToolAnswer[] = [];
        await withEvidence(
          ctx,
          {
            label: `write ${key} twice through ${state.operator?.whose ?? 'the tool server'}`,
            tables: [{ name: e.tableName, filter: { [e.tenant.name]: tenant.id }, key: e.conflict.map((column) => column.name) }],
            expect: [`${e.tableName}:+1`, `${e.tableName}:+{${e.tenant.name}="${tenant.id}"}`],
          },
          async (log) => {
            const write = state.operator ? ctx.profile.profile.processes?.tool_server?.tools.write : undefined;
            await withToolsClient(tools, async (client) => {
              for (const call of [1, 2]) {
                const answer = write
                  ? await callTool(
                      client,
                      write.name,
                      writeArguments(write, { tenant: tenant.id, worker: tenant.worker, key, amountCents: 4200, description: 'Retried expense' }),
                    )
                  : await callTool(client, 'write', {
                      journal: { run_id: runId, worker: tenant.worker, tenant: tenant.id, turn: 1, of: 1, call, ends_turn: call === 2 },
                      idempotency_key: key,
                      amount_cents: 4200,
                      description: 'Retried expense',
                    });
                log(`${write?.name ?? 'write'} call ${call}: ${answer.text}`);
                answers.push(answer);
              }
            });
            return answers.every((answer) => !answer.isError) ? 0 : 1;
          },
        );
        answers.forEach((answer, index) => {
          ctx.observe(`write_${index + 1}`, answer.isError ? `error: ${answer.text}` : `inserted=${String(inserted(answer))}`, !answer.isError);
        });
        state.answers = answers;
        const count = sql`select count(*)::int as n from ${e.table} where ${e.tenant} = ${tenant.id}`;
        const rows = await query<{ n: number }>(ctx, count);
        state.landed = rows[0]?.n ?? 0;
        ctx.observe('rows_landed', state.landed, state.landed === 1);
      },
    },
  ],
  verdict(ctx, { answers, landed, operator }) {
    const table = ctx.profile.names.expenses.tableName;
    const [first, second] = answers;
    const failedCall = answers.find((answer) => answer.isError);
    if (operator) return operatorVerdict(table, operator, answers, landed);
    if (failedCall) {
      const reason = `the write failed through the tool server: ${failedCall.text}`;
      return { verdict: 'fail', evidence: reason, reason };
    }
    if (landed !== 1 || inserted(first) !== true || inserted(second) !== false) {
      const reason =
        `two invocations with the same idempotency key produced ${landed} ${table} rows ` +
        `(first inserted=${String(inserted(first))}, second inserted=${String(inserted(second))}); row count delta: +${landed}`;
      return { verdict: 'fail', evidence: reason, reason };
    }
    return {
      verdict: 'pass',
      evidence:
        `${capital(countWord(answers.length))} invocations with the same idempotency key produced ${countWord(landed)} ${table} ` +
        `row${landed === 1 ? '' : 's'}. Second insert was ${writeOutcome(second)}. Row count delta: +${landed}.`,
    };
  },
};

/**
 * The verdict on the operator's tool server: from the rows the database holds. What
 * the answers said (an `inserted` flag, when their tool reports one) is shown, not judged.
 */
function operatorVerdict(table: string, operator: NonNullable<State['operator']>, answers: ToolAnswer[], landed: number): VerdictResult {
  const [first, second] = answers;
  const through = `${operator.tool} through ${operator.whose}`;
  const failedCall = answers.find((answer) => answer.isError);
  if (failedCall) {
    const reason = `the write failed through ${operator.whose} (${operator.tool}): ${failedCall.text}`;
    return { verdict: 'fail', evidence: reason, reason };
  }
  if (landed !== 1) {
    const reason =
      `two invocations of ${through} with the same idempotency key produced ${landed} ${table} rows ` +
      `(first inserted=${String(inserted(first))}, second inserted=${String(inserted(second))}); row count delta: +${landed}`;
    return { verdict: 'fail', evidence: reason, reason };
  }
  return {
    verdict: 'pass',
    evidence:
      `${capital(countWord(answers.length))} invocations of ${through} with the same idempotency key produced one ${table} row. ` +
      `Second insert was ${writeOutcome(second)}. Row count delta: +${landed}.`,
  };
}
