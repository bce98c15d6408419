// `sor-drills setup`: installs the reference Reconciler schema and its seed rows
// into an empty target, and `--down` removes them again through the down
// migrations. It never touches a database that already holds a Reconciler schema
// it did not install, and never writes into a foreign database without consent.
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { loadMigrations, seedFile, type Migration } from './migrations.js';
import { inTransaction, sqlState, TargetError, withPgClient, errorMessage } from './pg.js';
import { defaultRoles, reconcilerTables } from './roles.js';

export type TargetState =
  | { kind: 'empty' }
  | { kind: 'installed'; versions: string[] }
  | { kind: 'partial'; versions: string[]; missing: string[] }
  | { kind: 'reconciler-unmanaged'; tables: string[] }
  | { kind: 'foreign'; tables: string[] };

export interface SetupOptions {
  /** The target is the console's own embedded cluster: no consent needed. */
  embedded: boolean;
  yes: boolean;
  onProgress?: (line: string) => void;
}

export class ConsentError extends Error {
  override name = 'ConsentError';
}

/** What the target holds, read from pg_catalog. */
export async function inspectTarget(client: pg.Client, migrations: Migration[]): Promise<TargetState> {
  const { rows: tables } = await client.query<{ name: string }>(
    `select c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p', 'v', 'm')
        and n.nspname not in ('pg_catalog', 'information_schema')
        and n.nspname not like 'pg\\_%'
        -- objects an extension made (pg_stat_statements' views) are not the database's own tables
        and not exists (select 1 from pg_depend d
                          where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
      order by c.relname`,
  );
  const names = tables.map((row) => row.name);
  const reconciler = reconcilerTables.filter((table) => names.includes(table));
  let versions: string[] = [];
  if (names.includes('schema_migrations')) {
    const { rows } = await client
      .query<{ version: string }>(`select version::text as version from public.schema_migrations order by version`)
      .catch((error: unknown) => {
        // A role that may not read the migration table cannot tell what the target holds: a privilege, exit 3.
        if (sqlState(error) !== '42501') throw error;
        throw new TargetError(
          `cannot read public.schema_migrations: ${errorMessage(error)} (42501); connect as a superuser or the schema's owner`,
          '42501',
          { cause: error },
        );
      });
    versions = rows.map((row) => row.version);
  }
  const ours = migrations.map((migration) => migration.version);
  const applied = ours.filter((version) => versions.includes(version));
  if (applied.length === ours.length) return { kind: 'installed', versions: applied };
  if (applied.length > 0) {
    return { kind: 'partial', versions: applied, missing: ours.filter((version) => !applied.includes(version)) };
  }
  if (reconciler.length > 0) return { kind: 'reconciler-unmanaged', tables: reconciler };
  const foreign = names.filter((name) => name !== 'schema_migrations');
  if (foreign.length > 0) return { kind: 'foreign', tables: foreign };
  return { kind: 'empty' };
}

interface Privileges {
  superuser: boolean;
  createrole: boolean;
  createdb: boolean;
  createInPublic: boolean;
  rolesExist: boolean;
}

async function readPrivileges(client: pg.Client): Promise<Privileges> {
  const { rows } = await client.query<Privileges>(
    `select r.rolsuper as superuser, r.rolcreaterole as createrole, r.rolcreatedb as createdb,
            has_schema_privilege('public', 'create') as "createInPublic",
            (select count(*) from pg_roles where rolname = any($1::text[])) = cardinality($1::text[]) as "rolesExist"
       from pg_roles r where r.rolname = current_user`,
    [[defaultRoles.worker, defaultRoles.reader, defaultRoles.owner]],
  );
  return rows[0]!;
}

export interface SetupResult {
  changed: boolean;
  lines: string[];
}

/** What setup says, kept for the result and passed on to the caller's progress as it happens. */
function progressLog(options: SetupOptions): { lines: string[]; say: (line: string) => void } {
  const lines: string[] = [];
  return {
    lines,
    say(line) {
      lines.push(line);
      options.onProgress?.(line);
    },
  };
}

