// A tiny RAR 5 writer for tests (RARLAB's "RAR 5.0 archive format"): stored members only, optionally marked
// encrypted (a file encryption record with a zero salt and IV; the data is not really encrypted: listing
// only reads the record), or with the archive's headers marked encrypted (an archive encryption header).
import { crc32 } from './zip-writer.js';

export interface RarMember {
  readonly name: string;
  readonly data: Buffer | string;
  readonly encrypted?: boolean;
}

const SIGNATURE = Buffer.from('Rar!\x1a\x07\x01\x00', 'latin1');
const HEADER_MAIN = 1;
const HEADER_FILE = 2;
const HEADER_ENCRYPTION = 4;
const HEADER_END = 5;
const FLAG_EXTRA = 0x1;
const FLAG_DATA = 0x2;
const FILE_CRC_PRESENT = 0x4;
const EXTRA_FILE_ENCRYPTION = 1;

/** RAR's variable-length integer: 7 bits per byte, low first, high bit set on all but the last byte. */
function vint(n: number): Buffer {
  const out: number[] = [];
  do {
    const low = n % 128;
    n = Math.floor(n / 128);
    out.push(n > 0 ? low | 0x80 : low);
  } while (n > 0);
  return Buffer.from(out);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** CRC32 of (size, type, flags, [extra size], [data size], fields, extra), then that block. */
function header(type: number, fields: Buffer, extra = Buffer.alloc(0), dataSize?: number): Buffer {
  const flags = (extra.length > 0 ? FLAG_EXTRA : 0) | (dataSize !== undefined ? FLAG_DATA : 0);
  const body = Buffer.concat([
    vint(type),
    vint(flags),
    extra.length > 0 ? vint(extra.length) : Buffer.alloc(0),
    dataSize !== undefined ? vint(dataSize) : Buffer.alloc(0),
    fields,
    extra,
  ]);
  const sized = Buffer.concat([vint(body.length), body]);
  return Buffer.concat([u32(crc32(sized)), sized]);
}

function fileHeader(member: RarMember): Buffer {
  const data = Buffer.from(member.data);
  const name = Buffer.from(member.name, 'utf8');
  // File flags, unpacked size, attributes, data CRC32, compression (version 0, stored), host OS (Windows), name.
  const fields = Buffer.concat([vint(FILE_CRC_PRESENT), vint(data.length), vint(0x20), u32(crc32(data)), vint(0), vint(0), vint(name.length), name]);
  let extra = Buffer.alloc(0);
  if (member.encrypted) {
    // Type, version 0, flags 0, KDF count, salt (16), IV (16).
    const record = Buffer.concat([vint(EXTRA_FILE_ENCRYPTION), vint(0), vint(0), Buffer.from([15]), Buffer.alloc(16), Buffer.alloc(16)]);
    extra = Buffer.concat([vint(record.length), record]);
  }
  return Buffer.concat([header(HEADER_FILE, fields, extra, data.length), data]);
}

export function makeRar(members: readonly RarMember[], options: { encryptedHeaders?: boolean } = {}): Buffer {
  if (options.encryptedHeaders) {
    // Version 0, flags 0, KDF count, salt: every header after this one would be encrypted.
    const encryption = header(HEADER_ENCRYPTION, Buffer.concat([vint(0), vint(0), Buffer.from([15]), Buffer.alloc(16)]));
    return Buffer.concat([SIGNATURE, encryption, Buffer.alloc(64, 0x5a)]);
  }
  return Buffer.concat([SIGNATURE, header(HEADER_MAIN, vint(0)), ...members.map(fileHeader), header(HEADER_END, vint(0))]);
}
