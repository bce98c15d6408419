// Exercising the action: a command spawned with its output captured, or a
// drill's function. Its output goes to action.log (secrets masked, line by line,
// streamed: a chatty command is never held in memory), its exit code to
// action_exit.txt. "Did the action even run" is answered here, apart from the spec.
import { constants } from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { execa } from 'execa';
import { errorMessage } from '../postgres/pg.js';
import { maskSecrets } from '../postgres/url.js';
import { writeFileAtomic } from '../util/fs.js';
import { AtomicTextWriter } from './rows.js';
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
      const subprocess = execa(action.command, action.args ?? [], {
        reject: false,
        all: true,
        buffer: false,
        stdin: 'ignore',
        cwd: action.cwd,
        env: action.env,
        timeout: action.timeoutMs,
        forceKillAfterDelay: 2_000,
      });
      const pump = (async () => {
        if (!subprocess.all) return;
        for await (const chunk of subprocess.all) await log.chunk(chunk as Buffer);
      })();
      const result = await subprocess;
      await pump.catch(() => {});
      signal = result.signal ?? null;
      if (typeof result.exitCode === 'number') exitCode = result.exitCode;
      else if (signal) exitCode = 128 + (constants.signals[signal as keyof typeof constants.signals] ?? 0);
      else exitCode = (result as { code?: string }).code === 'ENOENT' ? 127 : 1;
      if (result.timedOut) error = `timed out after ${action.timeoutMs} ms and was killed`;
      else if (result.failed && result.exitCode === undefined) {
        error = signal ? `killed by ${signal}` : maskSecrets(result.shortMessage ?? result.message ?? 'failed to start', secrets);
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
