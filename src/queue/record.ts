// Postfix's queue file record format (global/record.c, global/rec_type.h), read directly so a queue sweep
// does not spawn `postcat` per file.
//
// A queue file is a sequence of records: one type byte, the data length in 7-bit groups (low bits first,
// the high bit set on every byte but the last), then the data. Pointer records ('p', a decimal offset)
// splice in headers and recipients that cleanup appended after the end record; a zero pointer is a
// placeholder. Padding records ('w') are skipped.

/** Record types (rec_type.h). 'L' is both REC_TYPE_CONT (content) and REC_TYPE_FILT (envelope). */
export const REC = {
  SIZE: 0x43, // 'C' sizes and offsets, first record of a queue file
  TIME: 0x54, // 'T' arrival time "sec usec"
  CTIME: 0x63, // 'c' create time
  FULL: 0x46, // 'F' sender full name
  INSP: 0x49, // 'I' inspector transport
  FILT: 0x4c, // 'L' content filter (envelope section)
  FROM: 0x53, // 'S' sender ('' for the null sender)
  DONE: 0x44, // 'D' recipient already delivered
  RCPT: 0x52, // 'R' recipient still to deliver
  ORCP: 0x4f, // 'O' original recipient
  DRCP: 0x2f, // '/' cancelled recipient
  WARN: 0x57, // 'W' time of the next delay warning
  ATTR: 0x41, // 'A' name=value attribute
  KILL: 0x4b, // 'K' killed record
  RDR: 0x3e, // '>' redirect target
  FLGS: 0x66, // 'f' cleanup flags
  DELAY: 0x64, // 'd' cleanup delay
  MESG: 0x4d, // 'M' start of the message content
  CONT: 0x4c, // 'L' part of a long line (no newline after it)
  NORM: 0x4e, // 'N' a whole line (newline after it)
  DTXT: 0x77, // 'w' padding
  XTRA: 0x58, // 'X' start of the records extracted from headers
  RRTO: 0x72, // 'r' return-receipt
  ERTO: 0x65, // 'e' errors-to
  PRIO: 0x50, // 'P' priority
  PTR: 0x70, // 'p' pointer: continue reading at this decimal offset (0: placeholder)
  VERP: 0x56, // 'V' VERP delimiters
  DSN_RET: 0x3c, // '<'
  DSN_ENVID: 0x69, // 'i'
  DSN_ORCPT: 0x6f, // 'o'
  DSN_NOTIFY: 0x6e, // 'n'
  MILT_COUNT: 0x6d, // 'm'
  END: 0x45, // 'E' end of the queue file proper (pointer targets may follow it)
} as const;

/** Postfix refuses lengths that need more than 32 bits (rec_get_raw: "too many length bits"). */
const MAX_LENGTH_BYTES = 5;
/** Our own ceiling on one record; Postfix writes content in records of at most line_length_limit (2048). */
export const MAX_RECORD_LENGTH = 64 * 1024 * 1024;

export class QueueFileError extends Error {
  override readonly name = 'QueueFileError';
  /** Byte offset of the record that could not be read. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`${message} at offset ${offset}`);
    this.offset = offset;
  }
}

export type HeaderDecode =
  | { readonly ok: true; readonly type: number; readonly length: number; readonly headerSize: number }
  | { readonly ok: false; readonly reason: 'need-more' | 'too-many-length-bits' | 'too-long' };

/** Decodes a record's type and length starting at `offset`; `headerSize` counts the type and length bytes. */
export function decodeRecordHeader(buf: Uint8Array, offset: number): HeaderDecode {
  const type = buf[offset];
  if (type === undefined) return { ok: false, reason: 'need-more' };
  let length = 0;
  for (let i = 0; ; i++) {
    if (i >= MAX_LENGTH_BYTES) return { ok: false, reason: 'too-many-length-bits' };
    const b = buf[offset + 1 + i];
    if (b === undefined) return { ok: false, reason: 'need-more' };
    length += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) {
      if (length > MAX_RECORD_LENGTH) return { ok: false, reason: 'too-long' };
      return { ok: true, type, length, headerSize: 2 + i };
    }
  }
}

/** Encodes one record (for tests and tools; the sweep never writes queue files). */
export function encodeRecord(type: number | string, data: Uint8Array | string = ''): Buffer {
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  const body = typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data);
  const len: number[] = [];
  let rest = body.length;
  do {
    let b = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest > 0) b |= 0x80;
    len.push(b);
  } while (rest > 0);
  return Buffer.concat([Buffer.from([t, ...len]), body]);
}

export interface RawRecord {
  readonly type: number;
  /** Offset of the type byte. */
  readonly offset: number;
  readonly data: Buffer;
}

/** Splits a byte vector into records exactly as stored (no pointer following). Throws QueueFileError. */
export function splitRecords(buf: Buffer): RawRecord[] {
  const out: RawRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const h = decodeRecordHeader(buf, pos);
    if (!h.ok) throw new QueueFileError(h.reason === 'need-more' ? 'truncated record length' : `bad record length (${h.reason})`, pos);
    const start = pos + h.headerSize;
    if (start + h.length > buf.length) throw new QueueFileError(`truncated record data (type ${typeName(h.type)}, length ${h.length})`, pos);
    out.push({ type: h.type, offset: pos, data: buf.subarray(start, start + h.length) });
    pos = start + h.length;
  }
  return out;
}

