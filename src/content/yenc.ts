// yEnc, the Usenet binary encoding Thunderbird still decodes in mail: `=ybegin line=128 size=N name=x`, an
// optional `=ypart begin=1 end=N` (a multipart post), data lines, `=yend size=N`. Each data byte is written
// as (byte + 42) mod 256, and `=` escapes the next character as (byte + 42 + 64) mod 256; CR and LF are
// line breaks, never data. This decodes the data lines; uuencode.ts finds the blocks.

const YBEGIN = /^=ybegin(?=[ \t])(?:.*?[ \t]name=(.*))?$/;

/** The raw name of a `=ybegin` line (the rest of the line after `name=`, '' when there is none), or undefined. */
export function yencBeginName(line: string): string | undefined {
  const m = YBEGIN.exec(line);
  return m ? (m[1] ?? '').trim() : undefined;
}

/** Decodes data text (latin1, one character per byte) given in pieces; an escape may be cut between two. */
export class YencDecoder {
  private escaped = false;

  write(text: string): Buffer {
    const out = Buffer.alloc(text.length);
    let o = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0d || c === 0x0a) continue;
      if (this.escaped) {
        out[o++] = (c - 106) & 0xff;
        this.escaped = false;
      } else if (c === 0x3d) {
        this.escaped = true;
      } else {
        out[o++] = (c - 42) & 0xff;
      }
    }
    return o === out.length ? out : out.subarray(0, o);
  }

  /** A line break: an `=` at the end of a line escapes nothing. */
  endLine(): void {
    this.escaped = false;
  }
}
