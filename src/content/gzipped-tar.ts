// The tar inside a gzip (`.tgz`, `.tar.gz`): Windows 11, 7-Zip and WinRAR open one straight through to the
// tar's members, while 7-Zip's listing of the gzip alone names only the inner `x.tar`. Walked as a stream:
// decompressed in zlib's thread pool (the event loop is not held) into tar-stream, which reads each header and
// skips the data, so the tar is never held; a message costs zlib's and tar-stream's chunk buffers, not the
// tar's size, and a bomb stops at the first limit it reaches.
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';

export interface TarWalkLimits {
  /** Names past this stop the walk: one more is reported, to say there were more. */
  readonly maxMembers: number;
  /** Decompressed bytes allowed (what is left of the message's expanded-size budget). */
  readonly maxBytes: number;
  readonly timeoutMs: number;
  /** Checked between entries. */
  readonly cancelled: () => boolean;
}

export interface TarListing {
  /** Member names in order, at most maxMembers + 1. */
  readonly names: string[];
  /** Decompressed bytes walked; past maxBytes when the walk stopped there (a header's claim counts). */
  readonly expandedBytes: number;
  /** False when damaged, cut short or over the time limit; a walk stopped at a limit is not damaged. */
  readonly complete: boolean;
  /** Why it is not complete, for the log. */
  readonly error?: string;
}

/** What a gzip holds, as far as listing goes. */
export type GzipContent =
  | { readonly kind: 'tar'; readonly listing: TarListing }
  /** Not a tar: the name in the gzip's header is all there is to judge. */
  | { readonly kind: 'other' }
  /** The message was aborted during the walk. */
  | { readonly kind: 'cancelled' };

const HEADER_BYTES = 512;

export function startsLikeGzip(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/**
 * Walks the tar in `gz` when its first header is one tar-stream accepts (its checksum holds: ustar, GNU and old
 * v7 tars alike); anything else is 'other', decompressed no further than the chunk holding that header.
 */
export function walkGzippedTar(gz: Buffer, limits: TarWalkLimits): Promise<GzipContent> {
  return new Promise((resolve) => {
    const gunzip = createGunzip({ chunkSize: 64 * 1024 });
    // v7 tars have no magic: the checksum is what tells a header from other data. (tar-stream's own types leave
    // this option out.)
    const options: Parameters<typeof extract>[0] & { allowUnknownFormat: boolean } = { allowUnknownFormat: true };
    const tar = extract(options);
    const names: string[] = [];
    let bytes = 0;
    // Set by the first entry; before it, an error means the content is not a tar.
    let isTar = false;
    let settled = false;
    const settle = (content: GzipContent): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      gunzip.destroy();
      tar.destroy();
      resolve(content);
    };
    const stop = (complete: boolean, error?: string): void =>
      settle({ kind: 'tar', listing: { names, expandedBytes: bytes, complete, ...(error === undefined ? {} : { error }) } });
    const timer = setTimeout(() => stop(false, `walking the tar took longer than ${limits.timeoutMs} ms`), limits.timeoutMs);

    gunzip.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      // Before the first entry too: tar-stream reads on past all-zero blocks, so a gzip of zeros is a tar to it.
      if (bytes > limits.maxBytes) stop(true);
    });
    tar.on('entry', (header, stream, next) => {
      isTar = true;
      if (settled) return;
      if (limits.cancelled()) return settle({ kind: 'cancelled' });
      // 7-Zip lists a directory without its trailing slash (a loop: `/\/+$/` retries each slash of a long run).
      let nameEnd = header.name.length;
      while (nameEnd > 0 && header.name.charCodeAt(nameEnd - 1) === 0x2f) nameEnd--;
      names.push(header.name.slice(0, nameEnd));
      if (names.length > limits.maxMembers) return stop(true);
      // The header says how far the tar goes: a member larger than the budget stops the walk before its data.
      const end = stream.offset + HEADER_BYTES + header.size;
      if (end > limits.maxBytes) {
        bytes = Math.max(bytes, end);
        return stop(true);
      }
      // Errors are the walk's own (reported on `tar`); without a listener one would be thrown.
      stream.on('error', () => undefined);
      stream.on('end', () => next());
      stream.resume();
    });
    const failed = (e: Error): void => (isTar ? stop(false, e.message) : settle({ kind: 'other' }));
    // tar-stream is handed what was decompressed before the damage, then ended: whether the first header was a
    // tar's is known only once it has read that.
    let damage: Error | undefined;
    gunzip.on('error', (e) => {
      damage = e;
      tar.end(null);
    });
    tar.on('error', failed);
    tar.on('finish', () => (damage === undefined ? stop(true) : failed(damage)));
    gunzip.pipe(tar);
    gunzip.end(gz);
  });
}
