// yEnc encoding for tests (latin1 text): `=ybegin`, lines of about `line` characters, `=yend`.
export function yencode(data: Buffer, name: string, line = 128): string {
  let out = `=ybegin line=${line} size=${data.length} name=${name}\r\n`;
  let column = 0;
  for (const byte of data) {
    const e = (byte + 42) & 0xff;
    const critical = e === 0x00 || e === 0x0a || e === 0x0d || e === 0x3d;
    out += critical ? `=${String.fromCharCode((e + 64) & 0xff)}` : String.fromCharCode(e);
    column += critical ? 2 : 1;
    if (column >= line) {
      out += '\r\n';
      column = 0;
    }
  }
  return `${out}${column > 0 ? '\r\n' : ''}=yend size=${data.length}\r\n`;
}
