// milter → MTA packets: every response encodes to the captured/computed bytes and decodes back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeResponse, encodeResponse, FrameDecoder, MilterProtocolError, type MilterResponse } from '@postfix-milter-ts/protocol';
import { hex, RESPONSE_VECTORS as V } from './vectors.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

const EXPECTED: ReadonlyArray<readonly [keyof typeof V, MilterResponse]> = [
  ['V2_optneg_all', { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0 }],
  ['V3_optneg_some', { type: 'optneg', version: 6, actions: 0x11, protocol: 0x00100580 }],
  [
    'V4_optneg_macros',
    {
      type: 'optneg',
      version: 6,
      actions: 0x1ff,
      protocol: 0,
      macroRequests: new Map([
        [0, ['{client_addr}', '{client_name}', '{client_port}', 'j']],
        [2, ['{mail_addr}', 'i']],
      ]),
    },
  ],
  ['V33_continue', { type: 'continue' }],
  ['V33_accept', { type: 'accept' }],
  ['V33_progress', { type: 'progress' }],
  ['V33_skip', { type: 'skip' }],
  ['V34_reject', { type: 'reject' }],
  ['V34_tempfail', { type: 'tempfail' }],
  ['V34_discard', { type: 'discard' }],
  ['V34_shutdown', { type: 'shutdown' }],
  ['V35_replycode', { type: 'replycode', text: '550 5.7.1 Recipient blocked by milter' }],
  ['V37_replycode_multiline', { type: 'replycode', text: '550-5.7.1 Line one\r\n550 5.7.1 Line two' }],
  ['V38_replycode_percent', { type: 'replycode', text: '451 4.7.1 Greylisted, 100%% sure' }],
  ['V39_addheader', { type: 'add-header', name: 'X-Rec', value: 'yes' }],
  ['V40_chgheader', { type: 'change-header', index: 1, name: 'Subject', value: 'changed subject' }],
  ['V41_chgheader_delete', { type: 'change-header', index: 1, name: 'X-A', value: '' }],
  ['V42_insheader', { type: 'insert-header', index: 0, name: 'X-Top', value: 'at index 0' }],
  ['V43_addheader_folded', { type: 'add-header', name: 'X-Fold', value: 'first\n\tsecond' }],
  ['V44_quarantine', { type: 'quarantine', reason: 'held by test' }],
  ['V45_replbody', { type: 'replace-body', chunk: b('new body line 1\r\nline 2\r\n') }],
  ['V46_addrcpt', { type: 'add-rcpt', recipient: '<carol@example.com>' }],
  ['V47_delrcpt', { type: 'delete-rcpt', recipient: '<bob@example.com>' }],
  ['V48_addrcpt_par', { type: 'add-rcpt-par', recipient: '<dave@example.com>', esmtpArgs: 'NOTIFY=NEVER' }],
  ['V49_chgfrom', { type: 'change-from', sender: '<bounce@example.org>', esmtpArgs: 'RET=HDRS ENVID=abc123' }],
];

function decodeAll(chunks: readonly Buffer[]): MilterResponse[] {
  const d = new FrameDecoder();
  return chunks.flatMap((c) => d.push(c)).map(decodeResponse);
}

test('every response vector is covered by the table', () => {
  assert.deepEqual(new Set(EXPECTED.map(([k]) => k)), new Set(Object.keys(V)));
});

for (const [name, response] of EXPECTED) {
  test(`${name}: encodes`, () => {
    assert.deepStrictEqual(encodeResponse(response), V[name]);
  });
  test(`${name}: decodes, also split at every offset`, () => {
    const bytes = V[name];
    assert.deepStrictEqual(decodeAll([bytes]), [response]);
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepStrictEqual(decodeAll([bytes.subarray(0, cut), bytes.subarray(cut)]), [response], `split at ${cut}`);
    }
  });
}

test('change-from and add-rcpt-par without arguments send one string only', () => {
  assert.deepStrictEqual(encodeResponse({ type: 'change-from', sender: '<a@b>' }), hex('00 00 00 07 65 3C 61 40 62 3E 00'));
  assert.deepStrictEqual(encodeResponse({ type: 'add-rcpt-par', recipient: '<a@b>' }), hex('00 00 00 07 32 3C 61 40 62 3E 00'));
});

test('replace-body over 65535 bytes is split into consecutive packets of at most 65535 data bytes', () => {
  const body = Buffer.alloc(65535 * 2 + 10, 0x7a);
  const out = encodeResponse({ type: 'replace-body', chunk: body });
  const frames = new FrameDecoder().push(out);
  assert.deepEqual(
    frames.map((f) => [f.code, f.payload.length]),
    [
      [0x62, 65535],
      [0x62, 65535],
      [0x62, 10],
    ],
  );
  assert.deepStrictEqual(Buffer.concat(frames.map((f) => f.payload)), body);
});

test('header values fold with LF only: CRLF and lone CR become LF', () => {
  const out = encodeResponse({ type: 'add-header', name: 'X-F', value: 'a\r\n\tb\r\tc' });
  assert.deepStrictEqual(out, Buffer.concat([hex('00 00 00 0D 68'), b('X-F\0a\n\tb\n\tc\0')]));
});

const INVALID: ReadonlyArray<readonly [string, MilterResponse]> = [
  ['empty header name', { type: 'add-header', name: '', value: 'x' }],
  ['colon in header name', { type: 'add-header', name: 'X:Y', value: 'x' }],
  ['NUL in header value', { type: 'add-header', name: 'X', value: 'a\0b' }],
  ['negative header index', { type: 'change-header', index: -1, name: 'X', value: 'v' }],
  ['empty recipient', { type: 'add-rcpt', recipient: '' }],
  ['empty quarantine reason', { type: 'quarantine', reason: '' }],
  ['reply text with a 2xx code', { type: 'replycode', text: '250 2.0.0 ok' }],
  ['reply text with a class mismatch', { type: 'replycode', text: '550 4.7.1 mismatch' }],
  ['reply text with a lone %', { type: 'replycode', text: '550 5.7.1 100% sure' }],
  ['multi-line reply with a bad continuation', { type: 'replycode', text: '550 5.7.1 a\r\n550 5.7.1 b' }],
];
for (const [what, response] of INVALID) {
  test(`refuses to encode: ${what}`, () => {
    assert.throws(() => encodeResponse(response), (e: unknown) => e instanceof MilterProtocolError && e.kind === 'invalid-reply');
  });
}

test('decoding refuses data after a data-less reply (Postfix: communication error)', () => {
  assert.throws(() => decodeAll([hex('00 00 00 02 63 00')]), (e: unknown) => e instanceof MilterProtocolError && e.kind === 'malformed-response');
});
