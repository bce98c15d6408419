// Exercising the action: a command spawned with its output captured, or a
// drill's function. Its output goes to action.log (secrets masked, line by line,
// streamed: a chatty command is never held in memory), its exit code to
// action_exit.txt. "Did the action even run" is answered here, apart from the spec.
//
// The command is spawned with node:child_process, not execa (the rest of the product's
// processes use execa): loading execa took a tenth of a second of every oracle run,
// as long as reading a table of 200,000 rows. What the oracle used of it is here:
// stdout and stderr interleaved as they come, a timeout with a forced kill after it,
// the child stopped if the oracle is, and execa's words for a command that cannot start.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { errorMessage } from '../postgres/pg.js';
import { maskSecrets } from '../postgres/url.js';
import { writeFileAtomic } from '../util/fs.js';
import { onCleanup } from '../util/lifecycle.js';
import { AtomicTextWriter } from './atomic-text-writer.js';
import type { ActionResult, OracleAction } from './types.js';

const httpClients = new Set(['curl', 'wget', 'http', 'https', 'xh', 'httpie']);

function quote(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}

/** How the action reads in a report (masked). */
export function actionLabel(action: OracleAction, secrets: readonly string[] = []): string {
  if ('run' in action) return maskSecrets(action.label, secrets);
  return maskSecrets([action.command, ...(action.args ?? [])].map(quote).join(' '), secrets);
}

/** The seed's primary oracle: http-qa for an HTTP client, library-qa for a function, cli-qa otherwise. */
export function primaryOracle(action: OracleAction): string {
  if (action.primary) return action.primary;
  if ('run' in action) return 'library-qa';
  return httpClients.has(path.basename(action.command)) ? 'http-qa' : 'cli-qa';
}

class MaskedLog {
  private rest = '';
  private readonly decoder = new StringDecoder('utf8');
  constructor(
    private readonly writer: AtomicTextWriter,
    private readonly secrets: readonly string[],
  ) {}

  async chunk(data: Buffer | string): Promise<void> {
    const text = this.rest + (typeof data === 'string' ? data : this.decoder.write(data));
    const cut = text.lastIndexOf('\n');
    if (cut < 0) {
      this.rest = text;
      if (this.rest.length > 1 << 16) await this.flushRest();
      return;
    }
    this.rest = text.slice(cut + 1);
    await this.writer.write(maskSecrets(text.slice(0, cut + 1), this.secrets));
  }

  private async flushRest(): Promise<void> {
    await this.writer.write(maskSecrets(this.rest, this.secrets));
    this.rest = '';
  }

  async end(): Promise<void> {
    this.rest += this.decoder.end();
    if (this.rest) await this.flushRest();
  }
}

