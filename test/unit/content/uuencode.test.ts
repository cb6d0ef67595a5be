// Files encoded in a text body come out as the bytes their decoder gives, wherever the text is cut into chunks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EncodedBlockKind, UuencodeScanner } from 'postfix-milter-ts/content/uuencode.js';
import { yencode } from './yenc-writer.js';

function blocksOf(text: string, cuts: readonly number[]): { name: string; kind: EncodedBlockKind; data: Buffer }[] {
  const blocks: { name: string; kind: EncodedBlockKind; chunks: Buffer[] }[] = [];
  const scanner = new UuencodeScanner((name, kind) => {
    const block = { name, kind, chunks: [] as Buffer[] };
    blocks.push(block);
    return { write: (b) => block.chunks.push(b), end: () => undefined };
  });
  const bytes = Buffer.from(text, 'latin1');
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    scanner.write(bytes.subarray(from, to));
    from = to;
  }
  scanner.end();
  return blocks.map((b) => ({ name: b.name, kind: b.kind, data: Buffer.concat(b.chunks) }));
}

// Every byte value, so every escape (NUL, LF, CR, `=` after the +42 shift) occurs.
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

test('a yEnc block decodes to its bytes, wherever the text is cut', () => {
  const text = `Hello,\r\nthe file:\r\n${yencode(ALL_BYTES, 'invoice.exe', 64)}bye\r\n`;
  const want = [{ name: 'invoice.exe', kind: 'yenc', data: ALL_BYTES }];
  assert.deepEqual(blocksOf(text, []), want);
  for (let i = 0; i <= text.length; i++) assert.deepEqual(blocksOf(text, [i]), want, `cut at ${i}`);
});

test('a multipart yEnc post: the =ypart line is framing, a name with spaces is the rest of the line', () => {
  const text = yencode(Buffer.from('MZ\x90\x00', 'latin1'), 'my invoice.exe', 128).replace(/\r\n/, '\r\n=ypart begin=1 end=4\r\n');
  assert.match(text, /=ypart/);
  assert.deepEqual(blocksOf(text, []), [{ name: 'my invoice.exe', kind: 'yenc', data: Buffer.from('MZ\x90\x00', 'latin1') }]);
});

test('a yEnc line of any length is decoded whole, also when it arrives in pieces', () => {
  const data = Buffer.concat(Array.from({ length: 40 }, () => ALL_BYTES)); // 10,240 bytes on one line
  const text = yencode(data, 'big.bin', 1_000_000);
  const want = [{ name: 'big.bin', kind: 'yenc', data }];
  assert.deepEqual(blocksOf(text, []), want);
  assert.deepEqual(blocksOf(text, Array.from({ length: Math.floor(text.length / 997) }, (_, i) => (i + 1) * 997)), want);
});

test('uuencoded and yEnc blocks in one text are told apart', () => {
  const text = `begin 644 a.txt\r\n)35J0 &AE;&QO\r\n\`\r\nend\r\n${yencode(Buffer.from('hi'), 'b.txt', 128)}`;
  assert.deepEqual(
    blocksOf(text, []).map((b) => [b.name, b.kind, b.data.toString('latin1')]),
    [
      ['a.txt', 'uuencode', 'MZ\x90\x00hello'],
      ['b.txt', 'yenc', 'hi'],
    ],
  );
});
