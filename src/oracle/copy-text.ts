// COPY's text format read back as strings: a line's fields, its backslash escapes undone.
// (The encoder, copy-encoder.ts, reads the same text as bytes and leaves to these what it does not know.)

/** Splits a COPY text-format line into its fields (`\N` is null), undoing COPY's backslash escapes. */
export function splitCopyLine(line: string): Array<string | null> {
  const raw = line.split('\t');
  const fields: Array<string | null> = new Array(raw.length);
  for (let index = 0; index < raw.length; index += 1) {
    const field = raw[index]!;
    fields[index] = field.includes('\\') ? unescapeCopy(field) : field;
  }
  return fields;
}

const simpleEscapes: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

export function unescapeCopy(field: string): string | null {
  if (field === '\\N') return null;
  let out = '';
  for (let index = 0; index < field.length; index += 1) {
    const char = field[index]!;
    if (char !== '\\' || index === field.length - 1) {
      out += char;
      continue;
    }
    const next = field[index + 1]!;
    if (next in simpleEscapes) {
      out += simpleEscapes[next];
      index += 1;
    } else if (next >= '0' && next <= '7') {
      const digits = /^[0-7]{1,3}/.exec(field.slice(index + 1))![0];
      out += String.fromCharCode(parseInt(digits, 8));
      index += digits.length;
    } else if (next === 'x' && /^[0-9a-fA-F]/.test(field[index + 2] ?? '')) {
      const digits = /^[0-9a-fA-F]{1,2}/.exec(field.slice(index + 2))![0];
      out += String.fromCharCode(parseInt(digits, 16));
      index += 1 + digits.length;
    } else {
      out += next;
      index += 1;
    }
  }
  return out;
}
