// Live row counts of the current drill's tables, on the console's OWN
// connection (never a drill's), several times a second. One query per tick
// counts every table (count(*) ... union all ...); a tick is skipped while the
// previous one is still running, so a slow count never piles up and never
// holds up a key press (it is all asynchronous I/O).
//
// pause() closes the connection: the migration drill branches the target with
// CREATE DATABASE ... TEMPLATE, which fails (55006) while any session is
// connected to it.
import { update, type TableCount } from '../store.js';
import { errorMessage } from '../postgres/errors.js';
import { benchLine, benchLogging } from './bench-log.js';

export interface CountClient {
  query<R extends Record<string, unknown>>(sql: string, values?: unknown[]): Promise<{ rows: R[] }>;
  end(): Promise<void>;
}

export interface LiveCountsOptions {
  url: string;
  intervalMs?: number;
  /** Opens the poller's connection (tests pass a fake). */
  connect?: (url: string) => Promise<CountClient>;
  /** Where counts go (the store by default). */
  onCounts?: (counts: Map<string, number | null>) => void;
  onError?: (message: string | undefined) => void;
}

async function defaultConnect(url: string): Promise<CountClient> {
  const { connect } = await import('../postgres/pg.js');
  const client = await connect(url, { applicationName: 'sor-drills live counts', statementTimeoutMs: 2_000 });
  // Never queue for long behind a drill's lock: skip the tick instead.
  await client.query(`set lock_timeout = '500ms'`);
  return client as unknown as CountClient;
}

function quoteTable(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}

/** The one statement of a tick: every table's count, in the order given. */
export function countSql(tables: readonly string[]): string {
  return tables
    .map((table, index) => `select $${index + 1}::text as name, count(*)::bigint as n from ${quoteTable(table)}`)
    .join('\nunion all\n');
}

export class LiveCounts {
  private tables: string[] = [];
  /** The tables that exist (checked once per table list: a missing one would fail the whole union). */
  private present: string[] | undefined;
  private client: CountClient | undefined;
  private connecting: Promise<CountClient> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private paused = false;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly connectClient: (url: string) => Promise<CountClient>;
  private readonly onCounts: (counts: Map<string, number | null>) => void;
  private readonly onError: (message: string | undefined) => void;
  /** Ticks skipped because the previous one was still running (for tests and diagnostics). */
  skipped = 0;
  ticks = 0;

  constructor(private readonly options: LiveCountsOptions) {
    this.intervalMs = options.intervalMs ?? 250;
    this.connectClient = options.connect ?? defaultConnect;
    this.onCounts = options.onCounts ?? storeCounts;
    this.onError = options.onError ?? storeError;
  }

  setTables(tables: readonly string[]): void {
    this.tables = [...tables];
    this.present = undefined;
    this.schedule();
  }

  /** Stops polling and closes the connection; resolves once nothing is connected. */
  async pause(note?: string): Promise<void> {
    this.paused = true;
    this.clearTimer();
    update((state) => ({ counts: { ...state.counts, paused: true, note } }));
    await this.inFlight?.catch(() => {});
    await this.close();
  }

  resume(): void {
    if (this.stopped) return;
    this.paused = false;
    update((state) => ({ counts: { ...state.counts, paused: false, note: undefined } }));
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    await this.inFlight?.catch(() => {});
    await this.close();
  }

  /** One tick now (tests); normally the timer calls it. */
  tick(): Promise<void> {
    if (this.inFlight) {
      this.skipped += 1;
      return this.inFlight;
    }
    this.inFlight = this.poll().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private schedule(): void {
    if (this.timer || this.paused || this.stopped || this.tables.length === 0) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
    void this.tick();
  }

  private clearTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    if (this.paused || this.stopped || this.tables.length === 0) return;
    this.ticks += 1;
    const tables = this.tables;
    const started = performance.now();
    let queries = 0;
    try {
      const client = await this.connection();
      if (this.paused || this.stopped) return;
      if (!this.present) {
        queries += 1;
        const { rows } = await client.query<{ name: string }>(
          `select name from unnest($1::text[]) as name where to_regclass(name) is not null`,
          [tables],
        );
        this.present = tables.filter((table) => rows.some((row) => row.name === table));
      }
      const present = this.present;
      const counts = new Map<string, number | null>(tables.map((table) => [table, null]));
      if (present.length > 0) {
        queries += 1;
        const { rows } = await client.query<{ name: string; n: string }>(countSql(present), present);
        for (const row of rows) counts.set(row.name, Number(row.n));
      }
      // The drill may have moved on while this ran: only report for the tables still asked for.
      if (tables === this.tables && !this.paused) {
        this.onCounts(counts);
        this.onError(undefined);
      }
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === '42P01') this.present = undefined; // a table went away: check again
      if (code === '55P03' || code === '57014') return; // lock or statement timeout: just a skipped tick
      this.onError(errorMessage(error));
      await this.close();
    } finally {
      // Bench hook (bench/key-latency): the poller's own load on the target.
      if (benchLogging) benchLine('poll', `queries=${queries} ms=${(performance.now() - started).toFixed(1)}`);
    }
  }

  private async connection(): Promise<CountClient> {
    if (this.client) return this.client;
    this.connecting ??= this.connectClient(this.options.url).then(
      (client) => {
        this.client = client;
        this.connecting = undefined;
        return client;
      },
      (error: unknown) => {
        this.connecting = undefined;
        throw error;
      },
    );
    return this.connecting;
  }

  private async close(): Promise<void> {
    const pending = this.connecting;
    if (pending) await pending.catch(() => {});
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}

function storeCounts(counts: Map<string, number | null>): void {
  update((state) => {
    let changed = false;
    const tables = state.counts.tables.map((table): TableCount => {
      if (!counts.has(table.name)) return table;
      const count = counts.get(table.name) ?? null;
      const base = table.base ?? count;
      if (count === table.count && base === table.base) return table;
      changed = true;
      return { ...table, count, base };
    });
    return changed ? { counts: { ...state.counts, tables } } : {};
  });
}

function storeError(message: string | undefined): void {
  update((state) => (state.counts.error === message ? {} : { counts: { ...state.counts, error: message } }));
}
