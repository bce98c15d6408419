// FROZEN: src/oracle/json-text.ts as of commit e8de64c, before the oracle's one-pass writer (issue 15).
// The byte-identity test compares the new writer's evidence files with this one's; do not edit.
// JSON text, handled as text: compacting a json value and removing volatile keys
// at any depth without ever turning numbers into doubles (a numeric(30,10) or a
// bigint beyond 2^53 stays exact), and a canonical rendering (sorted keys) for
// the evidence files. Also the one string order the oracle uses for keys: code
// points, which is the byte order of UTF-8 and so Postgres's `collate "C"`.

/** Compares two strings by Unicode code points (= UTF-8 bytes = `collate "C"` on a UTF8 database). */
export function compareText(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index += 1) {
    let x = a.charCodeAt(index);
    let y = b.charCodeAt(index);
    if (x !== y) {
      // UTF-16 puts surrogates (code points >= 0x10000) below U+E000..U+FFFF; code point order does not.
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

/** Compares two integers written in decimal (any size). */
export function compareIntText(a: string, b: string): number {
  const negativeA = a.startsWith('-');
  const negativeB = b.startsWith('-');
  if (negativeA !== negativeB) return negativeA ? -1 : 1;
  const digitsA = negativeA ? a.slice(1) : a;
  const digitsB = negativeB ? b.slice(1) : b;
  let order = digitsA.length - digitsB.length;
  if (order === 0) order = digitsA < digitsB ? -1 : digitsA > digitsB ? 1 : 0;
  return negativeA ? -order : order;
}

class JsonScanner {
  index = 0;
  constructor(
    readonly text: string,
    readonly drop: ((key: string) => boolean) | undefined,
  ) {}

  skipSpace(): void {
    const text = this.text;
    while (this.index < text.length) {
      const code = text.charCodeAt(this.index);
      if (code !== 0x20 && code !== 0x0a && code !== 0x0d && code !== 0x09) return;
      this.index += 1;
    }
  }

  fail(): never {
    throw new Error(`not valid JSON at offset ${this.index}: ${this.text.slice(this.index, this.index + 20)}`);
  }

  value(): string {
    this.skipSpace();
    const text = this.text;
    const char = text[this.index];
    if (char === '{') return this.object();
    if (char === '[') return this.array();
    if (char === '"') return this.string();
    const start = this.index;
    while (this.index < text.length && !',]}: \n\r\t'.includes(text[this.index]!)) this.index += 1;
    if (this.index === start) this.fail();
    return text.slice(start, this.index);
  }

  string(): string {
    const text = this.text;
    const start = this.index;
    this.index += 1;
    for (;;) {
      const next = text.indexOf('"', this.index);
      if (next < 0) this.fail();
      let backslashes = 0;
      for (let at = next - 1; at > start && text[at] === '\\'; at -= 1) backslashes += 1;
      this.index = next + 1;
      if (backslashes % 2 === 0) return text.slice(start, this.index);
    }
  }

  object(): string {
    this.index += 1;
    const parts: string[] = [];
    this.skipSpace();
    if (this.text[this.index] === '}') {
      this.index += 1;
      return '{}';
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.index] !== '"') this.fail();
      const rawKey = this.string();
      this.skipSpace();
      if (this.text[this.index] !== ':') this.fail();
      this.index += 1;
      const value = this.value();
      if (!this.drop || !this.drop(rawKey.includes('\\') ? (JSON.parse(rawKey) as string) : rawKey.slice(1, -1))) {
        parts.push(`${rawKey}:${value}`);
      }
      this.skipSpace();
      const char = this.text[this.index];
      this.index += 1;
      if (char === '}') return `{${parts.join(',')}}`;
      if (char !== ',') this.fail();
    }
  }

  array(): string {
    this.index += 1;
    const parts: string[] = [];
    this.skipSpace();
    if (this.text[this.index] === ']') {
      this.index += 1;
      return '[]';
    }
    for (;;) {
      parts.push(this.value());
      this.skipSpace();
      const char = this.text[this.index];
      this.index += 1;
      if (char === ']') return `[${parts.join(',')}]`;
      if (char !== ',') this.fail();
    }
  }
}

/**
 * Rewrites JSON text without insignificant whitespace, dropping object members whose key
 * `drop` accepts (at any depth). Numbers, strings and key order are copied as they are.
 */
export function compactJson(text: string, drop?: (key: string) => boolean): string {
  const scanner = new JsonScanner(text, drop);
  const out = scanner.value();
  scanner.skipSpace();
  if (scanner.index !== text.length) scanner.fail();
  return out;
}

/** Compact JSON with object keys sorted (recursively): the rendering of every structure the oracle writes. */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object)
      .filter((key) => object[key] !== undefined)
      .sort(compareText);
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Pretty lines with sorted keys: objects one member per line, arrays of scalars inline, arrays of
 * objects or arrays one element per line (compact). So a list item (a row, an index, a column) is
 * always exactly one line, and a unified diff shows it as one `-` and one `+`.
 */
export function prettyLines(value: unknown, indent: string, step = '  '): string[] {
  if (value === null || typeof value !== 'object') return [canonicalJson(value)];
  if (Array.isArray(value)) {
    if (value.length === 0) return ['[]'];
    if (value.every((item) => item === null || typeof item !== 'object')) return [canonicalJson(value)];
    const inner = indent + step;
    return ['[', ...value.map((item, index) => `${inner}${canonicalJson(item)}${index < value.length - 1 ? ',' : ''}`), `${indent}]`];
  }
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object)
    .filter((key) => object[key] !== undefined)
    .sort(compareText);
  if (keys.length === 0) return ['{}'];
  const inner = indent + step;
  const lines = ['{'];
  keys.forEach((key, index) => {
    const member = prettyLines(object[key], inner, step);
    const comma = index < keys.length - 1 ? ',' : '';
    member[0] = `${inner}${JSON.stringify(key)}: ${member[0]}`;
    member[member.length - 1] += comma;
    lines.push(...member);
  });
  lines.push(`${indent}}`);
  return lines;
}
