// mailparser's streaming MailParser, adjusted for inspection:
//  - every leaf part, text bodies included, is emitted as an attachment stream (the stock parser buffers
//    text/plain and text/html parts whole in memory and converts them, which we neither need nor want);
//  - the raw header lines of each part are kept (the stock parser hands out only decoded values, one per
//    parameter, from the first header), keyed by the part's parsed-headers Map, which holds only the
//    Content-* fields;
//  - a redundant second end() of the last part's decoder is skipped (it only built a discarded error).
// These reach into mailparser internals (the `textTypes` field, the `processHeaders` and `endStream` methods of
// 3.14); `hasRawHeaderAccess` / `streamsTextParts` say whether the first two took, and the unit tests fail if an
// upgrade removes them.
import { MailParser, type MailParserOptions } from 'mailparser';
import type { RawHeaderLine } from './mime-names.js';

type ProcessHeaders = (this: MailParser, lines: RawHeaderLine[]) => unknown;
const stockProcessHeaders = (MailParser.prototype as unknown as { processHeaders?: ProcessHeaders }).processHeaders;
const stockEndStream = (MailParser.prototype as unknown as { endStream?: (this: MailParser) => void }).endStream;

function isContentField(line: RawHeaderLine): boolean {
  return typeof line.key === 'string' && line.key.startsWith('content-');
}

interface ParserInternals {
  curnode?: { decoder?: { readonly writableEnded?: boolean } | null } | null;
}

export class InspectingMailParser extends MailParser {
  readonly rawHeaders = new WeakMap<object, readonly RawHeaderLine[]>();
  readonly streamsTextParts: boolean;
  readonly hasRawHeaderAccess = typeof stockProcessHeaders === 'function';

  constructor(options: MailParserOptions) {
    super(options);
    const internals = this as unknown as { textTypes?: unknown };
    this.streamsTextParts = Array.isArray(internals.textTypes);
    if (this.streamsTextParts) internals.textTypes = [];
  }

  /**
   * At the end of the stream mailparser ends the last part's decoder, which is usually ended already; ending
   * an ended stream builds an error object (a stack capture per message) that nobody reads. Skip that end.
   */
  endStream(): void {
    if (!stockEndStream) return;
    const node = (this as unknown as ParserInternals).curnode;
    const decoder = node?.decoder;
    if (node && decoder?.writableEnded === true) {
      node.decoder = null;
      try {
        stockEndStream.call(this);
      } finally {
        node.decoder = decoder;
      }
      return;
    }
    stockEndStream.call(this);
  }

  /** Called by MailParser for every MIME node's headers; returns the Map later found on `attachment.headers`. */
  processHeaders(lines: RawHeaderLine[]): unknown {
    if (!stockProcessHeaders) return new Map();
    // Only the Content-* fields are decoded into the Map (type, disposition, transfer encoding, id): the stock
    // parser would also parse every address, date and subject of the message, which nothing here reads. The
    // raw lines, all of them, stay available below.
    const all = Array.isArray(lines) ? lines : [];
    const parsed = stockProcessHeaders.call(this, all.filter(isContentField));
    if (parsed !== null && typeof parsed === 'object') this.rawHeaders.set(parsed, all);
    return parsed;
  }
}
