// Preloaded into the measured `sor-drills oracle` process (node --import): at exit it writes
// its own peak RSS (VmHWM from /proc/self/status, in kB) to $ORACLE_BENCH_RSS_FILE.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.ORACLE_BENCH_RSS_FILE;
if (file) {
  process.on('exit', () => {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
    writeFileSync(file, kb);
  });
}