export async function setup(url: string, options: SetupOptions): Promise<SetupResult> {
  const migrations = await loadMigrations();
  const { lines, say } = progressLog(options);
  return withPgClient(url, async (client) => {
    const state = await inspectTarget(client, migrations);
    switch (state.kind) {
      case 'installed':
        say(`the Reconciler schema is already installed (migrations ${state.versions.join(', ')}); nothing changed`);
        return { changed: false, lines };
      case 'partial':
        throw new TargetError(
          `the Reconciler schema is half installed (missing ${state.missing.join(', ')}): run \`sor-drills setup --down\`, then setup again`,
        );
      case 'reconciler-unmanaged':
        say(
          `the target already holds Reconciler tables (${state.tables.join(', ')}) that setup did not install; the drills will test them as they are, setup changes nothing`,
        );
        return { changed: false, lines };
      case 'foreign':
        if (!options.embedded && !options.yes) {
          throw new ConsentError(
            `the target holds tables of its own (${state.tables.slice(0, 5).join(', ')}${state.tables.length > 5 ? ', ...' : ''}) and no Reconciler schema; drills write rows that cannot be deleted (agent_events is append-only), so use a disposable database, or pass --yes to install into this one anyway`,
          );
        }
        break;
      case 'empty':
        break;
    }
    const privileges = await readPrivileges(client);
    if (!privileges.superuser && !privileges.createrole) {
      throw new TargetError(
        `missing privilege CREATEROLE: setup creates the roles ${Object.values(defaultRoles).join(', ')}; grant it (ALTER ROLE ... CREATEROLE) or have an administrator create them`,
        '42501',
      );
    }
    if (!privileges.superuser && !privileges.createInPublic) {
      throw new TargetError(
        `missing privilege CREATE on schema public: grant it (GRANT CREATE ON SCHEMA public TO ...) or use a database you own`,
        '42501',
      );
    }
    // One transaction for the whole install: a failure leaves the target as it was.
    await inTransaction(client, async () => {
      await client.query(`create table if not exists public.schema_migrations (version varchar(128) primary key)`);
      for (const migration of migrations) {
        await runStep(`migration ${migration.version} ${migration.name} up`, async () => {
          await client.query(migration.up);
          await client.query(`insert into public.schema_migrations (version) values ($1)`, [migration.version]);
        });
        say(`applied ${migration.version}_${migration.name} (up)`);
      }
      const seed = await readFile(seedFile, 'utf8');
      await runStep('seed rows', () => client.query(seed));
      say('inserted seed rows: tenants alice and bob, 47 + 31 expenses, pending T-101..T-110, run R-44');
    });
    if (!privileges.superuser && !privileges.createdb) {
      say('note: this role lacks CREATEDB; the migration drill will need it (or Neon credentials) for its branch');
    }
    return { changed: true, lines };
  });
}

export async function setupDown(url: string, options: SetupOptions): Promise<SetupResult> {
  const migrations = await loadMigrations();
  const { lines, say } = progressLog(options);
  return withPgClient(url, async (client) => {
    const state = await inspectTarget(client, migrations);
    if (state.kind === 'empty' || state.kind === 'foreign') {
      say('no Reconciler schema installed by setup here; nothing changed');
      return { changed: false, lines };
    }
    if (state.kind === 'reconciler-unmanaged') {
      throw new TargetError(
        `the Reconciler tables here (${state.tables.join(', ')}) were not installed by setup; remove them yourself`,
      );
    }
    const applied = new Set(state.versions);
    await inTransaction(client, async () => {
      for (const migration of [...migrations].reverse()) {
        if (!applied.has(migration.version)) continue;
        await runStep(`migration ${migration.version} ${migration.name} down`, async () => {
          await client.query(migration.down);
          await client.query(`delete from public.schema_migrations where version = $1`, [migration.version]);
        });
        say(`reverted ${migration.version}_${migration.name} (down)`);
      }
      const { rows } = await client.query<{ left: number }>(`select count(*)::int as left from public.schema_migrations`);
      if (rows[0]?.left === 0) await client.query(`drop table public.schema_migrations`);
    });
    return { changed: true, lines };
  });
}

async function runStep<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    const code = sqlState(error);
    if (code === '42501') {
      throw new TargetError(`${what}: permission denied (42501): ${errorMessage(error)}`, code, { cause: error });
    }
    throw new TargetError(`${what} failed${code ? ` (${code})` : ''}: ${errorMessage(error)}`, code, {
      cause: error,
    });
  }
}
