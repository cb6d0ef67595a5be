// Decoding of zip member names the way archivers show them: UTF-8 when flag bit 11 is set, otherwise
// IBM code page 437, plus the Info-ZIP Unicode Path extra field (0x7075), which extractors prefer. An
// attacker can make these disagree, so every form is returned and checked.
import type { ExtraField } from 'yauzl';

// Code page 437, bytes 0x80–0xFF.
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

export function decodeCp437(raw: Uint8Array): string {
  let out = '';
  for (const b of raw) out += b < 0x80 ? String.fromCharCode(b) : (CP437_HIGH[b - 0x80] ?? '?');
  return out;
}

export function decodeZipName(raw: Uint8Array, generalPurposeBitFlag: number): string {
  return (generalPurposeBitFlag & 0x800) !== 0 ? Buffer.from(raw).toString('utf8') : decodeCp437(raw);
}

/** Every name an extractor might show for a member: the header name and the Unicode Path extra field. */
export function memberNames(raw: Uint8Array, generalPurposeBitFlag: number, extraFields: readonly ExtraField[]): string[] {
  const names = [decodeZipName(raw, generalPurposeBitFlag)];
  for (const f of extraFields) {
    // 0x7075: version (1 byte, 1), CRC-32 of the header name (4 bytes), UTF-8 name.
    if (f.id === 0x7075 && f.data.length > 5 && f.data[0] === 1) {
      const unicode = f.data.subarray(5).toString('utf8');
      if (!names.includes(unicode)) names.push(unicode);
    }
  }
  return names;
}

/**
 * Names from local file headers found by scanning the bytes. Catches members the central directory does not
 * list: concatenated zips and crafted archives where tools disagree about which directory to trust.
 */
export function localHeaderNames(buf: Buffer, limit: number): { name: string; encrypted: boolean }[] {
  const found: { name: string; encrypted: boolean }[] = [];
  const sig = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
  let at = buf.indexOf(sig);
  while (at !== -1 && at + 30 <= buf.length && found.length < limit) {
    const flags = buf.readUInt16LE(at + 6);
    const nameLen = buf.readUInt16LE(at + 26);
    if (nameLen > 0 && at + 30 + nameLen <= buf.length) {
      found.push({ name: decodeZipName(buf.subarray(at + 30, at + 30 + nameLen), flags), encrypted: (flags & 1) !== 0 });
    }
    at = buf.indexOf(sig, at + 4);
  }
  return found;
}
