// Reading a delivered message back (a Maildir or mailbox file: LF line ends, as the MTA stored it), so tests can
// check the headers a milter added or changed and the body it replaced, the same way for Postfix and Sendmail.
import assert from 'node:assert/strict';

/** Header fields of a delivered (LF) message in order, folded lines joined with `\n`. */
export function parseHeaders(raw: string): Array<readonly [string, string]> {
  const end = raw.indexOf('\n\n');
  const block = end < 0 ? raw : raw.slice(0, end);
  const fields: Array<[string, string]> = [];
  for (const line of block.split('\n')) {
    const last = fields.at(-1);
    if (/^[ \t]/.test(line) && last) last[1] += `\n${line}`;
    else {
      const colon = line.indexOf(':');
      fields.push([line.slice(0, colon), line.slice(colon + 1).replace(/^ /, '')]);
    }
  }
  return fields;
}

/** The values of every header field called `name` (any case), in order. */
export function headerValues(raw: string, name: string): string[] {
  return parseHeaders(raw)
    .filter(([n]) => n.toLowerCase() === name.toLowerCase())
    .map(([, v]) => v);
}

/** Everything after the blank line that ends the header block. */
export function bodyOf(raw: string): string {
  const end = raw.indexOf('\n\n');
  assert.ok(end >= 0, 'delivered message has no header/body separator');
  return raw.slice(end + 2);
}
