import { DEFAULT_MAX_FRAME_LENGTH } from './constants.js';
import { MilterProtocolError } from './errors.js';
import type { Frame } from './messages.js';

const LENGTH_BYTES = 4;
const MIN_STORAGE = 256;

/**
 * Turns a byte stream into packets. TCP keeps no boundaries: a read may hold half a length field or thirty
 * packets, so the bytes of an incomplete packet wait here until it is whole. They are copied into one buffer of
 * our own that grows by doubling up to the packet's length: memory stays within twice what arrived, however
 * small the reads (kept as received, each 1-byte read would hold a 64 KiB read buffer), and a 64 KiB body chunk
 * arriving in 1 KiB reads is copied about twice, not 64 times.
 */
export class FrameDecoder {
  readonly maxFrameLength: number;
  /** The bytes of the incomplete packet (from its length field on), in `partial[0, partialLength)`. */
  private partial: Buffer | undefined;
  private partialLength = 0;
  /** Bytes needed before decoding can make progress (length field, or the whole frame). */
  private needed = LENGTH_BYTES;

  constructor(maxFrameLength: number = DEFAULT_MAX_FRAME_LENGTH) {
    if (!Number.isInteger(maxFrameLength) || maxFrameLength < 1) {
      throw new RangeError(`maxFrameLength must be a positive integer, got ${maxFrameLength}`);
    }
    this.maxFrameLength = maxFrameLength;
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.partialLength;
  }

  /**
   * Adds bytes and returns the frames they complete, in order. Payloads are views into the received buffer
   * (or into the decoder's copy of a packet that came in pieces). Throws MilterProtocolError on a zero or
   * oversized length field; the stream is unusable after that (the caller closes the connection).
   */
  push(chunk: Buffer): Frame[] {
    let buf: Buffer;
    if (this.partialLength === 0) {
      buf = chunk;
    } else {
      this.keep(chunk);
      if (this.partialLength < this.needed) return [];
      buf = (this.partial as Buffer).subarray(0, this.partialLength);
      // The frames below are views into this storage: the next partial packet gets storage of its own.
      this.partial = undefined;
      this.partialLength = 0;
    }

    const frames: Frame[] = [];
    let offset = 0;
    this.needed = LENGTH_BYTES;
    while (buf.length - offset >= LENGTH_BYTES) {
      const length = buf.readUInt32BE(offset);
      this.checkLength(length);
      const end = offset + LENGTH_BYTES + length;
      if (end > buf.length) {
        this.needed = LENGTH_BYTES + length;
        break;
      }
      frames.push({ code: buf[offset + LENGTH_BYTES] as number, payload: buf.subarray(offset + LENGTH_BYTES + 1, end) });
      offset = end;
    }
    if (offset < buf.length) this.keep(buf.subarray(offset));
    return frames;
  }

  /** Appends to the incomplete packet's storage, growing it by doubling, never past the packet's length. */
  private keep(bytes: Buffer): void {
    const required = this.partialLength + bytes.length;
    const capacity = this.partial?.length ?? 0;
    if (required > capacity) {
      const grown = Buffer.allocUnsafe(Math.max(required, Math.min(this.needed, Math.max(MIN_STORAGE, 2 * capacity))));
      if (this.partial !== undefined) this.partial.copy(grown, 0, 0, this.partialLength);
      this.partial = grown;
    }
    bytes.copy(this.partial as Buffer, this.partialLength);
    this.partialLength = required;
  }

  private checkLength(length: number): void {
    if (length === 0) {
      throw new MilterProtocolError('frame-length-zero', 'packet length 0: every packet carries at least a command byte');
    }
    if (length > this.maxFrameLength) {
      throw new MilterProtocolError(
        'frame-too-large',
        `packet length ${length} exceeds the maximum of ${this.maxFrameLength} bytes (garbage on the milter port, or raise the maximum frame size)`,
      );
    }
  }
}

/** Builds one packet: length, code, payload. */
export function encodeFrame(code: number, payload?: Buffer | readonly Buffer[]): Buffer {
  const parts = payload === undefined ? [] : Buffer.isBuffer(payload) ? [payload] : payload;
  let size = 0;
  for (const p of parts) size += p.length;
  const out = Buffer.allocUnsafe(LENGTH_BYTES + 1 + size);
  out.writeUInt32BE(size + 1, 0);
  out[LENGTH_BYTES] = code;
  let offset = LENGTH_BYTES + 1;
  for (const p of parts) offset += p.copy(out, offset);
  return out;
}
