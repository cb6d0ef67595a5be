// Content-Transfer-Encoding decoding of one MIME part while it streams in, chunk by chunk and synchronously:
// a part's bytes reach the checks in the same call that delivered them, with no stream objects per part.
// The byte decoding itself is libbase64's and libqp's (the decoders mailsplit and mailparser use); what is ours
// is where a chunk may be cut so that decoding the pieces gives the bytes decoding the whole would.
import { decode as decodeBase64 } from 'libbase64';
import { decode as decodeQuotedPrintable } from 'libqp';
import { UuencodeScanner } from './uuencode.js';

export interface TransferDecoder {
  /** Decoded bytes of `chunk` that are complete so far (possibly none). */
  write(chunk: Buffer): Buffer;
  /** Whatever was held back waiting for more. */
  end(): Buffer;
}

const EMPTY = Buffer.alloc(0);
const NOT_BASE64 = /[^A-Za-z0-9+/=]/;
const NOT_BASE64_ALL = /[^A-Za-z0-9+/=]+/g;

/** Decodes what can be decoded of the text so far and holds back the rest until more arrives or the part ends. */
abstract class CarryingDecoder implements TransferDecoder {
  private carry = '';

  /** The text (latin1, one character per byte) split into what decodes now and what waits. */
  protected abstract split(text: string): readonly [now: string, later: string];
  protected abstract decode(text: string): Buffer;

  write(chunk: Buffer): Buffer {
    const [now, later] = this.split(this.carry + chunk.toString('latin1'));
    this.carry = later;
    return now === '' ? EMPTY : this.decode(now);
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = '';
    return rest === '' ? EMPTY : this.decode(rest);
  }
}

/** Base64: only complete quartets are decoded; a padding `=` ends a segment, so the count restarts after it. */
class Base64Decoder extends CarryingDecoder {
  protected split(raw: string): readonly [string, string] {
    const text = NOT_BASE64.test(raw) ? raw.replace(NOT_BASE64_ALL, '') : raw;
    const afterPad = text.lastIndexOf('=') + 1;
    const usable = afterPad + (text.length - afterPad - ((text.length - afterPad) % 4));
    return [text.slice(0, usable), text.slice(usable)];
  }

  protected decode(text: string): Buffer {
    return decodeBase64(text);
  }
}

// A line longer than this (no line break at all, which RFC 2045 forbids past 76) is cut inside; the cut avoids
// an `=XX` escape and trailing white space (which libqp strips at a line's end), looking back at most 64 characters.
const MAX_QP_CARRY = 16 * 1024;

function isQuotedPrintableBreakable(text: string, at: number): boolean {
  const last = text.charCodeAt(at - 1);
  return text[at - 1] !== '=' && text[at - 2] !== '=' && last !== 0x20 && last !== 0x09;
}

/** Quoted-printable: decoded a whole line at a time, as escapes, soft breaks and trailing space are per line. */
class QuotedPrintableDecoder extends CarryingDecoder {
  protected split(text: string): readonly [string, string] {
    let cut = text.lastIndexOf('\n') + 1;
    if (cut === 0 && text.length > MAX_QP_CARRY) {
      cut = text.length;
      while (cut > text.length - 64 && !isQuotedPrintableBreakable(text, cut)) cut--;
    }
    return [text.slice(0, cut), text.slice(cut)];
  }

  protected decode(text: string): Buffer {
    return decodeQuotedPrintable(text);
  }
}

/**
 * A part sent as a uuencoded or yEnc file (`x-uuencode` and its aliases, `x-yencode`): what follows its `begin`
 * or `=ybegin` line is the part's content, as Thunderbird decodes it; lines before it, and the name on it, are
 * not. Either format is decoded under either name: a client that knows only one decodes no more than that.
 */
class EmbeddedFileDecoder implements TransferDecoder {
  private out: Buffer[] = [];
  private readonly scanner = new UuencodeScanner(() => ({ write: (bytes) => this.out.push(bytes), end: () => undefined }));

  write(chunk: Buffer): Buffer {
    this.scanner.write(chunk);
    return this.take();
  }

  end(): Buffer {
    this.scanner.end();
    return this.take();
  }

  private take(): Buffer {
    if (this.out.length === 0) return EMPTY;
    const bytes = this.out.length === 1 ? (this.out[0] as Buffer) : Buffer.concat(this.out);
    this.out = [];
    return bytes;
  }
}

const IDENTITY: TransferDecoder = { write: (chunk) => chunk, end: () => EMPTY };

const UUENCODE = new Set(['x-uuencode', 'x-uue', 'uuencode', 'uue']);
const UNENCODED = new Set(['', '7bit', '8bit', 'binary']);

/**
 * The encoding as a mail client reads it: the first token, lower-case. Thunderbird cuts the value at `;`, `,`
 * or white space, so `base64; x=1` is base64 to it. A quoted value stays quoted (mailsplit leaves it so): no
 * client decodes `"base64"`.
 */
export function transferEncodingName(encoding: string | false): string {
  return encoding === false ? '' : (encoding.trim().split(/[;,\s]/, 1)[0] ?? '').toLowerCase();
}

/** True when `transferDecoder` decodes the encoding or it needs no decoding. */
export function isKnownTransferEncoding(encoding: string | false): boolean {
  const name = transferEncodingName(encoding);
  return UNENCODED.has(name) || name === 'base64' || name === 'quoted-printable' || UUENCODE.has(name) || name === 'x-yencode';
}

/**
 * The decoder for a part's transfer encoding (as mailsplit gives it). Anything it does not know passes through
 * as it is, as in Thunderbird, mailsplit and mailparser.
 */
export function transferDecoder(encoding: string | false): TransferDecoder {
  const name = transferEncodingName(encoding);
  if (name === 'base64') return new Base64Decoder();
  if (name === 'quoted-printable') return new QuotedPrintableDecoder();
  if (UUENCODE.has(name) || name === 'x-yencode') return new EmbeddedFileDecoder();
  return IDENTITY;
}
