// The paragraph editor counts what a person sees: a grapheme is one character to
// move over and delete (👩‍💻 is five UTF-16 code units, 🇫🇷 four, é as e + U+0301
// two), and a row's width is terminal cells (CJK and emoji take two).
import { describe, expect, it } from 'vitest';
import {
  applyEditorKey,
  displayWidth,
  editorWindow,
  graphemes,
  wrapOffsets,
  wrapText,
  type EditorKey,
  type EditorValue,
} from '../../src/console/editor.js';

const coder = '👩‍💻';
const france = '🇫🇷';
const germany = '🇩🇪';
const accented = 'e\u0301';

const press = (value: EditorValue, key: EditorKey, input = '', width = 40) => applyEditorKey(value, input, key, width);
const backspace = (value: EditorValue) => press(value, { backspace: true });
const atEnd = (text: string): EditorValue => ({ text, cursor: text.length });

describe('backspace deletes one whole character', () => {
  it.each([
    ['a ZWJ emoji', `ab${coder}`, 'ab'],
    ['a flag', `ab${france}`, 'ab'],
    ['the second of two flags only', `${france}${germany}`, france],
    ['a letter and its combining accent', `caf${accented}`, 'caf'],
    ['a CJK character', '中文', '中'],
    ['an ASCII letter', 'abc', 'ab'],
  ])('%s', (_, text, left) => {
    expect(backspace(atEnd(text))).toEqual({ text: left, cursor: left.length });
  });

  it('Ink reports the backspace key as delete (DEL): the same whole character goes', () => {
    expect(press(atEnd(`x${coder}`), { delete: true })).toEqual({ text: 'x', cursor: 1 });
  });

  it('in the middle of the text, only the character before the cursor goes', () => {
    const text = `a${coder}b`;
    expect(backspace({ text, cursor: 1 + coder.length })).toEqual({ text: 'ab', cursor: 1 });
  });
});

describe('the cursor moves by grapheme', () => {
  const text = `a${coder}${france}${accented}b`;
  const boundaries = [0, ...graphemes(text).map(({ index, segment }) => index + segment.length)];

  it('right arrow visits exactly the grapheme boundaries, and left arrow the same ones back', () => {
    let value: EditorValue = { text, cursor: 0 };
    const right = [0];
    for (let step = 0; step < 10; step += 1) {
      value = press(value, { rightArrow: true });
      if (value.cursor === right.at(-1)) break;
      right.push(value.cursor);
    }
    expect(right).toEqual(boundaries);
    expect(right).toEqual([0, 1, 1 + coder.length, 1 + coder.length + france.length, text.length - 1, text.length]);
    const left = [value.cursor];
    while (value.cursor > 0) {
      value = press(value, { leftArrow: true });
      left.push(value.cursor);
    }
    expect(left).toEqual([...boundaries].reverse());
  });

  it('a cursor left inside a character (an old state) is treated as standing before it', () => {
    expect(press({ text, cursor: 3 }, { rightArrow: true }).cursor).toBe(1 + coder.length);
    expect(backspace({ text, cursor: 3 })).toEqual({ text: text.slice(1), cursor: 0 });
  });

  it('typing a character that joins the next one (a second regional indicator) leaves the cursor after the pair', () => {
    const typed = press({ text: '🇫', cursor: 2 }, {}, '🇷');
    expect(typed).toEqual({ text: france, cursor: 4 });
    expect(backspace(typed)).toEqual({ text: '', cursor: 0 });
  });
});

describe('display width', () => {
  it.each([
    ['abc', 3],
    ['中文', 4],
    [coder, 2],
    [france, 2],
    [accented, 1],
    [`a${coder}b`, 4],
    ['', 0],
  ])('%j takes %i cells', (text, cells) => {
    expect(displayWidth(text)).toBe(cells);
  });
});

describe('wrapping by cells', () => {
  it('CJK characters take two cells: three fit in six columns, not six', () => {
    expect(wrapText('中文中文中文', 6)).toEqual(['中文中', '文中文']);
    expect(wrapText('中文中文中文', 5)).toEqual(['中文', '中文', '中文']);
  });

  it('emoji take two cells and are never cut in half', () => {
    const text = `${coder}${coder}${coder}`;
    const rows = wrapText(text, 5);
    expect(rows).toEqual([`${coder}${coder}`, coder]);
    for (const row of rows) expect(displayWidth(row)).toBeLessThanOrEqual(5);
  });

  it('words still wrap at spaces, the space kept at the end of its row', () => {
    const text = `${france} ${france} ${france}`;
    const lines = wrapOffsets(text, 5);
    expect(lines.map((line) => text.slice(line.start, line.end))).toEqual([`${france} ${france} `, france]);
  });

  it('a character wider than the row still gets a row of its own (no endless loop)', () => {
    expect(wrapText('中中', 1)).toEqual(['中', '中']);
  });

  it('random text of every kind: rows cover the text, end on grapheme boundaries, fit the width', () => {
    const pool = ['a', 'b', ' ', '中', coder, france, accented, 'ß', '\n'];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 200; round += 1) {
      const text = Array.from({ length: Math.floor(random() * 40) }, () => pool[Math.floor(random() * pool.length)]).join('');
      const width = 2 + Math.floor(random() * 10);
      const boundaries = new Set([0, ...graphemes(text).map(({ index, segment }) => index + segment.length)]);
      const lines = wrapOffsets(text, width);
      let expectedStart = 0;
      for (const line of lines) {
        expect(line.start, text).toBe(expectedStart);
        expect(boundaries.has(line.end), text).toBe(true);
        const row = text.slice(line.start, line.end);
        // A row may keep one trailing space past the width (the space that ended it).
        expect(displayWidth(row.replace(/ $/, '')), JSON.stringify({ text, width, row })).toBeLessThanOrEqual(width);
        expectedStart = line.last ? line.end + 1 : line.end;
      }
      expect(expectedStart).toBe(text.length + 1);
    }
  });
});

describe('rows and columns', () => {
  it('the cursor column counts cells', () => {
    const view = editorWindow({ text: '中文ab', cursor: 2 }, 20, 3);
    expect(view).toMatchObject({ cursorRow: 0, cursorColumn: 4, cursorOffset: 2 });
  });

  it('up and down keep the cell column, landing before a wide character rather than inside it', () => {
    // Row 0 "abcd", row 1 "中文中": column 3 of row 1 is the right half of 文.
    const text = 'abcd\n中文中';
    const down = press({ text, cursor: 3 }, { downArrow: true }, '', 10);
    expect(down.cursor).toBe(text.indexOf('文'));
    const up = press({ text, cursor: text.length }, { upArrow: true }, '', 10);
    expect(up.cursor).toBe(4);
  });

  it('end goes after the last character of the row, by cells', () => {
    const text = `${coder}${coder}${coder}`;
    // Rows: two coders, then one; the cursor on row 0 stops before the row's last character.
    expect(press({ text, cursor: 0 }, { end: true }, '', 5).cursor).toBe(coder.length);
    expect(press({ text, cursor: 2 * coder.length }, { end: true }, '', 5).cursor).toBe(text.length);
  });
});
