// Claim holds that can be ended early. A hold keeps a claimed row locked for a
// while before the claim goes on (the tool server's claim, the relay's send), so
// that a second claimer arrives while the row is held: a race made visible.
// SIGUSR2 ends every hold in progress at once, so a test can keep a row held for
// as long as it needs to look (another claimer skipping it, or waiting on it) and
// then let it go, instead of relying on the hold being long enough, or sleeping
// through a hold that is longer than it needs.
import { emit } from './json-lines.js';

export type HoldEnd = 'elapsed' | 'released';

export interface Holds {
  /** Resolves after `ms`, or sooner (with 'released') when release() is called meanwhile. */
  hold(ms: number): Promise<HoldEnd>;
  /** Ends every hold in progress; returns how many there were. Later holds are not affected. */
  release(): number;
}

export function createHolds(): Holds {
  const waiting = new Set<() => void>();
  return {
    hold(ms) {
      return new Promise<HoldEnd>((resolve) => {
        const end = (how: HoldEnd) => {
          clearTimeout(timer);
          waiting.delete(release);
          resolve(how);
        };
        const release = () => end('released');
        const timer = setTimeout(() => end('elapsed'), ms);
        waiting.add(release);
      });
    },
    release() {
      const current = [...waiting];
      for (const release of current) release();
      return current.length;
    },
  };
}

/**
 * The process's holds, ended by SIGUSR2 (SIGUSR1 belongs to Node's debugger). Each
 * signal logs `holds_released {count}` on stdout: what releaseHolds() in launch.ts waits on.
 */
export function holdsReleasedBySignal(log: (event: string, fields: Record<string, unknown>) => void = emit): Holds {
  const holds = createHolds();
  process.on('SIGUSR2', () => log('holds_released', { count: holds.release() }));
  return holds;
}
