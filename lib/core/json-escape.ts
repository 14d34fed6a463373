// JSON text with chosen characters written as `\uXXXX` escapes, for readers and transports that take only some
// characters (Python's ASCII `json.dumps`, SQS message bodies). Pure.

/**
 * `json` with each UTF-16 code unit `chars` matches (a global pattern) written as its `\uXXXX` escape. The text means
 * exactly the same JSON value, provided `chars` matches nothing of JSON's own syntax (quotes, backslashes, and the
 * ASCII letters, digits and punctuation outside strings): such characters can then only stand inside strings, where
 * an escape reads back as the character itself.
 */
export function escapeJsonChars(json: string, chars: RegExp): string {
  return json.replace(chars, (text) => {
    let out = '';
    for (let i = 0; i < text.length; i++) out += `\\u${text.charCodeAt(i).toString(16).padStart(4, '0')}`;
    return out;
  });
}
