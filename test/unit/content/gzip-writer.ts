// gzip files for tests: with the original file name in the header, and around a tar (ustar or v7, made here or
// by 7-Zip).
import { gzipSync } from 'node:zlib';
import { type ArchiveMember, makeWithSevenZip } from './seven-zip-writer.js';

/** gzip with the original file name in its header (FLG.FNAME), as `gzip file` writes it (gzipSync writes none). */
export function gzipNamed(name: string, data: Buffer | string): Buffer {
  const plain = gzipSync(Buffer.from(data));
  const head = Buffer.from(plain.subarray(0, 10));
  head[3] = 0x08;
  return Buffer.concat([head, Buffer.from(`${name}\0`, 'latin1'), plain.subarray(10)]);
}

/** A `.tgz`: a tar made by 7-Zip, gzipped. */
export async function makeTgz(members: readonly ArchiveMember[]): Promise<Buffer> {
  return gzipSync(await makeWithSevenZip('tar', members));
}

const BLOCK = 512;
const MIB = 1024 * 1024;

/**
 * One tar header block for a regular file: ustar (with its `ustar` magic, as tar writes by default) or the old
 * v7 format (`tar --format=v7`: name, mode, ids, size, time in octal and the checksum, no magic).
 */
export function tarHeader(name: string, size: number, format: 'ustar' | 'v7' = 'ustar'): Buffer {
  const h = Buffer.alloc(BLOCK);
  const octal = (at: number, width: number, n: number): void => {
    h.write(`${n.toString(8).padStart(width - 1, '0')}\0`, at, 'latin1');
  };
  h.write(name, 0, 100, 'utf8');
  octal(100, 8, 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 0);
  h.write('0', 156, 'latin1');
  if (format === 'ustar') h.write('ustar\x0000', 257, 'latin1');
  // The checksum is the sum of the header's bytes with its own field read as spaces.
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** A tar of regular files, each padded to a whole block, ended by two empty blocks. */
export function makeTar(members: readonly { name: string; data: Buffer | string }[], format: 'ustar' | 'v7' = 'ustar'): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = Buffer.from(m.data);
    parts.push(tarHeader(m.name, data.length, format), data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK));
  }
  return Buffer.concat([...parts, Buffer.alloc(2 * BLOCK)]);
}

/**
 * gzip of `head` then `mib` MiB of zeros, without compressing them all: gzip members one after another are one
 * stream to any gunzip (RFC 1952), so one compressed MiB of zeros (about 1 KB) is repeated.
 */
export function gzipWithZeros(head: Buffer, mib: number): Buffer {
  const zeros = gzipSync(Buffer.alloc(MIB));
  return Buffer.concat([gzipSync(head), ...Array.from({ length: mib }, () => zeros)]);
}

/** A gzip bomb: a tar of one file of `mib` MiB of zeros, about 1/1000 of it compressed. */
export function makeTarBomb(mib: number): Buffer {
  return gzipWithZeros(tarHeader('zeros.bin', mib * MIB), mib);
}
