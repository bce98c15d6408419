// One oracle run around an episode that spans several steps (the blip, the
// kill and the restart): withEvidence wants the whole action in one callback,
// so the callback waits on a gate the last step opens.
import type { OracleResult } from '../../oracle/index.js';
import { withEvidence, type EvidenceSpec } from '../evidence.js';
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
