// Pure parts of the Reconciler: the environment allow-lists, where a crashed run
// resumes, the Worker's arguments, and the break switches.
import { describe, expect, it } from 'vitest';
import { allowListEnv, credentialVariables, parseEnviron, workerEnvAllowList } from '../../src/reconciler/env.js';
import { formatBreaks, parseBreaks, type ResumeResult } from '../../src/reconciler/actions.js';
import { queueArguments, readWorkerConfig, resumePoint, writeArguments } from '../../src/reconciler/worker-plan.js';
import { workerEnv } from '../../src/reconciler/launch.js';
import { parseJsonLine } from '../../src/reconciler/json-lines.js';

const consoleEnv = {
  PATH: '/usr/bin',
  LANG: 'C.UTF-8',
  HOME: '/root',
  DATABASE_URL: 'postgres://u:p@h/db',
  PGPASSWORD: 'p',
  PGHOST: 'h',
  NODE_OPTIONS: '--require evil',
};

describe('environments', () => {
  it('copies only PATH, LANG and TZ from the console', () => {
    expect(allowListEnv({ SOR_A: 1, SOR_B: undefined }, consoleEnv)).toEqual({ PATH: '/usr/bin', LANG: 'C.UTF-8', SOR_A: '1' });
  });

  it("builds the Worker's environment from its allow-list only", () => {
    const env = workerEnv({ name: 'w', tenant: 'alice', tools: { url: 'http://127.0.0.1:1/mcp', token: 't' }, pace_ms: 5 }, consoleEnv);
    expect(Object.keys(env).every((name) => (workerEnvAllowList as readonly string[]).includes(name))).toBe(true);
    expect(credentialVariables(env)).toEqual([]);
    expect(env).toMatchObject({ SOR_TURNS: '5', SOR_RESUME: '1', SOR_MODE: 'run' });
    const leaky = workerEnv({ name: 'w', tenant: 'a', tools: { url: 'u', token: 't' }, pace_ms: 0, leakDatabaseUrl: 'postgres://x' }, consoleEnv);
    expect(credentialVariables(leaky)).toEqual(['DATABASE_URL']);
  });

  it('reads /proc/<pid>/environ and spots credentials', () => {
    expect(parseEnviron('A=1\0B=x=y\0\0')).toEqual({ A: '1', B: 'x=y' });
    expect(credentialVariables({ DATABASE_URL: '', PGUSER: '', PATH: '' })).toEqual(['DATABASE_URL', 'PGUSER']);
  });
});

describe('resumePoint', () => {
  const run = { id: 'r1', tenant_id: 'alice', worker: 'w', status: 'running', total_turns: 5, error: null, started_at: '', finished_at: null };
  const turn = (turn_no: number, status: string) => ({ turn_no, status, started_at: '', finished_at: null });

  it('is null without a crashed run', () => {
    expect(resumePoint({ run: null, turns: [], calls: [] })).toBeNull();
  });

  it('resumes at the first turn not completed, with that turn’s completed calls only', () => {
    const answer: ResumeResult = {
      run,
      turns: [turn(1, 'completed'), turn(2, 'completed'), turn(3, 'running')],
      calls: [
        { turn: 1, call: 1, tool: 'claim', result: { transaction_id: 'T-101' } },
        { turn: 3, call: 1, tool: 'claim', result: { transaction_id: 'T-103' } },
        { turn: 3, call: 2, tool: 'write', result: { inserted: true } },
        { turn: 3, call: 2, tool: 'write', result: { inserted: false } },
      ],
    };
    const point = resumePoint(answer)!;
    expect(point).toMatchObject({ runId: 'r1', of: 5, fromTurn: 3 });
    expect([...point.recorded.keys()]).toEqual(['3.1', '3.2']);
    expect(point.recorded.get('3.2')?.result).toEqual({ inserted: true });
  });

  it('resumes at the next turn when the crash fell between turns', () => {
    expect(resumePoint({ run, turns: [turn(1, 'completed'), turn(2, 'completed')], calls: [] })?.fromTurn).toBe(3);
    expect(resumePoint({ run, turns: [], calls: [] })?.fromTurn).toBe(1);
  });
});

describe("the Worker's plan", () => {
  it('keys the write and the email by tenant and transaction', () => {
    const claimed = { transaction_id: 'T-103', amount_cents: 8420, description: 'Train ticket London' };
    expect(writeArguments('alice', claimed)).toEqual({
      idempotency_key: 'alice:T-103',
      transaction_id: 'T-103',
      amount_cents: 8420,
      description: 'Train ticket London',
    });
    expect(queueArguments('alice', claimed, { expense_id: '80' })).toMatchObject({
      dedup_key: 'expense-recorded:alice:T-103',
      recipient: 'finance@alice.example',
      subject: 'Expense recorded: T-103',
    });
  });

  it('reads its settings and refuses bad ones', () => {
    const base = { SOR_TOOLS_URL: 'http://x/mcp', SOR_TOOLS_TOKEN: 't', SOR_WORKER_NAME: 'w', SOR_TENANT: 'alice' };
    expect(readWorkerConfig({ ...base, SOR_RESUME: '0', SOR_PACE_MS: '20' })).toMatchObject({ resume: false, paceMs: 20, turns: 5, mode: 'run' });
    expect(() => readWorkerConfig({ ...base, SOR_MODE: 'fly' })).toThrow(/SOR_MODE/);
    expect(() => readWorkerConfig({ ...base, SOR_PACE_MS: '-1' })).toThrow(/SOR_PACE_MS/);
    expect(() => readWorkerConfig({ SOR_TENANT: 'alice' })).toThrow(/SOR_TOOLS_URL/);
  });
});

describe('breaks and lines', () => {
  it('round-trips the break switches and refuses unknown ones', () => {
    expect(parseBreaks(formatBreaks({ noSkipLocked: true, noEvents: true }))).toEqual({ noSkipLocked: true, noEvents: true });
    expect(formatBreaks()).toBe('');
    expect(() => parseBreaks('noSafety')).toThrow(/unknown break/);
  });

  it('parses JSON lines and leaves other text alone', () => {
    expect(parseJsonLine('{"event":"x","a":1}')).toEqual({ event: 'x', a: 1 });
    expect(parseJsonLine('plain text')).toBeUndefined();
    expect(parseJsonLine('{"no_event":1}')).toBeUndefined();
  });
});
