// A stand-in for a console that holds an embedded cluster and is then SIGKILLed:
// starts a cluster from the built code (a throwaway one, or the home named by the
// first argument), prints where it is, and waits forever.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startEmbedded } from '../../dist/postgres/embedded.js';

const home = process.argv[2];
const cluster = await startEmbedded(home ? { home } : {});
const postmaster = Number((await readFile(path.join(cluster.dir, 'data', 'postmaster.pid'), 'utf8')).split('\n')[0]);
process.stdout.write(`${JSON.stringify({ dir: cluster.dir, postmaster })}\n`);
setInterval(() => {}, 60_000);
