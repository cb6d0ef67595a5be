// Most mail without attachments is one text/plain or text/html body. For such a message the MIME walk can
// find little: the part has no name, a body text is checked only for binary dangerous types (the shortcut
// detects those from the same first bytes), and only a zip start or an encoded file inside it would lead
// further. Recognising it from the top-level header block saves the
// MIME parser's work (about a quarter of the milter's CPU per message). Anything less plain — a name
// parameter anywhere, a disposition, a transfer encoding that can hide bytes, repeated headers — goes the
// full way, and so does a body that turns out to start like a zip or to hold a line that begins a file a
// mail client decodes from text: uuencode's `begin`, yEnc's `=ybegin`, BinHex's marker.

const TEXT_BODY = /^\s*text\/(?:plain|html)\s*(?:;|$)/i;
const PLAIN_ENCODING = /^\s*(?:7bit|8bit)\s*$/i;

export interface PlainTextBody {
  /** The declared type, lower-case, without parameters (`text/plain` when absent). */
  readonly contentType: string;
}

/**
 * The top-level header block (up to, not including, the blank line) of a message whose whole body is one
 * unnamed text part, or undefined when the message needs the full MIME walk.
 */
export function plainTextBody(headerBlock: string): PlainTextBody | undefined {
  const fields = new Map<string, string[]>();
  for (const line of headerBlock.split(/\r?\n(?![ \t])/)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined; // not a header line: let the parser decide what it is
    const name = line.slice(0, colon).trim().toLowerCase();
    const values = fields.get(name) ?? [];
    values.push(line.slice(colon + 1));
    fields.set(name, values);
  }
  const type = fields.get('content-type');
  const encoding = fields.get('content-transfer-encoding');
  if (fields.has('content-disposition')) return undefined;
  if ((type?.length ?? 0) > 1 || (encoding?.length ?? 0) > 1) return undefined;
  const typeValue = type?.[0];
  if (typeValue !== undefined && (!TEXT_BODY.test(typeValue) || /name/i.test(typeValue))) return undefined;
  if (encoding?.[0] !== undefined && !PLAIN_ENCODING.test(encoding[0])) return undefined;
  const contentType = typeValue === undefined ? 'text/plain' : (/^\s*([^;\s]+)/.exec(typeValue)?.[1] ?? 'text/plain').toLowerCase();
  return { contentType };
}

// A line starting so may begin a file that Thunderbird decodes from a text body (mimeunty.cpp).
const FILE_START = /\n(?:begin|=ybegin|\(This file must be converted with BinHex)/;
// Enough of the previous chunk to find a line start cut between two: the longest start and its line break.
const CARRY = 41;

/** Watches the body of a plain text message for what would need the full walk. */
export class PlainBodyWatch {
  /** Body bytes seen. */
  size = 0;
  needsFullWalk = false;
  private head = '';
  // The body's first line starts a line too.
  private carry = '\n';

  write(chunk: Buffer): void {
    if (this.needsFullWalk || chunk.length === 0) return;
    const text = chunk.toString('latin1');
    if (this.head.length < 2) {
      this.head += text.slice(0, 2 - this.head.length);
      // A zip would be listed by the full walk even in a text part.
      if (this.head === 'PK') this.needsFullWalk = true;
    }
    const window = this.carry + text;
    if (FILE_START.test(window)) this.needsFullWalk = true;
    this.size += chunk.length;
    this.carry = window.slice(-CARRY);
  }
}
