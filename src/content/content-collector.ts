// Keeps what inspection needs of a part's decoded content, and no more: the first bytes and last bytes
// (magic detection), and the whole content only when it starts like an archive we list or like TNEF, or is
// named or declared a zip or TNEF (a zip may sit behind other bytes), up to the archive size limit.
import { MAGIC_HEAD_BYTES, MAGIC_TAIL_BYTES, archiveType, startsLikeTnef } from './magic.js';
import { isListedBySevenZip } from './seven-zip-inspector.js';

// Enough to recognise every listed format (tar's mark is at byte 257).
const ARCHIVE_MAGIC_BYTES = 512;

function startsLikeListedContainer(head: Buffer): boolean {
  const type = archiveType(head);
  return type !== undefined ? type === 'zip' || isListedBySevenZip(type) : startsLikeTnef(head);
}

/** What listing needs of content held in memory: a part's collector, or a file inside TNEF. */
export interface HeldContent {
  /** Bytes of content. */
  readonly size: number;
  /** An archive larger than the archive limit: not held whole. */
  readonly tooLarge: boolean;
  /** The whole content when it is (or may hold) an archive or TNEF within the limit, else undefined. */
  wholeArchive(): Buffer | undefined;
}

export class ContentCollector implements HeldContent {
  /** Decoded bytes seen. */
  size = 0;
  /** The content was an archive larger than the archive limit: only its head was kept. */
  tooLarge = false;
  private chunks: Buffer[] = [];
  private kept = 0;
  private whole: boolean | undefined;
  private tailBuf: Buffer = Buffer.alloc(0);
  private readonly maxArchiveBytes: number;

  /** `keepWhole`: keep the whole content whatever it starts with (the part is named or declared a zip or TNEF). */
  constructor(maxArchiveBytes: number, keepWhole = false) {
    this.maxArchiveBytes = maxArchiveBytes;
    if (keepWhole) this.whole = true;
  }

  write(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.size += chunk.length;
    this.tailBuf =
      chunk.length >= MAGIC_TAIL_BYTES
        ? Buffer.from(chunk.subarray(chunk.length - MAGIC_TAIL_BYTES))
        : Buffer.concat([this.tailBuf, chunk]).subarray(-MAGIC_TAIL_BYTES);
    const limit = this.whole === false || this.tooLarge ? MAGIC_HEAD_BYTES : this.maxArchiveBytes;
    if (this.kept < limit) {
      const take = chunk.subarray(0, limit - this.kept);
      this.chunks.push(take);
      this.kept += take.length;
    }
    if (this.whole === undefined && this.kept >= ARCHIVE_MAGIC_BYTES) this.decide();
    if (this.whole === true && this.size > this.maxArchiveBytes && !this.tooLarge) {
      this.tooLarge = true;
      this.trimToHead();
    }
  }

  /** Up to MAGIC_HEAD_BYTES from the start. */
  head(): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.chunks, this.kept);
    return all.subarray(0, MAGIC_HEAD_BYTES);
  }

  tail(): Buffer {
    return this.tailBuf;
  }

  /** The whole content when it is (or may hold) an archive or TNEF within the limit, else undefined. */
  wholeArchive(): Buffer | undefined {
    if (this.whole === undefined) this.decide();
    if (this.whole !== true || this.tooLarge) return undefined;
    return Buffer.concat(this.chunks, this.kept);
  }

  release(): void {
    this.chunks = [];
    this.kept = 0;
  }

  private decide(): void {
    this.whole = startsLikeListedContainer(this.head().subarray(0, ARCHIVE_MAGIC_BYTES));
    if (!this.whole) this.trimToHead();
  }

  private trimToHead(): void {
    const head = Buffer.from(this.head());
    this.chunks = [head];
    this.kept = head.length;
  }
}
