// The byte encoder (src/oracle/copy-encoder.ts) against the frozen string renderer it
// replaced (test/helpers/oracle-reference/render.ts), on COPY text no server sends a UTF8
// client but the old writer handled all the same: bytes that are not UTF-8, escapes COPY
// never writes, rows with too few or too many fields, and every way of cutting the rows
// into payloads (a row straddling two, one byte per payload).
import { describe, expect, it } from 'vitest';
import type { ByteOutput } from '../../src/oracle/byte-output.js';
import { CopyRowEncoder } from '../../src/oracle/copy-encoder.js';
import { normalisedRenderer, rawRenderer } from '../../src/oracle/render.js';
import type { ColumnInfo, NormalisedTable, TableSnapshot, VolatileSpec } from '../../src/oracle/types.js';
import { isVolatileNestedKey } from '../../src/oracle/volatiles.js';
import {
  normalisedRenderer as referenceNormalisedRenderer,
  rawRenderer as referenceRawRenderer,
} from '../helpers/oracle-reference/render.js';
import { splitCopyLine as referenceSplit } from '../helpers/oracle-reference/rows.js';

const column = (name: string, render: ColumnInfo['render']): ColumnInfo => ({
  name,
  type: render,
  notNull: false,
  render,
  toJson: false,
  keyKind: 'text',
});

const columns = [column('id', 'number'), column('name', 'string'), column('flag', 'bool'), column('doc', 'json'), column('created_at', 'string')];
const volatiles: VolatileSpec = { patterns: ['id', 'created_at', '*_token'] };
const table = { table: 't', columns } as unknown as TableSnapshot;
const normTable: NormalisedTable = {
  source: table,
  volatileColumns: ['id', 'created_at'],
  columns: [columns[3]!, columns[2]!, columns[1]!],
};

const lines: Buffer[] = [
  Buffer.from('1\tplain\tt\t{"a": 1}\t2026-01-01'),
  Buffer.from('\\N\t\\N\t\\N\t\\N\t\\N'),
  Buffer.from('2\tquote " back \\\\ nl \\n tab \\t cr \\r bs \\b ff \\f vt \\v\tf\t{"id": 1, "x": {"created_at": 2, "k_token": [1, {"id": 3}]}}\tz'),
  Buffer.from('NaN\tctl \x01 \x1f \x7f end\tyes\t{bad json\t\\\\N'),
  Buffer.from('-0.5e+10\toctal \\101 hex \\x41 \\x4g other \\q\tt\t"str \\\\u00e9"\t'),
  Buffer.from('007\tlone backslash \\\tf\t[1, 2]\tx'),
  Buffer.from('3\ttoo few'),
  Buffer.from('4\ttoo\tmany\tfields\there\tand more'),
  Buffer.from(''),
  Buffer.concat([Buffer.from('5\tnot utf-8 '), Buffer.from([0xff, 0xfe, 0x20, 0xe2, 0x82, 0x20, 0xc3]), Buffer.from('\tt\t{"k": "\\xe9"}\tx')]),
  Buffer.concat([Buffer.from('6\tutf-8 caf'), Buffer.from('é ☃ 😀 \u2028', 'utf8'), Buffer.from('\tf\t{"ü": "😀"}\t\u00e9')]),
  Buffer.from('1e400\t\t\t\t'),
  // Numbers the JSON grammar takes and those it does not (written as strings).
  ...['00', '-', '1.', '.5', '+1', '1e', '1E5', '-0', '1.5E-3', '0.0e+0', 'Infinity', '12a', '١٢'].map((text) => Buffer.from(`${text}\tn\tt\t1\t`)),
];

/** A ByteOutput that keeps everything it is given. */
function collector(): ByteOutput & { text(): Buffer } {
  const pieces: Buffer[] = [];
  return {
    buf: Buffer.alloc(64),
    pos: 0,
    reserve(bytes: number) {
      if (this.pos + bytes <= this.buf.length) return;
      pieces.push(Buffer.from(this.buf.subarray(0, this.pos)));
      this.buf = Buffer.alloc(Math.max(64, bytes));
      this.pos = 0;
    },
    text() {
      return Buffer.concat([...pieces, this.buf.subarray(0, this.pos)]);
    },
  };
}

function encode(stream: Buffer, cuts: number[]): { raw: Buffer; norm: Buffer } {
  const raw = collector();
  const norm = collector();
  const encoder = new CopyRowEncoder(
    {
      columns,
      normalised: normTable.columns.map((entry) => columns.indexOf(entry)),
      drop: (key) => isVolatileNestedKey(volatiles, key),
      rawIndent: '    ',
      normIndent: '  ',
      rawRender: rawRenderer(table),
      normRender: normalisedRenderer(normTable, volatiles),
    },
    raw,
    norm,
  );
  let from = 0;
  for (const cut of [...cuts, stream.length]) {
    if (cut > from) encoder.data(stream, from, cut);
    from = Math.max(from, cut);
  }
  encoder.end();
  return { raw: raw.text(), norm: norm.text() };
}

/** What the old writer wrote for the same COPY text (its in-memory path: decode, split, render). */
function reference(stream: Buffer): { raw: Buffer; norm: Buffer } {
  const text = stream.toString('utf8').split('\n');
  if (text[text.length - 1] === '') text.pop();
  const renderRaw = referenceRawRenderer(table);
  const renderNorm = referenceNormalisedRenderer(normTable, volatiles);
  const rows = (render: (fields: Array<string | null>) => string, indent: string) =>
    Buffer.from(text.map((line, index) => `${indent}${render(referenceSplit(line))}${index < text.length - 1 ? ',' : ''}\n`).join(''), 'utf8');
  return { raw: rows(renderRaw, '    '), norm: rows(renderNorm, '  ') };
}

describe('the COPY byte encoder', () => {
  const stream = Buffer.concat(lines.flatMap((line) => [line, Buffer.from('\n')]));
  const expected = reference(stream);

  it('writes what the string renderer wrote, one payload per row', () => {
    const cuts: number[] = [];
    let at = 0;
    for (const line of lines) {
      at += line.length + 1;
      cuts.push(at);
    }
    const out = encode(stream, cuts);
    expect(out.raw.toString('utf8')).toBe(expected.raw.toString('utf8'));
    expect(out.norm.toString('utf8')).toBe(expected.norm.toString('utf8'));
    expect(out.raw.equals(expected.raw)).toBe(true);
    expect(out.norm.equals(expected.norm)).toBe(true);
  });

  it('and however the rows are cut into payloads', () => {
    const whole = encode(stream, []);
    expect(whole.raw.equals(expected.raw) && whole.norm.equals(expected.norm)).toBe(true);
    const bytes = encode(stream, Array.from({ length: stream.length }, (_, index) => index));
    expect(bytes.raw.equals(expected.raw) && bytes.norm.equals(expected.norm)).toBe(true);
    for (let cut = 1; cut < stream.length; cut += 1) {
      const out = encode(stream, [cut, cut + 7]);
      expect(out.raw.equals(expected.raw) && out.norm.equals(expected.norm), `cut at ${cut}`).toBe(true);
    }
  });

  it('writes nothing for no rows, and a last row without its newline as the old writer did', () => {
    expect(encode(Buffer.alloc(0), []).raw.length).toBe(0);
    const cut = Buffer.from('1\tlast\tt\tnull\tx');
    const out = encode(cut, []);
    expect(out.raw.toString()).toBe(`    ${referenceRawRenderer(table)(referenceSplit(cut.toString()))}\n`);
  });
});
