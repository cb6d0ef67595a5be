// Keeps what inspection needs of a part's decoded content, and no more: the first bytes and last bytes
// (magic detection), and the whole content only when it starts like an archive we list or like TNEF, or is
// named or declared a zip or TNEF (a zip may sit behind other bytes), up to the archive size limit. Of markup
// (HTML, SVG), optionally a longer tail: smuggling pages put their code after a payload larger than the head.
import { MAGIC_HEAD_BYTES, MAGIC_TAIL_BYTES, MARKUP_TAIL_BYTES, archiveType, startsLikeTnef, wantsMarkupTail } from './magic.js';
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
  private readonly markupTail: boolean;
  /** Ring of the last bytes after the head, allocated once the head is known to be markup; null when not kept. */
  private markupRing: Buffer | null | undefined;
  /** Bytes after the head offered to the ring. */
  private afterHead = 0;

  /**
   * `keepWhole`: keep the whole content whatever it starts with (the part is named or declared a zip or TNEF).
   * `markupTail`: when the head turns out to be markup (wantsMarkupTail), keep up to MARKUP_TAIL_BYTES after it
   * for tail(); decided when the head is complete, so other content keeps only MAGIC_TAIL_BYTES.
   */
  constructor(maxArchiveBytes: number, keepWhole = false, markupTail = false) {
    this.maxArchiveBytes = maxArchiveBytes;
    if (keepWhole) this.whole = true;
    this.markupTail = markupTail;
  }

  write(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.size += chunk.length;
    this.tailBuf =
      chunk.length >= MAGIC_TAIL_BYTES
        ? Buffer.from(chunk.subarray(chunk.length - MAGIC_TAIL_BYTES))
        : Buffer.concat([this.tailBuf, chunk]).subarray(-MAGIC_TAIL_BYTES);
    const limit = this.whole === false || this.tooLarge ? MAGIC_HEAD_BYTES : this.maxArchiveBytes;
    let rest = chunk;
    if (this.kept < limit) {
      const take = chunk.subarray(0, limit - this.kept);
      this.chunks.push(take);
      this.kept += take.length;
      rest = chunk.subarray(take.length);
    }
    if (this.whole === undefined && this.kept >= ARCHIVE_MAGIC_BYTES) this.decide();
    if (this.whole === false && rest.length > 0) this.keepAfterHead(rest);
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

  /** The last MAGIC_TAIL_BYTES; of markup kept with `markupTail`, up to MARKUP_TAIL_BYTES after the head instead. */
  tail(): Buffer {
    const ring = this.markupRing;
    if (!ring) return this.tailBuf;
    if (this.afterHead < ring.length) return Buffer.from(ring.subarray(0, this.afterHead));
    const end = this.afterHead % ring.length;
    return Buffer.concat([ring.subarray(end), ring.subarray(0, end)]);
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
    this.markupRing = null;
  }

  private decide(): void {
    this.whole = startsLikeListedContainer(this.head().subarray(0, ARCHIVE_MAGIC_BYTES));
    if (this.whole) return;
    // A first chunk larger than the head: what lies past the head is tail, not dropped.
    const past = this.kept > MAGIC_HEAD_BYTES ? Buffer.concat(this.chunks, this.kept).subarray(MAGIC_HEAD_BYTES) : undefined;
    this.trimToHead();
    if (past) this.keepAfterHead(past);
  }

  /** Bytes past a complete head: into the markup ring when the head is markup. */
  private keepAfterHead(bytes: Buffer): void {
    // Decided once (`??=` would decide again on every chunk of content that is no markup).
    if (this.markupRing === undefined) this.markupRing = this.markupTail && wantsMarkupTail(this.head()) ? Buffer.alloc(MARKUP_TAIL_BYTES) : null;
    const ring = this.markupRing;
    if (!ring) return;
    const src = bytes.length > ring.length ? bytes.subarray(bytes.length - ring.length) : bytes;
    this.afterHead += bytes.length - src.length;
    const at = this.afterHead % ring.length;
    const first = Math.min(src.length, ring.length - at);
    src.copy(ring, at, 0, first);
    src.copy(ring, 0, first);
    this.afterHead += src.length;
  }

  private trimToHead(): void {
    const head = Buffer.from(this.head());
    this.chunks = [head];
    this.kept = head.length;
  }
}
