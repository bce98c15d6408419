// The operator's processes as the profile declares them: placeholders filled, an
// environment of the allow-list and the declared variables only, tool arguments
// typed, and a profile naming a placeholder the drills do not fill refused by key.
import { describe, expect, it } from 'vitest';
import { drivesTheirWorker, fillArguments, fillTemplate, operatorEnv, sessionTag, taggedUrl, whose } from '../../src/drills/operator-side.js';
import { parseProfile, ProfileError, referenceProfile } from '../../src/postgres/profile/index.js';

describe('placeholders', () => {
  it('fills an env template, leaving what the drill has no value for empty', () => {
    expect(fillTemplate('http://127.0.0.1:{port}/mcp', { port: 4312 })).toBe('http://127.0.0.1:4312/mcp');
    expect(fillTemplate('{claim_hold_ms}', {})).toBe('');
  });

  it('a process gets the allow-list and its declared variables, nothing else of the console', () => {
    const env = operatorEnv(
      { TOOLS_URL: '{tools_url}', USER_ID: '{tenant}' },
      { tools_url: 'http://127.0.0.1:1/mcp', tenant: 'u-1', database_url: 'postgres://x' },
    );
    const extra = Object.keys(env).filter((name) => !['PATH', 'LANG', 'TZ'].includes(name));
    expect(extra.sort()).toEqual(['TOOLS_URL', 'USER_ID']);
    expect(env.TOOLS_URL).toBe('http://127.0.0.1:1/mcp');
    expect(Object.values(env).join(' ')).not.toContain('postgres://');
  });

  it('a tool argument that is one placeholder takes the typed value; mixed text gets text', () => {
    expect(
      fillArguments(
        { amount: '{amount_cents}', note: 'key {key}', nested: { who: '{tenant}' }, txn: '{transaction}' },
        { amount_cents: 1250, key: 'k-1', tenant: 't', transaction: null },
      ),
    ).toEqual({ amount: 1250, note: 'key k-1', nested: { who: 't' }, txn: null });
  });

  it("the database URL handed to a process carries the drill's session tag", () => {
    expect(taggedUrl('postgres://u:p@127.0.0.1:5432/db', 'tool-server')).toContain('application_name=sor-drills-tool-server');
    expect(sessionTag('x'.repeat(80))).toHaveLength(63);
  });

  it('evidence names whose process it was', () => {
    expect(whose('Worker', ['node', 'worker.mjs'])).toBe("the operator's Worker `node worker.mjs`");
    expect(whose('relay', undefined)).toBe('the reference relay');
  });
});

describe('the processes part of a profile', () => {
  const withProcesses = (processes: unknown) => JSON.stringify({ ...referenceProfile, processes });

  it('reads a whole one', () => {
    const profile = parseProfile(
      withProcesses({
        tool_server: { command: ['node', 'ts.mjs'], env: { PORT: '{port}' }, url: 'http://127.0.0.1:{port}/mcp' },
        worker: { command: ['node', 'w.mjs'], env: { TOOLS_URL: '{tools_url}' } },
        relay: { command: ['node', 'r.mjs'], dedup_key: { body: 'dedup_key' } },
      }),
      'p.json',
    );
    expect(profile.processes?.relay?.dedup_key).toEqual({ body: 'dedup_key' });
    expect(profile.processes?.tool_server?.tools).toEqual({});
  });

  it('a placeholder the drills do not fill is refused, naming the key', () => {
    expect(() => parseProfile(withProcesses({ worker: { command: ['node', 'w.mjs'], env: { TOOLS: '{tool_url}' } } }), 'p.json')).toThrow(
      new ProfileError(
        'profile p.json: processes.worker.env.TOOLS uses {tool_url}, which the drills do not fill (they fill {database_url}, {port}, {token}, {tools_url}, {tenant}, {worker}, {turns}, {claim_hold_ms}, {email_url})',
      ),
    );
  });

  it('an empty command and a URL that is not HTTP are refused by key', () => {
    expect(() => parseProfile(withProcesses({ worker: { command: [] } }), 'p.json')).toThrow(/processes\.worker\.command must name a program/);
    expect(() =>
      parseProfile(withProcesses({ tool_server: { command: ['x'], url: 'stdio' } }), 'p.json'),
    ).toThrow(/processes\.tool_server\.url must be the Streamable HTTP URL/);
  });
});

describe('a drill that drives a Worker', () => {
  const ctxWith = async (processes: Record<string, unknown> | undefined, broken = false) => {
    const { profileNames } = await import('../../src/postgres/profile/index.js');
    const profile = { ...referenceProfile, processes } as typeof referenceProfile;
    return { broken, profile: { profile, names: profileNames(profile) } } as unknown as Parameters<typeof drivesTheirWorker>[0];
  };
  const what = { drive: 'drive', breakName: 'resume off', breakOf: 'reference Worker' };
  const ts = { command: ['node', 't.mjs'], env: {}, url: 'http://127.0.0.1:{port}/mcp', tools: {} };
  const worker = { command: ['node', 'w.mjs'], env: {} };

  it('runs the reference Worker side when the profile names none of theirs', async () => {
    expect(drivesTheirWorker(await ctxWith(undefined), what)).toBe(false);
  });

  it('runs theirs when their Worker is named', async () => {
    expect(drivesTheirWorker(await ctxWith({ worker, tool_server: ts }), what)).toBe(true);
  });

  it('cannot judge their tool server with the reference Worker, nor the reference break on their side', async () => {
    await expect(ctxWith({ tool_server: ts }).then((ctx) => drivesTheirWorker(ctx, what))).rejects.toThrow(
      /declares processes\.tool_server but no processes\.worker: .* cannot drive that tool server/,
    );
    await expect(ctxWith({ worker }, true).then((ctx) => drivesTheirWorker(ctx, what))).rejects.toThrow(
      /the deliberate break \(resume off\) is a switch of the reference Worker/,
    );
  });
});

describe("a step's statements on the operator's tool server", () => {
  it('the idempotency drill shows the declared call it sends, not the reference INSERT', async () => {
    const { profileNames } = await import('../../src/postgres/profile/index.js');
    const { idempotencyRetryTest } = await import('../../src/drills/idempotency-retry-test.js');
    const { stepSql } = await import('../../src/drills/types.js');
    const step = idempotencyRetryTest.steps.find((candidate) => candidate.id === 'write-twice')!;
    const write = { name: 'record_expense', arguments: { idempotency_key: '{key}' } };
    const theirs = profileNames({
      ...referenceProfile,
      processes: { tool_server: { command: ['node', 't.mjs'], env: {}, url: 'http://127.0.0.1:{port}/mcp', tools: { write } } },
    });
    expect(stepSql(step, theirs)).toEqual(['call record_expense {"idempotency_key":"{key}"} twice, with the same {key}']);
    expect(stepSql(step, profileNames(referenceProfile))[0]).toMatch(/^insert into expenses /);
  });
});
