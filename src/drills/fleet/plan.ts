// The fleet drill's plan: how many Workers, over how many transactions and
// tenants, on how many OS processes, and the names its rows carry. Without I/O.
//
// How Workers map onto processes (stated in the report): each Worker is a whole
// reference Worker with its own MCP client, session, name and runs; `hosts` Node
// processes run them side by side (fleet-worker.ts), 10 Workers each by default,
// because 100 Node processes on 2 cores would measure the scheduler, not the
// database. The Workers reach the database only through `toolServers` tool server
// processes, each keeping `poolSize` connections: what the database sees is
// toolServers x poolSize backends, whatever the Worker count.

export interface FleetOptions {
  workers: number;
  transactions: number;
  tenants: number;
  /** Worker host processes SIGKILLed at random moments mid-run and started again. */
  kill: number;
  /** false: plain FOR UPDATE claims (--no-skip-locked). */
  skipLocked: boolean;
  /** The broken claim of the tests: no row lock at all (the claimWithoutLock break). */
  claimWithoutLock: boolean;
  /** Worker host processes (each runs workers / hosts Workers). */
  hosts: number;
  toolServers: number;
  /** Database connections per tool server. */
  poolSize: number;
  /** Turns of each Worker run; a Worker starts runs until a claim finds nothing left. */
  turns: number;
  /** Seed of the kill moments and the amounts (the report prints it). */
  seed: number;
}

export const fleetDefaults = {
  workers: 100,
  transactions: 10_000,
  tenants: 10,
  kill: 0,
  toolServers: 2,
  poolSize: 8,
  turns: 10,
} as const;

/** Worker hosts for a Worker count: 10 Workers per process, at least one, at most 20 processes. */
export function defaultHosts(workers: number): number {
  return Math.max(1, Math.min(20, Math.ceil(workers / 10)));
}

export interface FleetWorker {
  name: string;
  tenant: string;
  /** Index of its tool server. */
  tools: number;
  /** Index of its host process. */
  host: number;
}

export interface FleetPlan {
  tag: string;
  tenants: string[];
  workers: FleetWorker[];
  /** Per tenant, how many pending transactions are seeded (spread as evenly as the count allows). */
  perTenant: number[];
  /** Processed counts at which a host is killed, ascending. */
  killAt: number[];
}

/** A small seeded PRNG (mulberry32): the same seed gives the same kill moments. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** `fleet-20261201t183012`: unique enough per run, sortable, and what every row of the run carries. */
export function fleetTag(when: Date): string {
  return `fleet-${when.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', 't').toLowerCase()}`;
}

export function planFleet(options: FleetOptions, tag: string): FleetPlan {
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  const tenants = Array.from({ length: options.tenants }, (_, index) => `${tag}-t${pad(index + 1, 2)}`);
  const perTenant = tenants.map((_, index) => Math.floor(options.transactions / options.tenants) + (index < options.transactions % options.tenants ? 1 : 0));
  const width = Math.max(3, String(options.workers).length);
  const workers = Array.from({ length: options.workers }, (_, index) => ({
    name: `${tag}-w${pad(index + 1, width)}`,
    tenant: tenants[index % tenants.length]!,
    tools: index % options.toolServers,
    host: index % options.hosts,
  }));
  // Kill moments spread over the middle of the run (10% to 90% processed), in order.
  const next = random(options.seed);
  const killAt = Array.from({ length: options.kill }, () => Math.floor(options.transactions * (0.1 + 0.8 * next()))).sort((a, b) => a - b);
  return { tag, tenants, workers, perTenant, killAt };
}

/** What a usage check refuses, in one line each (the CLI turns them into exit 2). */
export function planProblems(options: FleetOptions): string[] {
  const problems: string[] = [];
  if (options.workers < 1) problems.push('--workers must be at least 1');
  if (options.tenants < 1) problems.push('--tenants must be at least 1');
  if (options.transactions < options.tenants) problems.push('--transactions must be at least --tenants (every tenant gets work)');
  if (options.tenants > options.workers) problems.push('--tenants must not exceed --workers (every tenant needs a Worker)');
  if (options.hosts < 1 || options.hosts > options.workers) problems.push('--hosts must be between 1 and --workers');
  if (options.kill < 0) problems.push('--kill must not be negative');
  if (options.toolServers < 1) problems.push('--tool-servers must be at least 1');
  if (options.poolSize < 1) problems.push('--pool must be at least 1');
  return problems;
}
