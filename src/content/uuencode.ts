// Finds uuencoded blocks (`begin 644 name` … `end`, and `begin-base64 644 name` … `====`) in the decoded
// text of a MIME part and decodes their content as it streams, so the block's name and first bytes can
// be checked like an attachment's. Old mail clients and some malware still send files this way.

export interface DecodedSink {
  write(bytes: Buffer): void;
  end(): void;
}

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

/** Line scanner over text bytes; `onBlock` is called with each block's raw name and returns where its bytes go. */
export class UuencodeScanner {
  private carry = '';
  private block: { sink: DecodedSink; base64: boolean } | undefined;
  private readonly onBlock: (name: string) => DecodedSink;

  constructor(onBlock: (name: string) => DecodedSink) {
    this.onBlock = onBlock;
  }

  write(chunk: Buffer): void {
    // latin1 keeps one code unit per byte, so names in 8-bit charsets survive until decoded below.
    const text = this.carry + chunk.toString('latin1');
    const lines = text.split('\n');
    this.carry = (lines.pop() ?? '').slice(0, MAX_LINE);
    for (const line of lines) this.line(line.replace(/\r$/, '').slice(0, MAX_LINE));
  }

  end(): void {
    if (this.carry !== '') this.line(this.carry.replace(/\r$/, ''));
    this.carry = '';
    this.closeBlock();
  }

  private closeBlock(): void {
    this.block?.sink.end();
    this.block = undefined;
  }

  private line(line: string): void {
    if (this.block) {
      if (this.block.base64) {
        if (line === '====') return this.closeBlock();
        this.block.sink.write(Buffer.from(line, 'base64'));
        return;
      }
      if (line === 'end') return this.closeBlock();
      const bytes = decodeUuLine(line);
      if (bytes) this.block.sink.write(bytes);
      return;
    }
    const m = BEGIN.exec(line);
    if (!m) return;
    const rawName = m[2] ?? '';
    const utf8 = Buffer.from(rawName, 'latin1').toString('utf8');
    const name = utf8.includes('\uFFFD') ? rawName : utf8;
    this.block = { sink: this.onBlock(name), base64: m[1] !== undefined };
  }
}
