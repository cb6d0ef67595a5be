import { DEFAULT_MAX_FRAME_LENGTH } from './constants.js';
import { MilterProtocolError } from './errors.js';
import type { Frame } from './messages.js';

const LENGTH_BYTES = 4;

/**
 * Turns a byte stream into packets. TCP keeps no boundaries: a read may hold half a length field or thirty
 * packets, so bytes wait here until a whole packet is present. Partial reads are kept as a list and joined
 * once the packet is complete, so a 64 KiB body chunk arriving in 1 KiB reads is copied once, not 64 times.
 */
export class FrameDecoder {
  readonly maxFrameLength: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
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
    return this.pendingBytes;
  }

  /**
   * Adds bytes and returns the frames they complete, in order. Payloads are views into the received
   * buffers, not copies. Throws MilterProtocolError on a zero or oversized length field; the stream is
   * unusable after that (the caller closes the connection).
   */
  push(chunk: Buffer): Frame[] {
    let buf: Buffer;
    if (this.pendingBytes === 0) {
      buf = chunk;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.needed) return [];
      buf = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
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
    if (offset < buf.length) {
      const rest = buf.subarray(offset);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
    return frames;
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
