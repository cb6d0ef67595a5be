// Reading a TNEF stream: the names and content of each attachment from wherever the stream puts them, the
// MAPI properties we do not need skipped, and every malformed stream unreadable rather than an exception.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readTnef } from 'postfix-milter-ts/content/tnef-reader.js';
import { PROPERTY_TYPES, makeTnef, mapiProperty, stringValue } from './tnef-writer.js';

/** `c` is a view of bytes inside `of` (small buffers share Node's pool, so the same ArrayBuffer alone proves nothing). */
const within = (c: Buffer, of: Buffer): boolean => c.buffer === of.buffer && c.byteOffset >= of.byteOffset && c.byteOffset + c.length <= of.byteOffset + of.length;
const names = (buf: Buffer, max = 100): string[][] => readTnef(buf, max).attachments.map((a) => [...a.fileNames, ...(a.displayName !== undefined ? [`(${a.displayName})`] : [])]);

describe('readTnef', () => {
  test('names from attAttachTitle, PR_ATTACH_LONG_FILENAME (8-bit or UTF-16) and PR_DISPLAY_NAME', () => {
    const stream = makeTnef([
      { title: 'INVOICE.EXE', longName: 'invoice.exe', displayName: 'Invoice' },
      { longName: 'Rechnung für März.pdf', displayName: 'Rechnung', unicode: true },
      { title: 'A.TXT' },
    ]);
    assert.deepEqual(names(stream), [['INVOICE.EXE', 'invoice.exe', '(Invoice)'], ['Rechnung für März.pdf', '(Rechnung)'], ['A.TXT']]);
    assert.equal(readTnef(stream, 100).unreadable, undefined);
  });

  test('content from attAttachData and from PR_ATTACH_DATA_BIN, as views of the stream (no copies)', () => {
    const stream = makeTnef([{ longName: 'a.bin', data: 'from the attribute', dataProperty: 'from the property' }, { longName: 'b.bin', data: 'same', dataProperty: 'same' }]);
    const [a, b] = readTnef(stream, 100).attachments;
    assert.deepEqual(a?.contents.map(String), ['from the attribute', 'from the property']);
    assert.deepEqual(b?.contents.map(String), ['same']);
    for (const c of a?.contents ?? []) assert.ok(within(c, stream));
  });

  test('an embedded message is marked, and its own TNEF stream (after the interface id) is its content', () => {
    const inner = makeTnef([{ longName: 'invoice.exe', data: 'MZ' }]);
    const [m] = readTnef(makeTnef([{ displayName: 'Re: your order', embeddedMessage: true, embeddedFiles: [{ longName: 'invoice.exe', data: 'MZ' }] }]), 100).attachments;
    assert.equal(m?.embeddedMessage, true);
    assert.deepEqual(m?.contents, [inner]);
  });

  test('properties we do not need are skipped: named (by id and by name), multi-valued, 2-byte, 8-byte', () => {
    const extraProperties = [
      mapiProperty(PROPERTY_TYPES.boolean, 0x0e21, [Buffer.from([1, 0])]),
      mapiProperty(PROPERTY_TYPES.systime, 0x3007, [Buffer.alloc(8)]),
      mapiProperty(PROPERTY_TYPES.string8 | PROPERTY_TYPES.multiValued, 0x8001, [stringValue('a', false), stringValue('bcdef', false)], 'Keywords'),
      mapiProperty(PROPERTY_TYPES.long, 0x8002, [Buffer.alloc(4)], 0x8205),
      mapiProperty(PROPERTY_TYPES.long | PROPERTY_TYPES.multiValued, 0x3009, [Buffer.alloc(4), Buffer.alloc(4)]),
    ];
    const listing = readTnef(makeTnef([{ longName: 'after-extras.exe', data: 'x', extraProperties }]), 100);
    assert.deepEqual({ names: listing.attachments.map((a) => a.fileNames), unreadable: listing.unreadable }, { names: [['after-extras.exe']], unreadable: undefined });
  });

  test('a property of a type whose size is unknown cannot be skipped: unreadable', () => {
    const listing = readTnef(makeTnef([{ longName: 'a.txt', extraProperties: [mapiProperty(0x00fb, 0x3001, [Buffer.alloc(4)])] }]), 100);
    assert.match(listing.unreadable ?? '', /property type 0xfb cannot be skipped/);
  });

  test('a multi-valued property of a type with no bytes (PT_NULL) claiming 2^30 values: unreadable at once, not a loop over nothing', () => {
    const nulls = Buffer.from([0x01, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x40]);
    const t0 = performance.now();
    const listing = readTnef(makeTnef([{ longName: 'a.txt', extraProperties: [nulls] }]), 100);
    assert.equal(listing.unreadable, 'value count past the end');
    assert.ok(performance.now() - t0 < 100, `${performance.now() - t0} ms`);
  });

  test('a name past 16 Ki characters is crafted: unreadable; a long run of NULs is trimmed in linear time', () => {
    assert.equal(readTnef(makeTnef([{ longName: `${'a'.repeat(20_000)}.exe` }]), 100).unreadable, 'a name of 20004 characters');
    const t0 = performance.now();
    const listing = readTnef(makeTnef([{ title: `${'\0'.repeat(16_000)}a` }, { title: `b.txt${'\0'.repeat(200_000)}` }]), 100);
    assert.ok(performance.now() - t0 < 200, `${performance.now() - t0} ms`);
    assert.deepEqual(listing.attachments[1]?.fileNames, ['b.txt']);
  });

  test('more attachments than asked for: the first ones, and tooMany', () => {
    const listing = readTnef(makeTnef([{ longName: 'a.txt' }, { longName: 'b.txt' }, { longName: 'c.txt' }]), 2);
    assert.deepEqual({ names: listing.attachments.map((a) => a.fileNames[0]), tooMany: listing.tooMany }, { names: ['a.txt', 'b.txt'], tooMany: true });
  });

  test('no signature, or a stream shorter than one', () => {
    assert.equal(readTnef(Buffer.from('PK\x03\x04 not tnef'), 100).unreadable, 'no TNEF signature');
    assert.equal(readTnef(Buffer.from([0x78, 0x9f]), 100).unreadable, 'no TNEF signature');
  });

  test('every cut and every flipped byte of a stream is read without an exception and without reading past it', () => {
    const stream = makeTnef([
      { title: 'INVOICE.EXE', longName: 'invoice.exe', displayName: 'Invoice', data: 'MZ stand-in', extraProperties: [mapiProperty(PROPERTY_TYPES.long, 0x8002, [Buffer.alloc(4)], 'Name')] },
      { longName: 'report.pdf', unicode: true, dataProperty: '%PDF-1.4' },
    ]);
    let unreadable = 0;
    for (let cut = 0; cut < stream.length; cut++) {
      const prefix = stream.subarray(0, cut);
      const listing = readTnef(prefix, 100);
      if (listing.unreadable !== undefined) unreadable++;
      for (const a of listing.attachments) for (const c of a.contents) assert.ok(within(c, prefix), `cut at ${cut}`);
    }
    // Readable only where the header or an attribute ends: 3 message attributes, 4 + 2 for the files, the
    // last ending at the stream's end (no cut).
    assert.equal(stream.length - unreadable, 1 + 3 + 4 + 2 - 1);
    for (let at = 0; at < stream.length; at++) {
      for (const flip of [0xff, 0x80]) {
        const damaged = Buffer.from(stream);
        damaged[at] = (damaged[at] ?? 0) ^ flip;
        const listing = readTnef(damaged, 100);
        for (const a of listing.attachments) for (const c of a.contents) assert.ok(within(c, damaged), `byte ${at} flipped`);
      }
    }
  });
});
