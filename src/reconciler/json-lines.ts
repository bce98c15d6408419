// The supervised processes speak one JSON object per line on stdout
// (`{"event":"claim_locked",...}`): the supervisor streams them as `line`
// events and the drills wait on them. Free text goes to stderr.

export interface JsonLine {
  event: string;
  [field: string]: unknown;
}

/** Writes one JSON line to a stream (stdout by default). */
export function emit(event: string, fields: Record<string, unknown> = {}, stream: NodeJS.WritableStream = process.stdout): void {
  stream.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** The JSON line's object when `line` is one, else undefined. */
export function parseJsonLine(line: string): JsonLine | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === 'object' && typeof (value as JsonLine).event === 'string') return value as JsonLine;
  } catch {
    // not JSON: an ordinary log line
  }
  return undefined;
}

/** Reads an integer setting from the environment, or the fallback; refuses garbage. */
export function intSetting(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return value;
}

export function requiredSetting(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is not set (this script is started by the sor-drills supervisor)`);
  return value;
}
