// A named home for the embedded cluster (issue 14, part 7): the cluster a capstone
// keeps while it is unfinished. Its rows and password outlive a stop that retains it;
// a stop that removes it leaves nothing; a home whose console was SIGKILLed starts
// again, one whose console is alive is refused; the stale sweep never takes a home;
// and as root, a home PostgreSQL's user cannot reach lives under the temp dir while
// postgres itself never runs as root.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresUser, stopPostmaster } from '../../src/postgres/cluster-files.js';
import { discardHome, fallbackDir, pointerFile } from '../../src/postgres/embedded-home.js';
import { cleanStaleClusters, startEmbedded, type EmbeddedCluster, type StartOptions } from '../../src/postgres/embedded.js';
import { withPgClient } from '../../src/postgres/pg.js';
import { waitFor } from '../../src/util/wait.js';
import { scratchDir } from '../helpers/scratch.js';

const holder = fileURLToPath(new URL('../helpers/hold-cluster.mjs', import.meta.url));
const isRoot = userInfo().uid === 0;

let base: string;
const clusters: EmbeddedCluster[] = [];
const holders: ResultPromise[] = [];
const postmasters: number[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function start(options: StartOptions): Promise<EmbeddedCluster> {
  const cluster = await startEmbedded(options);
  clusters.push(cluster);
  const pid = await postmasterOf(cluster);
  postmasters.push(pid);
  return cluster;
}

async function postmasterOf(cluster: EmbeddedCluster): Promise<number> {
  return Number((await readFile(path.join(cluster.dir, 'data', 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

/** The real, effective, saved and filesystem uids of a process, from the OS. */
function uidsOf(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((text) => text.startsWith('Uid:'));
  return (line ?? '').split(/\s+/).slice(1).filter(Boolean).map(Number);
}

async function expectNotRoot(cluster: EmbeddedCluster): Promise<void> {
  if (!isRoot) return;
  const uids = uidsOf(await postmasterOf(cluster));
  const user = await postgresUser();
  expect(uids).toHaveLength(4);
  expect(uids).toEqual([user!.uid, user!.uid, user!.uid, user!.uid]);
  expect(uids).not.toContain(0);
}

async function rows(cluster: EmbeddedCluster): Promise<string[]> {
  return withPgClient(cluster.url, async (client) => {
    const { rows: found } = await client.query<{ note: string }>(`select note from kept order by note`);
    return found.map((row) => row.note);
  });
}

/** Starts the stand-in console on a home and waits for its line: where the cluster is, its postmaster. */
async function hold(home: string): Promise<{ child: ResultPromise; dir: string; postmaster: number }> {
  const child = execa('node', [holder, home], { reject: false, buffer: false });
  holders.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) resolve(text.split('\n')[0]!);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    child.on('exit', () => reject(new Error(`holder exited early: ${text}`)));
  });
  const { dir, postmaster } = JSON.parse(line) as { dir: string; postmaster: number };
  postmasters.push(postmaster);
  return { child, dir, postmaster };
}

beforeAll(async () => {
  // A parent PostgreSQL's user can traverse (mkdtemp makes 0700), so a home in it is used in place.
  base = await mkdtemp(path.join(tmpdir(), 'sor-home-test-'));
  await chmod(base, 0o755);
});

afterAll(async () => {
  for (const cluster of clusters) {
    cluster.retain(false);
    await cluster.stop();
  }
  for (const child of holders) {
    if (child.pid !== undefined && alive(child.pid)) child.kill('SIGKILL');
    await child;
  }
  for (const pid of postmasters) if (alive(pid)) await stopPostmaster(pid);
  await rm(base, { recursive: true, force: true });
});

describe('a named home for the embedded cluster', () => {
  it('keeps its rows and password across a stop that retains it, and is gone after one that removes it', async () => {
    const home = path.join(base, 'home');
    const first = await start({ home });
    expect(first.home).toEqual({ path: home, resumed: false });
    expect(first.dir).toBe(home);
    await expectNotRoot(first);
    await withPgClient(first.url, (client) => client.query(`create table kept (note text primary key); insert into kept values ('row one')`));
    const password = new URL(first.url).password;
    const pgpass = readFileSync(first.passFile, 'utf8');
    const postmaster = await postmasterOf(first);

    // A home is retained by default: the postmaster stops, the data stays.
    await first.stop();
    expect(alive(postmaster)).toBe(false);
    expect(existsSync(path.join(home, 'data', 'PG_VERSION'))).toBe(true);
    expect(JSON.parse(readFileSync(path.join(home, 'owner.json'), 'utf8'))).toMatchObject({ pid: 0, home });

    const again = await start({ home });
    expect(again.home).toEqual({ path: home, resumed: true });
    expect(new URL(again.url).password).toBe(password);
    expect(readFileSync(again.passFile, 'utf8')).toBe(pgpass);
    expect(pgpass).not.toContain(String(again.port));
    expect(await rows(again)).toEqual(['row one']);
    await expectNotRoot(again);

    again.retain(false);
    await again.stop();
    expect(existsSync(home)).toBe(false);
    expect(existsSync(base)).toBe(true);
  });

  it('is refused while its console is alive; once that console is SIGKILLed it starts again, and the sweep never takes it', async () => {
    // Named like a throwaway cluster, so the sweep of its parent would see it if it took homes.
    const home = path.join(base, 'sor-drills-pg-home');
    const held = await hold(home);
    expect(held.dir).toBe(home);

    const refused = startEmbedded({ home });
    await expect(refused).rejects.toThrow(new RegExp(`^${home} is in use by another console \\(pid ${held.child.pid}\\)`));
    const message = await refused.catch((error: Error) => error.message);
    expect(message).not.toContain('\n');
    expect(alive(held.postmaster)).toBe(true);

    held.child.kill('SIGKILL');
    await held.child;
    expect(alive(held.postmaster)).toBe(true);
    expect(await cleanStaleClusters(base)).toEqual([]);
    expect(existsSync(path.join(home, 'data', 'PG_VERSION'))).toBe(true);
    expect(alive(held.postmaster)).toBe(true);

    const progress: string[] = [];
    const cluster = await start({ home, onProgress: (line) => progress.push(line) });
    expect(cluster.home?.resumed).toBe(true);
    expect(progress.join('\n')).toContain(`stopping the PostgreSQL (pid ${held.postmaster}) a killed console left running in ${home}`);
    await waitFor('the killed console\'s postmaster to exit', () => !alive(held.postmaster), { timeoutMs: 10_000 });
    expect(await postmasterOf(cluster)).not.toBe(held.postmaster);
    const answer = await withPgClient(cluster.url, (client) => client.query<{ one: number }>(`select 1 as one`));
    expect(answer.rows[0]?.one).toBe(1);

    cluster.retain(false);
    await cluster.stop();
    expect(existsSync(home)).toBe(false);
  });

  it('is discarded without being started (a capstone started over), and discarding what is not a home does nothing', async () => {
    const home = path.join(base, 'discarded');
    const cluster = await start({ home });
    await cluster.stop();
    expect(existsSync(path.join(home, 'data', 'PG_VERSION'))).toBe(true);
    expect(await discardHome(home)).toBe(true);
    expect(existsSync(home)).toBe(false);
    expect(await discardHome(home)).toBe(false);
    const mine = path.join(base, 'mine');
    await mkdir(mine);
    await writeFile(path.join(mine, 'notes.txt'), 'mine');
    expect(await discardHome(mine)).toBe(false);
    expect(readdirSync(mine)).toEqual(['notes.txt']);
  });

  it('refuses a directory that is not empty and holds no cluster of ours, touching nothing in it', async () => {
    const home = path.join(base, 'not-a-home');
    await mkdir(home);
    await writeFile(path.join(home, 'notes.txt'), 'mine');
    await expect(startEmbedded({ home })).rejects.toThrow(/is not empty and holds no sor-drills cluster/);
    expect(readdirSync(home)).toEqual(['notes.txt']);
  });

  it.skipIf(!isRoot)(
    'as root, under a 0700 directory: the cluster lives under the temp dir with a pointer in the home, and postgres does not run as root',
    async () => {
      const parent = scratchDir('home-');
      const home = path.join(parent, '.sor-drills', 'embedded', 'cluster');
      const first = await start({ home });
      const elsewhere = fallbackDir(home);
      expect(first.home).toEqual({ path: home, resumed: false, elsewhere });
      expect(first.dir).toBe(elsewhere);
      expect(path.basename(elsewhere)).toMatch(/^sor-drills-home-[0-9a-f]{16}$/);
      expect(readdirSync(home)).toEqual([pointerFile]);
      expect(JSON.parse(readFileSync(path.join(home, pointerFile), 'utf8'))).toMatchObject({ cluster: elsewhere, home });
      await expectNotRoot(first);
      await withPgClient(first.url, (client) => client.query(`create table kept (note text primary key); insert into kept values ('far away')`));
      await first.stop();

      // Retained: the sweep of the temp dir leaves it, and the next start finds it through the pointer.
      expect(await cleanStaleClusters()).not.toContain(elsewhere);
      expect(existsSync(path.join(elsewhere, 'data', 'PG_VERSION'))).toBe(true);
      const again = await start({ home });
      expect(again.home).toEqual({ path: home, resumed: true, elsewhere });
      expect(await rows(again)).toEqual(['far away']);
      await expectNotRoot(again);

      again.retain(false);
      await again.stop();
      expect(existsSync(elsewhere)).toBe(false);
      expect(existsSync(home)).toBe(false);
    },
  );

  it.skipIf(!isRoot)('as root, a cluster kept under the temp dir for a home that was deleted is swept; one still pointed at is kept', async () => {
    const kept = path.join(scratchDir('home-'), '.sor-drills', 'embedded', 'cluster');
    const gone = path.join(scratchDir('home-'), '.sor-drills', 'embedded', 'cluster');
    const keptCluster = await start({ home: kept });
    const goneCluster = await start({ home: gone });
    await keptCluster.stop();
    await goneCluster.stop();
    // The learner removed the project with the home in it: its cluster under the temp dir is nobody's now.
    await rm(path.dirname(path.dirname(path.dirname(gone))), { recursive: true, force: true });
    const removed = await cleanStaleClusters();
    expect(removed).toContain(fallbackDir(gone));
    expect(removed).not.toContain(fallbackDir(kept));
    expect(existsSync(fallbackDir(gone))).toBe(false);
    expect(existsSync(path.join(fallbackDir(kept), 'data', 'PG_VERSION'))).toBe(true);
    expect(await discardHome(kept)).toBe(true);
  });
});
