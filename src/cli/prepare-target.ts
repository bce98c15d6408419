// Getting a target ready for the drills: reach it, ask for consent before
// writing into anything that is not our own embedded cluster, and install the
// reference schema only into a target that holds none. A target that already
// holds a Reconciler schema is tested as it is.
import { resolveTarget, type Target } from '../postgres/target.js';
import { inspectTarget, setup } from '../postgres/setup.js';
import { loadMigrations } from '../postgres/migrations.js';
import { withPgClient } from '../postgres/pg.js';
import { defaultRoles, type Roles } from '../postgres/roles.js';
import { UsageError } from '../postgres/url.js';

export interface PrepareOptions {
  db?: string;
  keep?: boolean;
  yes: boolean;
  onProgress?: (line: string) => void;
  roles?: Partial<Record<keyof Roles, string | undefined>>;
}

export interface PreparedTarget {
  target: Target;
  roles: Roles;
}

export const consentText =
  'drills write rows into the target, and agent_events is append-only by design, so they can never be deleted: use a disposable database';

export async function prepareTarget(options: PrepareOptions): Promise<PreparedTarget> {
  const say = options.onProgress ?? (() => {});
  const target = await resolveTarget({ db: options.db, keep: options.keep, onProgress: say });
  try {
    if (target.kind !== 'embedded' && !options.yes) {
      throw new UsageError(`${target.display}: ${consentText}; pass --yes to consent`);
    }
    const migrations = await loadMigrations();
    const state = await withPgClient(target.url, (client) => inspectTarget(client, migrations));
    if (state.kind === 'empty' || state.kind === 'foreign') {
      await setup(target.url, { embedded: target.kind === 'embedded', yes: options.yes, onProgress: say });
    } else if (state.kind === 'reconciler-unmanaged') {
      say(`the target holds a Reconciler schema not installed by setup: testing it as it is`);
    } else if (state.kind === 'partial') {
      say(`the Reconciler schema is half installed (missing ${state.missing.join(', ')}): testing it as it is`);
    } else {
      say('the Reconciler schema is installed: testing it as it is');
    }
    const roles: Roles = {
      worker: options.roles?.worker ?? defaultRoles.worker,
      reader: options.roles?.reader ?? defaultRoles.reader,
      owner: options.roles?.owner ?? defaultRoles.owner,
    };
    return { target, roles };
  } catch (error) {
    await target.close();
    throw error;
  }
}
