// The console's entry. It draws the first frame at once (the boot screen, before
// PostgreSQL is up), then starts the controller (target, schema, drills, decision) and
// returns the exit code once Ink has unmounted and everything it started is
// stopped: 0 PERMITTED, 1 BLOCKED, 130 when the operator quit before the
// decision. Only ink, react, zustand and the screens load before the first
// frame; the controller (and through it the target, pg, the drills and the
// Reconciler) loads after it, and keys pressed meanwhile wait for it.
import React from 'react';
import { render, type Instance } from 'ink';
import { App } from '../app.js';
import { onCleanup } from '../util/lifecycle.js';
import { getState, resetStore, store, update } from '../store.js';
import { startAutopilot } from './autopilot.js';
import type { ConsoleController, ConsoleOptions } from './controller.js';
import type { Intent } from './intents.js';
import { bootLabel } from './deps.js';
import { benchLine, benchLogging, frameView, keyName } from './bench-log.js';
import { createKeyRouter, type KeyHandler } from './key-router.js';

export type { ConsoleOptions } from './controller.js';

export const defaultPaceMs = 700;
const stopDeadlineMs = 15_000;

/** Resolves with the value, or undefined after ms. */
function bounded<T>(promise: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (!promise) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}

function terminalSize(stdout: NodeJS.WriteStream): { columns: number; rows: number } {
  return { columns: stdout.columns || 80, rows: stdout.rows || 24 };
}

/**
 * A terminal that goes away (its window closed, its tmux session killed) hangs up (SIGHUP) and
 * turns every later write into EIO. The lifecycle's SIGHUP handler then stops the processes and
 * the cluster; an EIO raised meanwhile (Ink drawing the processes' last states) would end the
 * process as a crash half-way through that cleanup and orphan the cluster. So from the hangup on,
 * writes to stdout and stderr are dropped (their callbacks still called): nobody is left to read.
 * Returns the function that puts the streams back (when the console ends normally).
 */
function dropWritesAfterHangup(): () => void {
  let hungUp = false;
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((stream) => stream.write);
  streams.forEach((stream, index) => {
    const write = originals[index]!;
    stream.write = function (this: NodeJS.WriteStream, ...args: unknown[]): boolean {
      if (!hungUp) return (write as (...params: unknown[]) => boolean).apply(this, args);
      const callback = args.find((arg): arg is () => void => typeof arg === 'function');
      if (callback) process.nextTick(callback);
      return true;
    } as typeof stream.write;
  });
  const onHangup = () => {
    hungUp = true;
  };
  // First in line: before the lifecycle's handler starts the cleanups that make Ink draw.
  process.prependListener('SIGHUP', onHangup);
  // A read on the dead terminal fails too; Ink has nothing to do with that error.
  if (process.stdin.listenerCount('error') === 0) process.stdin.on('error', () => {});
  return () => {
    if (hungUp) return;
    process.off('SIGHUP', onHangup);
    streams.forEach((stream, index) => {
      stream.write = originals[index]!;
    });
  };
}

