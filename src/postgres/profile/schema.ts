// The profile: one JSON file that tells the drills, the tool server and the relay
// what the target calls each thing they need. The zod schema below is the one
// source: the published JSON Schema (profile.schema.json at the package root) is
// generated from it (`npm run -s profile-schema`) and a test keeps the two equal.
//
// Every name is a plain identifier of the target (a table or a column); a key
// that is optional may be left out when the schema has no such column, and the
// evidence then says less (never a false verdict). Status values map the
// drills' words (pending, claimed, ...) onto the target's CHECK values.
//
// `required`: the target's NOT NULL columns without a default that the drills do
// not otherwise fill, each with a value template bound as a parameter (never
// spliced into SQL). Placeholders: {key} a token unique to the row, {tenant} the
// drill tenant's key, {uuid} a fresh random uuid.
import { z } from 'zod';

export const profileVersion = 1;

const name = z
  .string()
  .min(1, 'must be a table or column name, not empty')
  .max(63, 'is longer than the 63 bytes PostgreSQL keeps of a name')
  .refine((value) => !value.includes('\0'), 'holds a NUL byte');

const required = z
  .record(name, z.string())
  .describe('NOT NULL columns without a default the drills do not fill, each with a value template ({key}, {tenant}, {uuid})');

const statusOf = <const K extends readonly [string, ...string[]]>(words: K, what: string) =>
  z.strictObject({
    column: name,
    values: z.strictObject(Object.fromEntries(words.map((word) => [word, z.string().min(1)])) as { [W in K[number]]: z.ZodString }),
  }).describe(`the status column of ${what} and the target's value for each of: ${words.join(', ')}`);

const amount = z
  .strictObject({
    column: name,
    unit: z.enum(['cents', 'major']).describe('cents: an integer count of cents; major: a numeric amount in units (12.50)'),
  })
  .describe('the amount column and how it counts money');

/** The placeholders a process's `env` may use, and a tool argument template's. */
export const envPlaceholders = [
  'database_url',
  'port',
  'token',
  'tools_url',
  'tenant',
  'worker',
  'turns',
  'claim_hold_ms',
  'email_url',
] as const;
export const argumentPlaceholders = ['tenant', 'worker', 'key', 'amount_cents', 'amount', 'description', 'transaction'] as const;

const command = z
  .array(z.string().min(1))
  .min(1, 'must name a program and its arguments, e.g. ["node", "worker.mjs"]')
  .describe('the program and its arguments; relative paths are resolved against the profile file\'s folder, its cwd');

const envOf = (placeholders: readonly string[]) =>
  z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'), z.string())
    .default({})
    .describe(`the variables the process gets (nothing else of the console's environment): values may hold ${placeholders.map((p) => `{${p}}`).join(', ')}`);

const toolSpec = z.strictObject({
  name: z.string().min(1),
  arguments: z
    .record(z.string(), z.unknown())
    .default({})
    .describe(`the arguments the drills send, templates of ${argumentPlaceholders.map((p) => `{${p}}`).join(', ')} (a string that is one placeholder gets its typed value)`),
});

