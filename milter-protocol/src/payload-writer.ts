// The pieces packets are built from, in both directions: C strings (bytes + NUL) and 32-bit big-endian words.
const NUL = Buffer.from([0]);

/** A C string: the text's bytes (latin1, one byte per character) and a NUL. */
export function cstr(s: string): Buffer[] {
  return [Buffer.from(s, 'latin1'), NUL];
}

export function uint32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}