export async function startConsole(options: ConsoleOptions): Promise<number> {
  const stdout = process.stdout;
  const restoreWrites = dropWritesAfterHangup();
  resetStore({
    color: !process.env.NO_COLOR,
    terminal: terminalSize(stdout),
    auto: Boolean(options.auto),
    boot: { target: bootLabel(options.db), lines: [], phase: 'starting', elapsedMs: 0 },
  });
  const paceMs = options.paceMs ?? defaultPaceMs;
  // Intents from keys pressed before the controller has loaded are handed to it once it has.
  let controller: ConsoleController | undefined;
  const early: Intent[] = [];
  const routeKey = createKeyRouter(getState, (intent) => (controller ? controller.dispatch(intent) : early.push(intent)));
  // Bench hook (bench/key-latency): each key as it arrives, before the router handles it.
  const onKey: KeyHandler = benchLogging
    ? (input, key) => {
        benchLine('key', keyName(input, key));
        routeKey(input, key);
      }
    : routeKey;

  const benchFile = process.env.SOR_DRILLS_FIRST_FRAME_FILE;
  let firstFrame = true;
  const frameWaiters: Array<() => void> = [];
  const instance: Instance = render(<App onKey={onKey} />, {
    // Ctrl-C is a key like any other here (raw mode): the console stops its processes and PostgreSQL first.
    exitOnCtrlC: false,
    onRender: ({ renderTime }) => {
      for (const resolve of frameWaiters.splice(0)) resolve();
      // Bench hook (bench/key-latency): every frame, with what it shows and how long Ink took to draw it.
      if (benchLogging) benchLine('frame', `${frameView(getState())} render=${renderTime.toFixed(1)}`);
      if (!firstFrame) return;
      firstFrame = false;
      // Bench hook (bench/first-frame): when the first frame was drawn, on the wall clock.
      if (benchFile) {
        const at = performance.timeOrigin + performance.now();
        void import('node:fs').then(({ writeFileSync }) => writeFileSync(benchFile, String(at)));
      }
    },
  });
  /** Resolves once Ink has rendered the store's latest state (an update right before unmount is otherwise lost). */
  const rendered = () => bounded(new Promise<void>((resolve) => frameWaiters.push(resolve)), 500);
  // A signal (SIGTERM, SIGHUP) ends the process through the lifecycle's cleanups: restore the terminal there too.
  const forgetUnmount = onCleanup('console screen', () => instance.unmount());
  const onResize = () => update({ terminal: terminalSize(stdout) });
  stdout.on('resize', onResize);

  // The controller's modules reach pg, zod and the oracle: loaded once the first frame is asked for.
  const { ConsoleController: Controller } = await import('./controller.js');
  controller = new Controller({ ...options, paceMs });
  void controller.start();
  for (const intent of early.splice(0)) controller.dispatch(intent);
  const stopAutopilot = options.auto
    ? startAutopilot({
        getState,
        subscribe: (listener) => store.subscribe(listener),
        press: onKey,
        paceMs,
        out: options.out,
      })
    : () => {};

  const code = await controller.quit;
  stopAutopilot();
  await stopEverything(controller, Boolean(options.keep));
  controller.resources.forgetCleanup?.();
  const drawn = rendered();
  summarise(code);
  await drawn;
  stdout.off('resize', onResize);
  instance.unmount();
  await bounded(instance.waitUntilExit(), 2_000);
  forgetUnmount();
  restoreWrites();
  const cluster = controller.resources.target?.cluster;
  if (options.keep && cluster) (await import('../postgres/kept.js')).printKept(cluster);
  return code;
}

function say(line: string): void {
  update((state) => ({ exiting: { lines: [...state.exiting.lines, line] } }));
}

/** Stops, in order, what the console started: the poller, the session (its processes), the target. */
async function stopEverything(controller: ConsoleController, keep: boolean): Promise<void> {
  const { resources } = controller;
  // A drill that was running gets a moment to run its own cleanups (its processes, its branch).
  await bounded(controller.settled(), 5_000);
  await bounded(resources.poller?.stop(), stopDeadlineMs);
  const session = resources.session;
  if (session) {
    const live = session.processes.list().filter((process) => process.state === 'running' || process.state === 'starting');
    await bounded(session.close(), stopDeadlineMs);
    if (live.length > 0) say(`stopped ${live.map((process) => process.name).join(', ')}`);
  }
  const target = resources.target ?? (await bounded(resources.targetPending, stopDeadlineMs));
  if (target) {
    await bounded(target.close(), stopDeadlineMs);
    if (target.kind === 'url') say(`left ${target.display} as the drills left it`);
    else if (keep) say('left the embedded PostgreSQL running (--keep)');
    else if (controller.keptCapstone) say('stopped PostgreSQL; its data is kept in .sor-drills/ for the unfinished capstone');
    else say('stopped PostgreSQL and removed its directory');
  }
  await bounded(resources.capstone?.tidy().catch(() => {}), stopDeadlineMs);
}

/** The last frame, left on the terminal: what was decided and saved. */
function summarise(code: number): void {
  const state = getState();
  const run = state.decisions.find((draft) => draft.kind === 'run');
  const lines = [...state.exiting.lines.slice(1)];
  if (run) lines.push(`release ${run.decision} (${run.passed} of 9 passed)`);
  for (const draft of state.decisions) {
    lines.push(draft.savedPath ? `bundle saved: ${draft.savedPath}` : `${draft.kind === 'run' ? 'bundle' : 'mastery bundle'} not saved`);
  }
  lines.push(`sor-drills exited with code ${code}`);
  update({ exiting: { lines } });
}
