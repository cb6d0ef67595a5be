// A tiny zip writer for tests and fixtures: stored or deflated members (node:zlib), the UTF-8 name flag,
// and a fake "encrypted" flag (the bytes are not really encrypted: listing only looks at the flag).
import { deflateRawSync } from 'node:zlib';

export interface ZipMember {
  readonly name: string;
  readonly data: Buffer | string;
  readonly store?: boolean;
  readonly encrypted?: boolean;
  /** Lie about the uncompressed size in the central directory (zip-bomb tests). */
  readonly declaredSize?: number;
  /** An Info-ZIP Unicode Path extra field (0x7075) naming the member (unzip prefers it to the header name). */
  readonly unicodePath?: string;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = (CRC_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function makeZip(members: readonly ZipMember[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const data = typeof m.data === 'string' ? Buffer.from(m.data) : m.data;
    const name = Buffer.from(m.name, 'utf8');
    const store = m.store === true || m.encrypted === true || data.length === 0;
    let body = store ? data : deflateRawSync(data);
    if (m.encrypted) body = Buffer.concat([Buffer.alloc(12, 0x5a), body]);
    const flags = (m.encrypted ? 1 : 0) | (/[^\x00-\x7f]/.test(m.name) ? 0x800 : 0);
    const method = store ? 0 : 8;
    const crc = crc32(data);
    const size = m.declaredSize ?? data.length;
    const extra = unicodePathField(m.unicodePath, name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    locals.push(local, name, extra, body);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name, extra);
    offset += 30 + name.length + extra.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(members.length, 8);
  eocd.writeUInt16LE(members.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

function unicodePathField(path: string | undefined, headerName: Buffer): Buffer {
  if (path === undefined) return Buffer.alloc(0);
  const utf8 = Buffer.from(path, 'utf8');
  const field = Buffer.alloc(4 + 5 + utf8.length);
  field.writeUInt16LE(0x7075, 0);
  field.writeUInt16LE(5 + utf8.length, 2);
  field.writeUInt8(1, 4);
  field.writeUInt32LE(crc32(headerName), 5);
  utf8.copy(field, 9);
  return field;
}

/** Smallest bytes that detectType() calls each real type (test samples, not working files). */
export const SAMPLES = {
  pe(): Buffer {
    const b = Buffer.alloc(512);
    b.write('MZ', 0, 'latin1');
    b.writeUInt32LE(0x80, 0x3c);
    b.write('PE\0\0', 0x80, 'latin1');
    return b;
  },
  lnk(): Buffer {
    const b = Buffer.alloc(128);
    Buffer.from([0x4c, 0, 0, 0, 0x01, 0x14, 0x02, 0]).copy(b);
    return b;
  },
  iso(): Buffer {
    const b = Buffer.alloc(0x8800);
    b.write('\x01CD001\x01', 0x8000, 'latin1');
    return b;
  },
  pdf(): Buffer {
    return Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n', 'latin1');
  },
  png(): Buffer {
    return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0', 'latin1')]);
  },
  jpeg(): Buffer {
    return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), Buffer.from('JFIF\0\x01\x01\0\0\x01\0\x01\0\0', 'latin1'), Buffer.from([0xff, 0xd9])]);
  },
  ooxml(kind: 'word' | 'xl'): Buffer {
    const main = kind === 'word' ? 'word/document.xml' : 'xl/workbook.xml';
    return makeZip([
      { name: '[Content_Types].xml', data: '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>' },
      { name: '_rels/.rels', data: '<?xml version="1.0"?><Relationships/>' },
      { name: main, data: '<?xml version="1.0"?><root>hello</root>'.repeat(20) },
      { name: `${kind}/media/image1.emf`, data: Buffer.alloc(64, 1) },
      { name: `${kind}/_rels/${kind === 'word' ? 'document' : 'workbook'}.xml.rels`, data: '<Relationships/>' },
    ]);
  },
};
