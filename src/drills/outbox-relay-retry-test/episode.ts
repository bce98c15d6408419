// One oracle run around an episode that spans several steps (the blip, the
// kill and the restart): withEvidence wants the whole action in one callback,
// so the callback waits on a gate the last step opens.
import type { OracleResult } from '../../oracle/index.js';
import { naturalKeys, withEvidence, type EvidenceSpec } from '../evidence.js';
import type { DrillContext } from '../types.js';

export interface Episode {
  log(text: string): void;
  /** Lets the oracle take its after-snapshot; resolves with its result. */
  finish(exitCode: number): Promise<OracleResult>;
}

/**
 * Opens the oracle around an episode that spans several steps: the before-snapshot
 * is taken now, the after-snapshot when finish() is called. If a step fails first,
 * the drill's cleanup finishes it with exit code 1, so the evidence is written anyway.
 */
export async function openEpisode(ctx: DrillContext, spec: EvidenceSpec): Promise<Episode> {
  let release!: (exitCode: number) => void;
  const gate = new Promise<number>((resolve) => {
    release = resolve;
  });
  let opened!: (log: (text: string) => void) => void;
  const ready = new Promise<(text: string) => void>((resolve) => {
    opened = resolve;
  });
  const oracle = withEvidence(ctx, spec, async (log) => {
    opened(log);
    return gate;
  });
  ctx.defer(async () => {
    release(1);
    await oracle.catch(() => undefined);
  });
  const log = await Promise.race([
    ready,
    oracle.then(() => {
      throw new Error('the oracle finished before the relay episode began');
    }),
  ]);
  return {
    log,
    finish: (exitCode) => {
      release(exitCode);
      return oracle;
    },
  };
}

/**
 * The relay episode of the drill's own row: the row moves from pending to dispatched
 * and no row is added, whichever relay (the reference one or the operator's) sends it.
 */
export function openRelayEpisode(ctx: DrillContext, id: string, dedupKey: string): Promise<Episode> {
  const o = ctx.profile.names.outbox;
  const table = o.tableName;
  const status = o.status.name;
  return openEpisode(ctx, {
    label: `relay outbox row ${id} through a blip, a kill between send and commit, and a restart`,
    tables: [{ name: table, filter: { [o.dedup_key.name]: dedupKey }, key: [o.dedup_key.name] }],
    expect: [`${table}:~{${o.dedup_key.name}="${dedupKey}",${status}="${o.values.pending}"}->{${status}="${o.values.dispatched}"}`, `${table}:+0`],
    // The row's own id (O-405 on the reference schema) stays in the diff when it is a natural key.
    volatiles: [...[o.next_attempt_at, o.dispatched_at].flatMap((column) => (column ? [column.name] : [])), ...naturalKeys(ctx, ['outbox'])],
  });
}
