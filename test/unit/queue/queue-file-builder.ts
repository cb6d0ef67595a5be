// Builds Postfix queue files byte by byte for the parser tests, the way cleanup lays them out: a size record
// with fixed-width fields, envelope, 'M', content records, 'X', extracted records, 'E', then a heap of
// appended records reached through pointer records.
import { encodeRecord } from 'postfix-milter-ts/queue/record.js';

export type Rec = readonly [type: string, data?: string | Buffer];

export interface BuiltQueueFile {
  readonly bytes: Buffer;
  /** Offset of the first content record (the size record's data offset). */
  readonly dataOffset: number;
  /** Offset of the 'X' record. */
  readonly xtraOffset: number;
}

const pad15 = (n: number): string => String(n).padStart(15, ' ');

/**
 * `content` records may contain ['p', label] placeholders pointing at `heap[label]`; each heap entry ends
 * with a pointer back to the record after the placeholder. Labels are resolved to offsets.
 */
export function buildQueueFile(parts: {
  readonly envelope: readonly Rec[];
  readonly content: readonly Rec[];
  readonly extracted?: readonly Rec[];
  readonly heap?: Readonly<Record<string, readonly Rec[]>>;
  readonly sizeRecord?: boolean;
}): BuiltQueueFile {
  const sizeLen = encodeRecord('C', `${pad15(0)} ${pad15(0)} ${pad15(0)} ${pad15(0)} ${pad15(0)} ${pad15(0)}`).length;
  const ptrLen = encodeRecord('p', pad15(0)).length;
  const withSize = parts.sizeRecord !== false;
  // First pass: offsets.
  let pos = withSize ? sizeLen : 0;
  for (const [t, d] of parts.envelope) pos += encodeRecord(t, d ?? '').length;
  pos += encodeRecord('M').length;
  const dataOffset = pos;
  const returnTo: Record<string, number> = {};
  for (const [t, d] of parts.content) {
    if (t === 'p') {
      pos += ptrLen;
      returnTo[String(d)] = pos;
    } else pos += encodeRecord(t, d ?? '').length;
  }
  const xtraOffset = pos;
  pos += encodeRecord('X').length;
  for (const [t, d] of parts.extracted ?? []) pos += encodeRecord(t, d ?? '').length;
  pos += encodeRecord('E').length;
  const heapAt: Record<string, number> = {};
  const heapChunks: Buffer[] = [];
  for (const [label, recs] of Object.entries(parts.heap ?? {})) {
    heapAt[label] = pos;
    for (const [t, d] of recs) {
      const r = encodeRecord(t, d ?? '');
      heapChunks.push(r);
      pos += r.length;
    }
    const back = encodeRecord('p', pad15(returnTo[label] ?? 0));
    heapChunks.push(back);
    pos += back.length;
  }
  // Second pass: bytes.
  const out: Buffer[] = [];
  if (withSize) out.push(encodeRecord('C', `${pad15(xtraOffset - dataOffset)} ${pad15(dataOffset)} ${pad15(1)} ${pad15(0)} ${pad15(xtraOffset - dataOffset)} ${pad15(0)}`));
  for (const [t, d] of parts.envelope) out.push(encodeRecord(t, d ?? ''));
  out.push(encodeRecord('M'));
  for (const [t, d] of parts.content) out.push(t === 'p' ? encodeRecord('p', pad15(heapAt[String(d)] ?? 0)) : encodeRecord(t, d ?? ''));
  out.push(encodeRecord('X'));
  for (const [t, d] of parts.extracted ?? []) out.push(encodeRecord(t, d ?? ''));
  out.push(encodeRecord('E'));
  out.push(...heapChunks);
  return { bytes: Buffer.concat(out), dataOffset, xtraOffset };
}