const processesSchema = z
  .strictObject({
    tool_server: z
      .strictObject({
        command,
        env: envOf(envPlaceholders),
        url: z.string().regex(/^https?:\/\//, 'must be the Streamable HTTP URL, e.g. http://127.0.0.1:{port}/mcp'),
        tools: z
          .strictObject({ claim: toolSpec.optional(), write: toolSpec.optional(), queue: toolSpec.optional(), read: toolSpec.optional() })
          .default({}),
        allowed: z.array(z.string().min(1)).optional().describe('the tool list the boundary drill expects (default: the declared tools, else the four)'),
      })
      .optional(),
    worker: z.strictObject({ command, env: envOf(envPlaceholders) }).optional(),
    relay: z
      .strictObject({
        command,
        env: envOf(envPlaceholders),
        dedup_key: z
          .union([z.strictObject({ header: z.string().min(1) }), z.strictObject({ body: z.string().min(1) })])
          .default({ header: 'Idempotency-Key' })
          .describe('where the relay puts the dedup key of a message it sends: a header, or a field of the JSON body'),
      })
      .optional(),
  })
  .describe("the operator's own Worker side; the reference process runs for each one left out");

export const profileSchema = z
  .strictObject({
    $schema: z.string().optional(),
    version: z.literal(profileVersion),
    schema: name.default('public').describe('the schema that holds the tables (the default search path: public)'),
    roles: z
      .strictObject({
        worker: name.describe('the role the tool server and the relay act as'),
        reader: name.describe('the tenant-scoped reader of the RLS drill (neither superuser nor BYPASSRLS)'),
        owner: name.describe('the role that owns the tables'),
      })
      .describe('the roles of the Reconciler'),
    tenants: z.strictObject({
      table: name,
      key: name,
      name: name.optional(),
      setting: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$.]*$/, 'must be a custom setting such as app.tenant_id (a dotted name)')
        .describe("the session setting the policies read (current_setting('app.tenant_id', true))"),
      required: required.optional(),
    }),
    expenses: z.strictObject({
      table: name,
      key: name,
      tenant: name,
      idempotency_key: z
        .array(name)
        .min(1)
        .describe("the columns of the unique key a repeated write conflicts on: the key column, and the tenant column when the key is per tenant"),
      amount,
      description: name.optional(),
      transaction: name.optional().describe('the column that holds the pending transaction it came from'),
      required: required.optional(),
    }),
    pending_transactions: z.strictObject({
      table: name,
      key: name,
      tenant: name,
      amount,
      description: name.optional(),
      status: statusOf(['pending', 'claimed', 'processed'] as const, 'a pending transaction'),
      claimed_by: name.optional(),
      lease_until: name.optional().describe('when a claim expires (a claim without one is never reclaimed)'),
      processed_by: name.optional(),
      processed_at: name.optional(),
      required: required.optional(),
    }),
    runs: z.strictObject({
      table: name,
      key: name,
      tenant: name,
      worker: name.optional(),
      status: statusOf(['running', 'finished', 'failed'] as const, 'a run'),
      total_turns: name.optional(),
      error: name.optional(),
      started_at: name.optional(),
      finished_at: name.optional(),
      required: required.optional(),
    }),
    turns: z.strictObject({
      table: name,
      key: name,
      run: name,
      number: name.describe('the turn number within its run, from 1'),
      status: statusOf(['running', 'completed', 'failed'] as const, 'a turn'),
      started_at: name.optional(),
      finished_at: name.optional(),
      required: required.optional(),
    }),
    tool_calls: z.strictObject({
      table: name,
      key: name,
      turn: name.describe('the reference to turns'),
      run: name.optional().describe('a reference to runs, when tool_calls has one besides its turn'),
      turn_number: name.optional(),
      number: name.describe('the call number within its turn, from 1'),
      tool: name,
      arguments: name,
      result: name.optional(),
      status: statusOf(['started', 'completed', 'failed'] as const, 'a tool call'),
      error: name.optional(),
      error_code: name.optional(),
      started_at: name.optional(),
      finished_at: name.optional(),
      duration_ms: name.optional(),
      required: required.optional(),
    }),
    outbox: z.strictObject({
      table: name,
      key: name,
      tenant: name,
      run: name.optional(),
      dedup_key: name,
      recipient: name.optional(),
      subject: name.optional(),
      body: name.optional(),
      payload: name.optional().describe('a json or jsonb column that holds {to, subject, body} when there are no columns for them'),
      status: statusOf(['pending', 'dispatched', 'failed'] as const, 'an outbox message'),
      attempts: name.optional(),
      last_error: name.optional(),
      next_attempt_at: name.optional(),
      dispatched_at: name.optional(),
      required: required.optional(),
    }),
    events: z.strictObject({
      table: name,
      key: name.describe('the ordering column: events are read in its order'),
      run: name,
      tenant: name.optional(),
      turn_number: name.optional(),
      type: name,
      payload: name,
      created_at: name.optional(),
      required: required.optional(),
    }),
    processes: processesSchema.optional(),
  })
  .describe('sor-drills profile: what the target calls each thing the drills need');

export type Profile = z.output<typeof profileSchema>;
export type ProfileInput = z.input<typeof profileSchema>;
export type Processes = NonNullable<Profile['processes']>;
export type ToolSpec = z.output<typeof toolSpec>;

/** The profile's parts that name one table each. */
export const profileTables = ['tenants', 'expenses', 'pending_transactions', 'runs', 'turns', 'tool_calls', 'outbox', 'events'] as const;
export type ProfileTable = (typeof profileTables)[number];

/** The published JSON Schema, generated from the zod schema. */
export function profileJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(profileSchema, { io: 'input' }),
    $id: 'https://sor-drills.dev/profile.schema.json',
    title: 'sor-drills profile',
  };
}
