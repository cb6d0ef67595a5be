// gzip files for tests: with the original file name in the header, and around a tar.
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

/** A gzip bomb that starts like a tar: one tar header, then `zeros` bytes of zeros (about 1/1000 of it compressed). */
export async function makeTarBomb(zeros: number): Promise<Buffer> {
  const header = (await makeWithSevenZip('tar', [{ name: 'zeros.bin', data: '' }])).subarray(0, 512);
  return gzipSync(Buffer.concat([header, Buffer.alloc(zeros)]));
}
