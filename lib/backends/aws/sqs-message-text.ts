// What SQS takes as a message body, and JSON text made to fit it: SQS refuses a whole message for one character
// outside its set, and JSON.stringify leaves some of those (U+FFFE, U+FFFF) as they are.
import { escapeJsonChars } from '../../core/json-escape';

/**
 * A message body SQS accepts, by its SendMessage reference: only `#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD
 * | #x10000 to #x10FFFF` (a pair of surrogates is one character of the last range); any other character and SQS
 * answers `InvalidMessageContents`.
 */
export const SQS_MESSAGE_TEXT = /^(?:[\t\n\r\u0020-\ud7ff\ue000-\ufffd]|[\ud800-\udbff][\udc00-\udfff])*$/;

/** Code units outside SQS's set: controls but tab, LF and CR, U+FFFE, U+FFFF, and surrogates not in a pair. */
const OUTSIDE_SQS_TEXT =
  // eslint-disable-next-line no-control-regex -- the controls SQS refuses are what this matches
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * JSON text as a body SQS accepts: every character outside its set written as a `\uXXXX` escape, so the body reads
 * back as the same value. (Outside strings JSON holds none of them but whitespace SQS takes.)
 */
export function sqsJsonText(json: string): string {
  return escapeJsonChars(json, OUTSIDE_SQS_TEXT);
}
