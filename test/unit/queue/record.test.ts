// Postfix's record format on byte vectors: 7-bit length groups (low bits first), truncation, pointer records.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueueFileError, RecordReader, decodeRecordHeader, encodeRecord, memorySource, splitRecords } from 'postfix-milter-ts/queue/record.js';

test('a one-byte length', () => {
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4e, 0x05, ...Buffer.from('hello')]), 0), { ok: true, type: 0x4e, length: 5, headerSize: 2 });
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4e, 0x00]), 0), { ok: true, type: 0x4e, length: 0, headerSize: 2 });
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4e, 0x7f]), 0), { ok: true, type: 0x4e, length: 127, headerSize: 2 });
});

test('multi-byte lengths: low 7 bits first, the high bit says more follows', () => {
  // 300 = 2*128 + 44
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4c, 0x80 | 44, 0x02]), 0), { ok: true, type: 0x4c, length: 300, headerSize: 3 });
  // 2048 (Postfix's line_length_limit, the usual size of an 'L' record) = 16*128 + 0
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4c, 0x80, 0x10]), 0), { ok: true, type: 0x4c, length: 2048, headerSize: 3 });
  // 20000 = 1*16384 + 28*128 + 32
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4e, 0x80 | 32, 0x80 | 28, 0x01]), 0), { ok: true, type: 0x4e, length: 20000, headerSize: 4 });
  // At an offset inside a larger buffer.
  assert.deepEqual(decodeRecordHeader(Buffer.from([0, 0, 0x52, 0x80, 0x01]), 2), { ok: true, type: 0x52, length: 128, headerSize: 3 });
});

test('encodeRecord writes what the decoder reads, at every length-group boundary', () => {
  for (const n of [0, 1, 127, 128, 129, 2048, 16383, 16384, 2 ** 21 - 1, 2 ** 21]) {
    const rec = encodeRecord('N', Buffer.alloc(n, 0x61));
    const h = decodeRecordHeader(rec, 0);
    assert.ok(h.ok, `length ${n}`);
    assert.equal(h.length, n);
    assert.equal(h.headerSize + n, rec.length);
  }
  assert.deepEqual([...encodeRecord('N', 'x'.repeat(300)).subarray(0, 3)], [0x4e, 0xac, 0x02]);
});

test('a length that needs more than 32 bits is refused, as Postfix does', () => {
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4e, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 0), { ok: false, reason: 'too-many-length-bits' });
});

test('a buffer ending inside the length asks for more', () => {
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4e]), 0), { ok: false, reason: 'need-more' });
  assert.deepEqual(decodeRecordHeader(Buffer.from([0x4e, 0x80]), 0), { ok: false, reason: 'need-more' });
  assert.deepEqual(decodeRecordHeader(Buffer.from([]), 0), { ok: false, reason: 'need-more' });
});

test('splitRecords: records in order with their offsets', () => {
  const bytes = Buffer.concat([encodeRecord('S', 'a@example.org'), encodeRecord('R', 'b@example.test'), encodeRecord('M'), encodeRecord('L', 'x'.repeat(200)), encodeRecord('N', 'y'), encodeRecord('E')]);
  const recs = splitRecords(bytes);
  assert.deepEqual(
    recs.map((r) => [String.fromCharCode(r.type), r.offset, r.data.length]),
    [
      ['S', 0, 13],
      ['R', 15, 14],
      ['M', 31, 0],
      ['L', 33, 200],
      ['N', 236, 1],
      ['E', 239, 0],
    ],
  );
  assert.equal(recs[0]?.data.toString(), 'a@example.org');
});

test('splitRecords: a truncated file is an error naming the offset', () => {
  const whole = Buffer.concat([encodeRecord('S', 'a@example.org'), encodeRecord('N', 'x'.repeat(300))]);
  assert.throws(() => splitRecords(whole.subarray(0, whole.length - 10)), (e: unknown) => e instanceof QueueFileError && /truncated record data/.test(e.message) && e.offset === 15);
  // Cut inside the two-byte length of the second record.
  assert.throws(() => splitRecords(whole.subarray(0, 17)), (e: unknown) => e instanceof QueueFileError && /truncated record length/.test(e.message));
});

async function readAll(bytes: Buffer, windowSize?: number): Promise<string[]> {
  const reader = new RecordReader(memorySource(bytes), windowSize);
  const out: string[] = [];
  for (;;) {
    const r = await reader.next();
    if (r === undefined) return out;
    out.push(`${String.fromCharCode(r.type)}:${r.data.toString('latin1')}`);
    if (r.type === 0x45) return out; // 'E': what follows is reached through pointers only
  }
}

test('RecordReader follows pointers, skips placeholders and padding, across small windows', async () => {
  const p = (n: number): Buffer => encodeRecord('p', String(n).padStart(15, ' '));
  const a = encodeRecord('N', 'line 1');
  const ptr = p(0); // placeholder, patched below
  const b = encodeRecord('N', 'line 3');
  const pad = encodeRecord('w', '0000');
  const end = encodeRecord('E');
  const headLen = a.length + ptr.length;
  const heapAt = headLen + b.length + pad.length + end.length;
  const heap = Buffer.concat([encodeRecord('N', 'line 2 (appended)'), p(headLen)]);
  const file = Buffer.concat([a, p(heapAt), b, pad, end, heap]);
  const expected = ['N:line 1', 'N:line 2 (appended)', 'N:line 3', 'E:'];
  assert.deepEqual(await readAll(file), expected);
  for (const w of [1, 3, 7, 16]) assert.deepEqual(await readAll(file, w), expected, `window ${w}`);
  const withPlaceholder = Buffer.concat([a, p(0), b]);
  assert.deepEqual(await readAll(withPlaceholder), ['N:line 1', 'N:line 3']);
});

test('RecordReader: pointer loops, bad pointers and truncation are errors', async () => {
  // [w][N x][p -> the N record]: a loop, caught by the reverse-jump limit like rec_goto() does.
  const looping = Buffer.concat([encodeRecord('w', '0'), encodeRecord('N', 'x'), encodeRecord('p', String(3).padStart(15, ' '))]);
  await assert.rejects(readAll(looping), /too many reverse pointer jumps/);
  await assert.rejects(readAll(encodeRecord('p', 'abc')), /malformed pointer record/);
  await assert.rejects(readAll(encodeRecord('p', '999999')), /beyond the end of the file/);
  const truncated = encodeRecord('N', 'x'.repeat(500)).subarray(0, 300);
  await assert.rejects(readAll(truncated), (e: unknown) => e instanceof QueueFileError && /truncated record/.test(e.message));
  await assert.rejects(readAll(Buffer.from([0x4e, 0x80])), /truncated record \(end of file inside the length\)/);
});