// execa's rendering of a command in its messages (lib/arguments/escape.js): control and
// separator characters escaped, an argument quoted unless it is plain.
const COMMON_ESCAPES: Record<string, string> = { ' ': ' ', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const specialCharacters = (() => {
  try {
    return new RegExp('\\p{Separator}|\\p{Other}', 'gu');
  } catch {
    // eslint-disable-next-line no-control-regex
    return /[\s\u0000-\u001F\u007F-\u009F\u00AD]/g;
  }
})();

function escapedCommand(command: string, args: readonly string[]): string {
  return [command, ...args]
    .map((argument) => {
      const escaped = argument.replaceAll(specialCharacters, (character) => {
        const common = COMMON_ESCAPES[character];
        if (common !== undefined) return common;
        const codepoint = character.codePointAt(0)!;
        const hex = codepoint.toString(16);
        return codepoint <= 0xffff ? `\\u${hex.padStart(4, '0')}` : `\\U${hex}`;
      });
      if (/^[\w./-]+$/.test(escaped)) return escaped;
      return process.platform === 'win32' ? `"${escaped.replaceAll('"', '""')}"` : `'${escaped.replaceAll("'", "'\\''")}'`;
    })
    .join(' ');
}

const forceKillAfterMs = 2_000;

interface CommandOutcome {
  exitCode: number | undefined;
  signal: string | null;
  timedOut: boolean;
  /** A failure to start (ENOENT, EACCES ...), with execa's message for it. */
  spawnError: { code: string | undefined; message: string } | null;
}

/** Spawns the command, hands its output to `onOutput` in order (waiting on it), and settles once its output has ended. */
function runCommand(
  action: Extract<OracleAction, { command: string }>,
  onOutput: (chunk: Buffer) => Promise<void>,
): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    const args = action.args ?? [];
    let timedOut = false;
    let spawnError: CommandOutcome['spawnError'] = null;
    let timer: NodeJS.Timeout | undefined;
    let forceTimer: NodeJS.Timeout | undefined;
    const child = spawn(action.command, args, {
      cwd: action.cwd,
      env: action.env ? { ...process.env, ...action.env } : process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const forget = onCleanup('oracle action', () => {
      child.kill('SIGKILL');
    });
    // stdout and stderr as they come, written one after another; reading pauses while the log is behind.
    let writing = Promise.resolve();
    let pending = 0;
    const take = (chunk: Buffer) => {
      pending += 1;
      if (pending > 16) {
        child.stdout?.pause();
        child.stderr?.pause();
      }
      writing = writing.then(() => onOutput(chunk)).finally(() => {
        pending -= 1;
        if (pending <= 4) {
          child.stdout?.resume();
          child.stderr?.resume();
        }
      });
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.on('spawn', () => {
      if (action.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGTERM');
          forceTimer = setTimeout(() => child.kill('SIGKILL'), forceKillAfterMs);
        }, action.timeoutMs);
      }
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (child.pid === undefined && !spawnError) {
        const code = error.code;
        spawnError = { code, message: `Command failed with ${code ?? 'an error'}: ${escapedCommand(action.command, args)}\n${error.message}` };
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(forceTimer);
      forget();
      // A log that failed to take the output fails at its commit, after the command's outcome is known.
      void writing
        .catch(() => {})
        .then(() => resolve({ exitCode: spawnError ? undefined : (code ?? undefined), signal: signal ?? null, timedOut, spawnError }));
    });
  });
}

/** Runs the action, writing `action.log` and `action_exit.txt` into the folder. */
export async function runAction(action: OracleAction, folder: string, secrets: readonly string[]): Promise<ActionResult> {
  const label = actionLabel(action, secrets);
  const primary = primaryOracle(action);
  const writer = new AtomicTextWriter(path.join(folder, 'action.log'));
  const log = new MaskedLog(writer, secrets);
  const started = Date.now();
  let exitCode: number;
  let signal: string | null = null;
  let error: string | null = null;
  try {
    if ('run' in action) {
      let queue = Promise.resolve();
      const append = (text: string) => {
        queue = queue.then(() => log.chunk(text.endsWith('\n') ? text : `${text}\n`));
      };
      try {
        const outcome = await action.run(append);
        await queue;
        if (typeof outcome === 'number') exitCode = outcome;
        else {
          exitCode = outcome.exitCode;
          if (outcome.log) await log.chunk(outcome.log.endsWith('\n') ? outcome.log : `${outcome.log}\n`);
        }
      } catch (thrown) {
        await queue;
        exitCode = 1;
        error = `the action threw: ${maskSecrets(errorMessage(thrown), secrets)}`;
        await log.chunk(`${error}\n`);
      }
    } else {
      const result = await runCommand(action, (chunk) => log.chunk(chunk));
      signal = result.signal;
      if (typeof result.exitCode === 'number') exitCode = result.exitCode;
      else if (signal) exitCode = 128 + (constants.signals[signal as keyof typeof constants.signals] ?? 0);
      else exitCode = result.spawnError?.code === 'ENOENT' ? 127 : 1;
      if (result.timedOut) error = `timed out after ${action.timeoutMs} ms and was killed`;
      else if (result.exitCode === undefined) {
        error = signal ? `killed by ${signal}` : maskSecrets(result.spawnError?.message ?? 'failed to start', secrets);
      }
      if (error) await log.chunk(`\n[sor-drills oracle] ${error}\n`);
    }
    await log.end();
    await writer.commit();
  } catch (thrown) {
    await writer.abort();
    throw thrown;
  }
  const durationMs = Date.now() - started;
  await writeFileAtomic(path.join(folder, 'action_exit.txt'), `${exitCode}\n`);
  return { label, primary, exitCode, signal, durationMs, error };
}
