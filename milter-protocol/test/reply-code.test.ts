import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeReplyCode, encodeResponse, MilterProtocolError } from '@postfix-milter-ts/protocol';
import { RESPONSE_VECTORS } from './vectors.js';

test('single line with enhanced code (V35)', () => {
  const text = encodeReplyCode({ code: 550, xcode: '5.7.1', text: 'Recipient blocked by milter' });
  assert.equal(text, '550 5.7.1 Recipient blocked by milter');
  assert.deepStrictEqual(encodeResponse({ type: 'replycode', text }), RESPONSE_VECTORS.V35_replycode);
});

test('multi-line from an array (V37): DDD- on all lines but the last, CRLF between, none at the end', () => {
  const text = encodeReplyCode({ code: 550, xcode: '5.7.1', text: ['Line one', 'Line two'] });
  assert.equal(text, '550-5.7.1 Line one\r\n550 5.7.1 Line two');
  assert.deepStrictEqual(encodeResponse({ type: 'replycode', text }), RESPONSE_VECTORS.V37_replycode_multiline);
});

test('line breaks inside a string become separate lines', () => {
  assert.equal(encodeReplyCode({ code: 451, xcode: '4.7.1', text: 'a\nb\r\nc' }), '451-4.7.1 a\r\n451-4.7.1 b\r\n451 4.7.1 c');
});

test('% is doubled (V38)', () => {
  const text = encodeReplyCode({ code: 451, xcode: '4.7.1', text: 'Greylisted, 100% sure' });
  assert.deepStrictEqual(encodeResponse({ type: 'replycode', text }), RESPONSE_VECTORS.V38_replycode_percent);
});

test('default enhanced code follows the class', () => {
  assert.equal(encodeReplyCode({ code: 554, text: 'no' }), '554 5.0.0 no');
  assert.equal(encodeReplyCode({ code: 421, text: 'bye' }), '421 4.0.0 bye');
});

test('control characters from attacker-controlled text are removed', () => {
  assert.equal(encodeReplyCode({ code: 554, xcode: '5.7.0', text: 'virus \u0000\u0007\u001b[31mEvil\u007f\u0085.exe' }), '554 5.7.0 virus [31mEvil.exe');
});

test('lines are bounded to 980 characters without cutting a %% escape in half', () => {
  const text = encodeReplyCode({ code: 554, xcode: '5.7.0', text: 'a'.repeat(979) + '%%%' });
  const line = text.slice('554 5.7.0 '.length);
  assert.ok(line.length <= 980, `line is ${line.length} long`);
  assert.doesNotMatch(line.replace(/%%/g, ''), /%/);
});

test('at most 32 lines', () => {
  const text = encodeReplyCode({ code: 550, text: Array.from({ length: 40 }, (_, i) => `line ${i}`) });
  assert.equal(text.split('\r\n').length, 32);
  assert.match(text.split('\r\n').at(-1) ?? '', /^550 5\.0\.0 line 31$/);
});

for (const [what, reply] of [
  ['a 2xx code', { code: 250, text: 'ok' }],
  ['a 3xx code', { code: 354, text: 'go' }],
  ['a non-integer code', { code: 550.5, text: 'x' }],
  ['a class mismatch (550 4.7.1, Postfix: config error)', { code: 550, xcode: '4.7.1', text: 'x' }],
  ['a malformed enhanced code', { code: 550, xcode: '5.7', text: 'x' }],
] as const) {
  test(`refuses ${what}`, () => {
    assert.throws(() => encodeReplyCode(reply), (e: unknown) => e instanceof MilterProtocolError && e.kind === 'invalid-reply');
  });
}