export function typeName(type: number): string {
  return type >= 0x21 && type <= 0x7e ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}

/** Where records come from: a file read with positioned reads, or bytes in memory. */
export interface RandomAccess {
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `target` (from 0); resolves with the count read. */
  read(target: Buffer, length: number, position: number): Promise<number>;
}

export function memorySource(bytes: Uint8Array): RandomAccess {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    size: buf.length,
    read: (target, length, position) => Promise.resolve(position >= buf.length ? 0 : buf.copy(target, 0, position, Math.min(buf.length, position + length))),
  };
}

/** Reverse jumps allowed per file, as in rec_goto(): one per inserted header, so a loop is caught. */
const REVERSE_JUMP_LIMIT = 10_000;

/**
 * Reads records through a window buffer with pointer following, so memory per file stays at the window
 * size (plus the largest record). `seek()` moves to an absolute offset (for jumping over content).
 */
export class RecordReader {
  readonly #source: RandomAccess;
  #window: Buffer;
  /** File offset of #window[0]. */
  #windowStart = 0;
  #windowLength = 0;
  /** File offset of the next record. */
  #pos = 0;
  #lastJumpTarget = 0;
  #reverseJumps = 0;
  /** Bytes read from the source, to report I/O. */
  bytesRead = 0;

  constructor(source: RandomAccess, windowSize = 64 * 1024) {
    this.#source = source;
    this.#window = Buffer.allocUnsafe(windowSize);
  }

  get position(): number {
    return this.#pos;
  }

  seek(offset: number): void {
    this.#pos = offset;
  }

  /**
   * The next record with pointers followed and padding skipped; undefined at the end of the file.
   * `data` is only valid until the next call (it may share the window). Throws QueueFileError.
   */
  async next(): Promise<RawRecord | undefined> {
    for (;;) {
      const rec = await this.#raw();
      if (rec === undefined) return undefined;
      if (rec.type === REC.DTXT) continue;
      if (rec.type === REC.PTR) {
        const text = rec.data.toString('latin1').trim();
        if (!/^\d+$/.test(text)) throw new QueueFileError(`malformed pointer record "${text.slice(0, 20)}"`, rec.offset);
        const target = Number(text);
        if (target === 0) continue; // placeholder
        if (target >= this.#source.size) throw new QueueFileError(`pointer to ${target} beyond the end of the file (${this.#source.size})`, rec.offset);
        if (target <= this.#lastJumpTarget && ++this.#reverseJumps > REVERSE_JUMP_LIMIT) throw new QueueFileError('too many reverse pointer jumps (a loop?)', rec.offset);
        this.#lastJumpTarget = target;
        this.#pos = target;
        continue;
      }
      return rec;
    }
  }

  async #raw(): Promise<RawRecord | undefined> {
    const offset = this.#pos;
    if (offset >= this.#source.size) {
      // A short read past the stat size (the file grew) is possible, but Postfix never appends to queued files.
      return undefined;
    }
    let h = this.#header(offset);
    if (!h.ok && h.reason === 'need-more') {
      await this.#fill(offset, 16);
      h = this.#header(offset);
    }
    if (!h.ok) {
      throw new QueueFileError(h.reason === 'need-more' ? 'truncated record (end of file inside the length)' : `bad record length (${h.reason})`, offset);
    }
    const start = offset + h.headerSize;
    const end = start + h.length;
    if (end > this.#source.size) throw new QueueFileError(`truncated record (type ${typeName(h.type)}, length ${h.length}, file ends at ${this.#source.size})`, offset);
    if (end > this.#windowStart + this.#windowLength || start < this.#windowStart) await this.#fill(offset, end - offset);
    if (end > this.#windowStart + this.#windowLength) throw new QueueFileError(`truncated record (type ${typeName(h.type)}, length ${h.length})`, offset);
    this.#pos = end;
    return { type: h.type, offset, data: this.#window.subarray(start - this.#windowStart, end - this.#windowStart) };
  }

  #header(offset: number): HeaderDecode {
    if (offset < this.#windowStart || offset >= this.#windowStart + this.#windowLength) return { ok: false, reason: 'need-more' };
    return decodeRecordHeader(this.#window.subarray(0, this.#windowLength), offset - this.#windowStart);
  }

  /** Loads the window so that it starts at `offset` and holds at least `need` bytes (when the file has them). */
  async #fill(offset: number, need: number): Promise<void> {
    if (need > this.#window.length) this.#window = Buffer.allocUnsafe(Math.max(need, this.#window.length * 2));
    let got = 0;
    const want = Math.min(this.#window.length, this.#source.size - offset);
    while (got < want) {
      const n = await this.#source.read(this.#window.subarray(got), want - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    this.bytesRead += got;
    this.#windowStart = offset;
    this.#windowLength = got;
  }
}
