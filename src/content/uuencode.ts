// Finds files encoded in the text of a MIME part — uuencoded blocks (`begin 644 name` … `end`, and
// `begin-base64 644 name` … `====`) and yEnc blocks (`=ybegin … name=x` … `=yend`, see yenc.ts) — and decodes
// their content as it streams, so the block's name and first bytes can be checked like an attachment's. Old
// mail clients and some malware still send files this way, and Thunderbird decodes both.
import { YencDecoder, yencBeginName } from './yenc.js';
import { utf8FromByteString } from '../byte-string.js';

export interface DecodedSink {
  write(bytes: Buffer): void;
  end(): void;
}

export type EncodedBlockKind = 'uuencode' | 'yenc';

const BEGIN = /^begin(-base64)? +[0-7]{3,4} +(.+?)\s*$/;
const MAX_LINE = 4096;

function decodeUuLine(line: string): Buffer | undefined {
  if (line === '' ) return undefined;
  const n = (line.charCodeAt(0) - 32) & 63;
  if (n === 0) return undefined;
  const out = Buffer.alloc(n);
  let o = 0;
  for (let i = 1; o < n; i += 4) {
    const c = [0, 1, 2, 3].map((k) => ((line.charCodeAt(i + k) || 32) - 32) & 63);
    const [a = 0, b = 0, d = 0, e = 0] = c;
    const bytes = [(a << 2) | (b >> 4), ((b & 15) << 4) | (d >> 2), ((d & 3) << 6) | e];
    for (const byte of bytes) if (o < n) out[o++] = byte & 0xff;
  }
  return out;
}

/** A name in an 8-bit charset stays as it was (latin1, one code unit per byte) unless it reads as UTF-8. */
function decodeName(raw: string): string {
  return utf8FromByteString(raw) ?? raw;
}

/** Line scanner over text bytes; `onBlock` is called with each block's raw name and returns where its bytes go. */
export class UuencodeScanner {
  private carry = '';
  private block: { sink: DecodedSink; format: 'uu' | 'base64' | 'yenc' } | undefined;
  private readonly yenc = new YencDecoder();
  /** The yEnc data line being read began in an earlier chunk, and what came of it is decoded already. */
  private inYencLine = false;
  private readonly onBlock: (name: string, kind: EncodedBlockKind) => DecodedSink;

  constructor(onBlock: (name: string, kind: EncodedBlockKind) => DecodedSink) {
    this.onBlock = onBlock;
  }

  write(chunk: Buffer): void {
    // latin1 keeps one code unit per byte, so names in 8-bit charsets survive until decoded below.
    let text = chunk.toString('latin1');
    if (this.inYencLine) {
      const nl = text.indexOf('\n');
      this.yencData(nl < 0 ? text : text.slice(0, nl));
      if (nl < 0) return;
      this.yenc.endLine();
      this.inYencLine = false;
      text = text.slice(nl + 1);
    }
    const lines = (this.carry + text).split('\n');
    const rest = lines.pop() ?? '';
    this.carry = '';
    for (const line of lines) this.line(line.replace(/\r$/, ''));
    // A yEnc line has no length limit (`line=` is the sender's choice): its start is decoded now rather than
    // held, once it cannot be a `=y` keyword line.
    if (this.block?.format === 'yenc' && rest !== '' && !'=y'.startsWith(rest.slice(0, 2))) {
      this.yencData(rest);
      this.inYencLine = true;
    } else {
      this.carry = rest.slice(0, MAX_LINE);
    }
  }

  end(): void {
    if (this.carry !== '') this.line(this.carry.replace(/\r$/, ''));
    this.carry = '';
    this.inYencLine = false;
    this.closeBlock();
  }

  private closeBlock(): void {
    this.block?.sink.end();
    this.block = undefined;
  }

  private yencData(text: string): void {
    const bytes = this.yenc.write(text);
    if (bytes.length > 0) this.block?.sink.write(bytes);
  }

  private line(whole: string): void {
    if (this.block?.format === 'yenc') {
      if (whole.startsWith('=yend')) return this.closeBlock();
      if (whole.startsWith('=ypart')) return; // a multipart post's part line: framing, not data
      this.yencData(whole);
      this.yenc.endLine();
      return;
    }
    const line = whole.slice(0, MAX_LINE);
    if (this.block) {
      if (this.block.format === 'base64') {
        if (line === '====') return this.closeBlock();
        this.block.sink.write(Buffer.from(line, 'base64'));
        return;
      }
      if (line === 'end') return this.closeBlock();
      const bytes = decodeUuLine(line);
      if (bytes) this.block.sink.write(bytes);
      return;
    }
    const yencName = yencBeginName(line);
    if (yencName !== undefined) {
      this.yenc.endLine();
      this.block = { sink: this.onBlock(decodeName(yencName), 'yenc'), format: 'yenc' };
      return;
    }
    const m = BEGIN.exec(line);
    if (!m) return;
    this.block = { sink: this.onBlock(decodeName(m[2] ?? ''), 'uuencode'), format: m[1] !== undefined ? 'base64' : 'uu' };
  }
}
