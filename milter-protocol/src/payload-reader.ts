import { MilterProtocolError, type ProtocolErrorKind } from './errors.js';

/**
 * A bounds-checked cursor over one packet's payload. A C string without its NUL is an error, never a
 * silent read to the end: that is how other implementations mis-paired macros.
 */
export class PayloadReader {
  private offset = 0;
  private readonly payload: Buffer;
  private readonly what: string;
  private readonly errorKind: ProtocolErrorKind;

  constructor(payload: Buffer, what: string, errorKind: ProtocolErrorKind = 'malformed-command') {
    this.payload = payload;
    this.what = what;
    this.errorKind = errorKind;
  }

  get remaining(): number {
    return this.payload.length - this.offset;
  }

  uint32(field: string): number {
    this.need(4, field);
    const v = this.payload.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  uint16(field: string): number {
    this.need(2, field);
    const v = this.payload.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  byte(field: string): number {
    this.need(1, field);
    return this.payload[this.offset++] as number;
  }

  /** A NUL-terminated string, decoded as latin1 (lossless for any byte). */
  cstring(field: string): string {
    const nul = this.payload.indexOf(0, this.offset);
    if (nul < 0) {
      throw this.error(`${field} is not NUL-terminated (${this.remaining} bytes left)`);
    }
    const s = this.payload.toString('latin1', this.offset, nul);
    this.offset = nul + 1;
    return s;
  }

  /** Consecutive C strings up to the end of the payload. */
  /** C strings to the end of the payload, at most `max` of them (more is an error, not a long loop). */
  cstrings(field: string, max: number): string[] {
    const out: string[] = [];
    while (this.remaining > 0) {
      if (out.length === max) throw this.error(`more than ${max} of ${field}`);
      out.push(this.cstring(field));
    }
    return out;
  }

  rest(): Buffer {
    const b = this.payload.subarray(this.offset);
    this.offset = this.payload.length;
    return b;
  }

  end(): void {
    if (this.remaining !== 0) throw this.error(`${this.remaining} unexpected trailing bytes`);
  }

  private need(n: number, field: string): void {
    if (this.remaining < n) throw this.error(`${field} needs ${n} bytes, ${this.remaining} left`);
  }

  private error(detail: string): MilterProtocolError {
    return new MilterProtocolError(this.errorKind, `${this.what}: ${detail} (payload ${this.payload.length} bytes)`);
  }
}
