// Quiescence: wait until the async work an action started has settled, with a
// deadline. Not settling in time is reported (the predicates become
// could-not-determine); it is never a pass.
import type pg from 'pg';
import { connect, errorMessage } from '../postgres/pg.js';
import { waitFor, WaitTimeout } from '../util/wait.js';
import type { QuiescenceCondition, QuiescenceResult } from './types.js';

export interface QuiescenceOptions {
  timeoutMs: number;
  /** Between two polls (default 100 ms). */
  intervalMs?: number;
  signal?: AbortSignal;
}

function describe(condition: QuiescenceCondition): string {
  switch (condition.kind) {
    case 'query-settles':
      return `the answer of \`${condition.sql}\` stays the same for ${condition.stableForMs ?? 500} ms`;
    case 'query-true':
      return `\`${condition.sql}\` returns true`;
    case 'process-exits':
      return `process ${condition.pid} exits`;
    case 'check':
      return condition.what;
  }
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export async function waitForQuiescence(condition: QuiescenceCondition, options: QuiescenceOptions): Promise<QuiescenceResult> {
  const what = describe(condition);
  const started = Date.now();
  let polls = 0;
  let detail = '';
  let client: pg.Client | undefined;
  const query = async (url: string, sql: string, params: unknown[] = []) => {
    // One connection for the polls (each statement outside a transaction sees the latest commits).
    client ??= await connect(url, { applicationName: 'sor-drills oracle quiescence' });
    const result = await client.query({ text: sql, values: params, rowMode: 'array' });
    return result.rows as unknown[][];
  };
  let lastAnswer: string | undefined;
  let stableSince = 0;
  const check = async (): Promise<boolean> => {
    polls += 1;
    switch (condition.kind) {
      case 'query-settles': {
        const answer = JSON.stringify(await query(condition.url, condition.sql, condition.params));
        const now = Date.now();
        if (answer !== lastAnswer) {
          lastAnswer = answer;
          stableSince = now;
        }
        detail = `last answer ${answer.length > 200 ? `${answer.slice(0, 199)}…` : answer}`;
        return polls > 1 && now - stableSince >= (condition.stableForMs ?? 500);
      }
      case 'query-true': {
        const rows = await query(condition.url, condition.sql, condition.params);
        const value = rows[0]?.[0];
        detail = `last answer ${JSON.stringify(value ?? null)}`;
        return value === true || value === 't' || value === 'true';
      }
      case 'process-exits':
        detail = `process ${condition.pid} ${processGone(condition.pid) ? 'exited' : 'still running'}`;
        return processGone(condition.pid);
      case 'check':
        return Boolean(await condition.check());
    }
  };
  try {
    await waitFor(what, check, { timeoutMs: options.timeoutMs, intervalMs: options.intervalMs ?? 100, signal: options.signal });
    return { settled: true, what, waitedMs: Date.now() - started, polls, detail };
  } catch (error) {
    const reason =
      error instanceof WaitTimeout
        ? `did not settle within ${options.timeoutMs} ms${detail ? ` (${detail})` : ''}`
        : `could not be checked: ${errorMessage(error)}`;
    return { settled: false, what, waitedMs: Date.now() - started, polls, detail: reason };
  } finally {
    await client?.end().catch(() => {});
  }
}
