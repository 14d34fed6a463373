// Reading result texts exactly as the runtimes write them: Python's NaN, Infinity and big integers included.
import { isResultJson, parseResultJson, resultJsonForLine, ResultJsonError } from '../../lib/core/result-json';

describe('parseResultJson', () => {
  it("reads Python's NaN, Infinity and -Infinity as those numbers, at any depth", () => {
    expect(parseResultJson('NaN')).toBeNaN();
    expect(parseResultJson('{"price": NaN, "vols": [Infinity, -Infinity, 1.5], "ok": true}')).toEqual({
      price: NaN,
      vols: [Infinity, -Infinity, 1.5],
      ok: true,
    });
  });

  it('keeps -0.0 negative and integers beyond 2^53 exact as bigints, other numbers as numbers', () => {
    expect(Object.is(parseResultJson('-0.0'), -0)).toBe(true);
    expect(
      parseResultJson('[9007199254740993, -123456789012345678901234567890, 9007199254740991, 0.1234567890123456]'),
    ).toEqual([9007199254740993n, -123456789012345678901234567890n, 9007199254740991, 0.1234567890123456]);
    expect(parseResultJson('{"n": 12345678901234567890, "x": NaN}')).toEqual({ n: 12345678901234567890n, x: NaN });
  });

  it('leaves strings alone, even ones that spell NaN, hold long digit runs or look like markers', () => {
    const text =
      String.raw`{"NaN": "NaN Infinity -Infinity", "id": "12345678901234567890", "m": "\ue000", "r": "` +
      '\ue001' +
      String.raw`0", "q": "a\"NaN", "v": NaN}`;
    expect(parseResultJson(text)).toEqual({
      NaN: 'NaN Infinity -Infinity',
      id: '12345678901234567890',
      m: '\ue000',
      r: '\ue0010',
      q: 'a"NaN',
      v: NaN,
    });
  });

  it('reads any Unicode, escaped or raw, lone surrogates included', () => {
    expect(parseResultJson(String.raw`["\u00e9\u4e2d\ud83d\ude00", "é中😀", "\ud800", NaN]`)).toEqual([
      'é中😀',
      'é中😀',
      '\ud800',
      NaN,
    ]);
  });

  it('throws a ResultJsonError naming the problem for a text that is not JSON even so', () => {
    expect(() => parseResultJson('hello')).toThrow(ResultJsonError);
    expect(() => parseResultJson('{"a": NaNa}')).toThrow(/the result is not JSON/);
    expect(() => parseResultJson('')).toThrow(/the result is not JSON/);
    expect(isResultJson('[1, NaN]')).toBe(true);
    expect(isResultJson('[1, nan]')).toBe(false);
  });
});

describe('resultJsonForLine', () => {
  it('keeps a valid text as written, with line breaks turned to spaces', () => {
    expect(resultJsonForLine('{"a": NaN, "b": 12345678901234567890}')).toBe('{"a": NaN, "b": 12345678901234567890}');
    expect(resultJsonForLine('{\n  "a": "x\\ny"\r\n}')).toBe('{   "a": "x\\ny"  }');
  });

  it('writes a stored text that is not JSON as a JSON string, so the line stays readable', () => {
    expect(resultJsonForLine('not json')).toBe('"not json"');
  });
});
