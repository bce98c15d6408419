// Getting a target ready for the drills: one rule for the console and for
// `sor-drills run`. A target that is not our own embedded cluster is written to
// only with consent (`--yes`, or `y` at the console's prompt), whatever it holds,
// because drills write rows that can never be deleted. With consent (or on the
// embedded cluster) the reference schema is installed into a target that holds
// none; a target that holds a Reconciler schema, whole, half or unmanaged, is
// tested as it is: nothing here repairs it.
//
// The caller decides what "needs consent" becomes: the console asks, the
// headless run turns it into a usage error naming --yes (exit 2).
import { loadMigrations } from './migrations.js';
import { withPgClient } from './pg.js';
import { inspectTarget, setup, type TargetState } from './setup.js';
import type { Target } from './target.js';

export const consentText =
  'drills write rows into the target, and agent_events is append-only by design, so they can never be deleted: use a disposable database';

export type Preparation =
  /** The schema is there (installed now, or already): the drills can run. */
  | { kind: 'ready'; state: TargetState }
  /** Nothing was written: the operator must consent first. `why` is one line, naming the target and what it holds. */
  | { kind: 'needs-consent'; state: TargetState; why: string; installs: boolean };

/** Whether preparing this state installs the reference schema (otherwise the target is tested as it is). */
export function installs(state: TargetState): boolean {
  return state.kind === 'empty' || state.kind === 'foreign';
}

function listed(names: readonly string[]): string {
  return `${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}`;
}

/** What the target holds and what preparing it would do, for the consent question. */
export function describeState(state: TargetState): string {
  switch (state.kind) {
    case 'empty':
      return 'is empty: the reference Reconciler schema and its seed rows would be installed into it';
    case 'foreign':
      return `holds tables of its own (${listed(state.tables)}) and no Reconciler schema: the reference schema would be installed beside them`;
    case 'installed':
      return 'holds the Reconciler schema: the drills would test it as it is';
    case 'partial':
      return `holds a half-installed Reconciler schema (missing ${state.missing.join(', ')}): the drills would test it as it is`;
    case 'reconciler-unmanaged':
      return `holds Reconciler tables that setup did not install (${listed(state.tables)}): the drills would test them as they are`;
  }
}

/** The question the operator answers (the console's prompt; the headless run's usage error). */
export function consentQuestion(target: Pick<Target, 'display'>, state: TargetState): string {
  return `${target.display} ${describeState(state)}; ${consentText}`;
}

/** Reads what the target holds; installs the schema only where it may and should. */
export async function prepareTarget(
  target: Target,
  options: {
    consent: boolean;
    onProgress?: (line: string) => void;
    /** A profile was given (--profile): the target holds its own schema, drilled as it is; nothing is installed. */
    profile?: string;
  },
): Promise<Preparation> {
  const say = options.onProgress ?? (() => {});
  const embedded = target.kind === 'embedded';
  const migrations = await loadMigrations();
  const state = await withPgClient(target.url, (client) => inspectTarget(client, migrations));
  if (options.profile) {
    if (!embedded && !options.consent) {
      return { kind: 'needs-consent', state, why: `${target.display} would be drilled as it is, through the profile ${options.profile}; ${consentText}`, installs: false };
    }
    say(`drilling the target as it is, through the profile ${options.profile}`);
    return { kind: 'ready', state };
  }
  if (!embedded && !options.consent) {
    return { kind: 'needs-consent', state, why: consentQuestion(target, state), installs: installs(state) };
  }
  switch (state.kind) {
    case 'empty':
    case 'foreign':
      // Consent was given (or the cluster is ours): setup's own refusal of a foreign database does not apply.
      await setup(target.url, { embedded, yes: true, onProgress: say });
      break;
    case 'installed':
      say('the Reconciler schema is installed: testing it as it is');
      break;
    case 'partial':
      say(`the Reconciler schema is half installed (missing ${state.missing.join(', ')}): testing it as it is`);
      break;
    case 'reconciler-unmanaged':
      say('the target holds a Reconciler schema not installed by setup: testing it as it is');
      break;
  }
  return { kind: 'ready', state };
}
