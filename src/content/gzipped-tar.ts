// The tar inside a gzip (`.tgz`, `.tar.gz`): Windows 11, 7-Zip and WinRAR open one straight through to the
// tar's members, while 7-Zip's listing of the gzip alone names only the inner `x.tar`. Decompressed in zlib's
// thread pool (the event loop is not held) and never past a limit (a gzip bomb costs the limit, no more).
import { createGunzip } from 'node:zlib';

/** What a gzip holds, as far as listing goes. */
export type GzipContent =
  /** A tar, whole. */
  | { readonly kind: 'tar'; readonly tar: Buffer }
  /** Not a tar: the name in the gzip's header is all there is to judge. */
  | { readonly kind: 'other' }
  /** A tar that decompresses to more than the limit. */
  | { readonly kind: 'too-large' }
  /** A tar whose compressed data is damaged or cut short. */
  | { readonly kind: 'unreadable' };

// ustar (POSIX and GNU) writes its magic here; the bytes before are the first member's name and sizes.
const TAR_MAGIC = Buffer.from('ustar', 'latin1');
const TAR_MAGIC_AT = 257;
const TAR_HEAD_BYTES = TAR_MAGIC_AT + TAR_MAGIC.length;

export function startsLikeGzip(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

function startsLikeTar(head: Buffer): boolean {
  return head.subarray(TAR_MAGIC_AT, TAR_HEAD_BYTES).equals(TAR_MAGIC);
}

/**
 * Decompresses `gz` when its content starts like a tar, up to `maxBytes`; content that is not a tar is
 * decompressed no further than its first bytes.
 */
export function gunzipTar(gz: Buffer, maxBytes: number): Promise<GzipContent> {
  return new Promise((resolve) => {
    const gunzip = createGunzip({ chunkSize: 64 * 1024 });
    const chunks: Buffer[] = [];
    let size = 0;
    let isTar = false;
    let settled = false;
    const settle = (content: GzipContent): void => {
      if (settled) return;
      settled = true;
      gunzip.destroy();
      resolve(content);
    };
    gunzip.on('data', (chunk: Buffer) => {
      if (settled) return;
      chunks.push(chunk);
      size += chunk.length;
      if (!isTar && size >= TAR_HEAD_BYTES) {
        if (!startsLikeTar(Buffer.concat(chunks))) return settle({ kind: 'other' });
        isTar = true;
      }
      if (isTar && size > maxBytes) settle({ kind: 'too-large' });
    });
    // Fewer bytes than a tar's magic, damaged or not: not a tar.
    gunzip.on('error', () => settle(isTar ? { kind: 'unreadable' } : { kind: 'other' }));
    gunzip.on('end', () => settle(isTar ? { kind: 'tar', tar: Buffer.concat(chunks, size) } : { kind: 'other' }));
    gunzip.end(gz);
  });
}
