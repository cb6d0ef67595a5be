// Bad bytes are errors with a kind and a reason, never a crash or a silent misreading.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCommand, FrameDecoder, MilterProtocolError, type ProtocolErrorKind } from '@postfix-milter-ts/protocol';
import { hex } from './vectors.js';

function decodeError(bytes: Buffer, max?: number): MilterProtocolError {
  try {
    new FrameDecoder(max)
      .push(bytes)
      .forEach((f) => decodeCommand(f));
  } catch (e) {
    assert.ok(e instanceof MilterProtocolError, `expected MilterProtocolError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

const CASES: ReadonlyArray<readonly [string, string, ProtocolErrorKind, RegExp]> = [
  ['length 0', '00 00 00 00 41', 'frame-length-zero', /length 0/],
  ['HTTP on the milter port ("GET ")', '47 45 54 20 2F 20 48 54 54 50', 'frame-too-large', /1195725856 exceeds/],
  ['TLS hello on the milter port', '16 03 01 00 FF', 'frame-too-large', /exceeds/],
  ['unknown command byte', '00 00 00 01 7A', 'unknown-command', /0x7a/],
  ['OPTNEG shorter than 12 bytes', '00 00 00 09 4F 00 00 00 06 00 00 01 FF', 'malformed-command', /OPTNEG: protocol needs 4 bytes/],
  ['HELO without NUL', '00 00 00 04 48 61 62 63', 'malformed-command', /HELO: HELO name is not NUL-terminated/],
  ['HEADER without value', '00 00 00 04 4C 58 41 00', 'malformed-command', /header value is not NUL-terminated/],
  ['macro name without value', '00 00 00 04 44 43 6A 00', 'malformed-command', /value of macro j is not NUL-terminated/],
  ['macro without stage byte', '00 00 00 01 44', 'malformed-command', /stage needs 1 bytes/],
  ['CONNECT with unknown family', '00 00 00 04 43 68 00 58', 'malformed-command', /unknown address family byte 'X'/],
  ['CONNECT truncated port', '00 00 00 04 43 68 00 34', 'malformed-command', /port needs 2 bytes/],
  ['MAIL with no address', '00 00 00 01 4D', 'malformed-command', /MAIL address is not NUL-terminated/],
];

for (const [what, bytes, kind, message] of CASES) {
  test(`${what} → ${kind}`, () => {
    const err = decodeError(hex(bytes));
    assert.equal(err.kind, kind);
    assert.match(err.message, message);
  });
}

test('a length over a configured maximum is refused as soon as the length field is complete', () => {
  const decoder = new FrameDecoder(1000);
  assert.deepEqual(decoder.push(hex('00 00 03')), []);
  assert.throws(() => decoder.push(hex('E9')), (e: unknown) => e instanceof MilterProtocolError && e.kind === 'frame-too-large');
});

test('a length equal to the maximum is accepted', () => {
  const frames = new FrameDecoder(3).push(hex('00 00 00 03 42 61 62'));
  assert.equal(frames.length, 1);
});

test('maximum frame length must be positive', () => {
  assert.throws(() => new FrameDecoder(0), RangeError);
});

test('a packet of thousands of tiny strings is refused, not decoded in a long loop: 1,024 macros or 256 ESMTP arguments at most', () => {
  const packet = (code: string, payload: Buffer): Buffer => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(payload.length + 1, 0);
    head.write(code, 4, 'latin1');
    return Buffer.concat([head, payload]);
  };
  const decodeOne = (bytes: Buffer): string => {
    const [frame] = new FrameDecoder().push(bytes);
    assert.ok(frame);
    return decodeCommand(frame).type;
  };
  const macros = (n: number): Buffer => packet('D', Buffer.concat([Buffer.from('C'), Buffer.from('a\0b\0'.repeat(n), 'latin1')]));
  assert.equal(decodeOne(macros(1024)), 'macro');
  const tooMany = decodeError(macros(1025));
  assert.equal(tooMany.kind, 'malformed-command');
  assert.match(tooMany.message, /more than 1024 macros in one packet/);

  const mail = (args: number): Buffer => packet('M', Buffer.from(`<a@example.org>\0${'X=1\0'.repeat(args)}`, 'latin1'));
  assert.equal(decodeOne(mail(256)), 'mail');
  const tooManyArgs = decodeError(mail(257));
  assert.equal(tooManyArgs.kind, 'malformed-command');
  assert.match(tooManyArgs.message, /more than 256 of MAIL ESMTP argument/);
});
