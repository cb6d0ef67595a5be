// Transfer decoding chunk by chunk gives the bytes of decoding the whole part, wherever the chunks are cut.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { transferDecoder } from 'postfix-milter-ts/content/transfer-decoder.js';

function decodeInPieces(encoding: string | false, encoded: Buffer, cuts: readonly number[]): Buffer {
  const decoder = transferDecoder(encoding);
  const out: Buffer[] = [];
  let from = 0;
  for (const to of [...cuts, encoded.length]) {
    out.push(decoder.write(encoded.subarray(from, to)));
    from = to;
  }
  out.push(decoder.end());
  return Buffer.concat(out);
}

/** Every way of cutting `encoded` in two, and in three for short inputs. */
function assertEveryCut(encoding: string, encoded: string, expected: Buffer): void {
  const bytes = Buffer.from(encoded, 'latin1');
  assert.deepEqual(decodeInPieces(encoding, bytes, []), expected, 'whole');
  for (let i = 0; i <= bytes.length; i++) {
    assert.deepEqual(decodeInPieces(encoding, bytes, [i]), expected, `cut at ${i}`);
    if (bytes.length <= 40) for (let j = i; j <= bytes.length; j++) assert.deepEqual(decodeInPieces(encoding, bytes, [i, j]), expected, `cut at ${i}, ${j}`);
  }
}

describe('transferDecoder', () => {
  test('base64 across line breaks and junk characters', () => {
    assertEveryCut('base64', 'TVqQAAMAAAAEAAAA//8AALgA\r\nAAAAAAAAQAAAAAAAAAAA\r\n!*', Buffer.from('4d5a90000300000004000000ffff0000b800000000000000400000000000000000', 'hex'));
  });

  test('base64 with every line padded on its own (several segments)', () => {
    assertEveryCut('base64', 'TQ==\r\nWg==\r\nkA==\r\n', Buffer.from([0x4d, 0x5a, 0x90]));
  });

  test('base64 with an unpadded last quartet', () => {
    assertEveryCut('base64', 'UEsDBA', Buffer.from('PK\x03\x04', 'latin1'));
  });

  test('quoted-printable escapes, soft line breaks and trailing white space', () => {
    assertEveryCut('quoted-printable', 'PK=03=04 caf=C3=A9=\r\n joined   \r\nlast=3D', Buffer.from('PK\x03\x04 caf\xc3\xa9 joined\r\nlast=', 'latin1'));
  });

  test('a quoted-printable line without a break is decoded in bounded pieces, escapes kept whole', () => {
    const line = 'A=41'.repeat(10_000); // 40,000 characters, no line break; pieces of 1,001 cut inside escapes
    const decoder = transferDecoder('quoted-printable');
    const out: Buffer[] = [];
    let heldAtMost = 0;
    for (let i = 0; i < line.length; i += 1001) {
      out.push(decoder.write(Buffer.from(line.slice(i, i + 1001), 'latin1')));
      heldAtMost = Math.max(heldAtMost, Math.min(line.length, i + 1001) - out.reduce((n, b) => n + b.length * 2, 0));
    }
    out.push(decoder.end());
    assert.equal(Buffer.concat(out).toString('latin1'), 'AA'.repeat(10_000));
    assert.ok(heldAtMost <= 17 * 1024 + 1000, `held ${heldAtMost} characters`);
  });

  test('the first token of the encoding, lower-case, is the encoding (as Thunderbird reads it)', () => {
    for (const encoding of ['base64; x=1', 'base64 x', 'base64,x', 'BASE64', ' Base64\t']) assertEveryCut(encoding, 'TVqQAA==\r\n', Buffer.from([0x4d, 0x5a, 0x90, 0x00]));
    assertEveryCut('quoted-printable;x', 'MZ=90=00', Buffer.from([0x4d, 0x5a, 0x90, 0x00]));
  });

  test('a uuencoded part (x-uuencode, x-uue, uuencode, uue) is its file after the begin line', () => {
    for (const encoding of ['x-uuencode', 'X-UUE', 'uuencode', 'uue; x'])
      assertEveryCut(encoding, 'hello\r\nbegin 644 a.txt\r\n)35J0 &AE;&QO\r\n`\r\nend\r\nbye\r\n', Buffer.from('MZ\x90\x00hello', 'latin1'));
  });

  test('7bit, 8bit, binary, unknown and quoted encodings pass through unchanged', () => {
    const bytes = Buffer.from('PK\x03\x04=41\r\n\xff', 'latin1');
    for (const encoding of ['7bit', '8bit', 'binary', 'x-foo', '"base64"', false] as const) assert.deepEqual(decodeInPieces(encoding, bytes, [3]), bytes);
  });
});
