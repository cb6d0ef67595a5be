// MTA → milter packets: every command decodes to its typed form, encodes back to the same bytes, and decodes
// identically however TCP cuts or glues the stream.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { decodeCommand, encodeCommand, FrameDecoder, type MilterCommand } from '@postfix-milter-ts/protocol';
import { COMMAND_VECTORS as V, hex } from './vectors.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

const EXPECTED: ReadonlyArray<readonly [keyof typeof V, MilterCommand]> = [
  ['V1_optneg', { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff }],
  [
    'V4_macros_connect',
    {
      type: 'macro',
      stage: 0x43,
      macros: [
        ['{client_addr}', '127.0.0.1'],
        ['{client_name}', 'localhost'],
        ['{client_port}', '41236'],
        ['j', 'mx.example.test'],
      ],
    },
  ],
  ['V5_connect_localhost', { type: 'connect', hostname: 'localhost', family: '4', port: 41236, address: '127.0.0.1' }],
  ['V6_connect_ipv4', { type: 'connect', hostname: 'mail.example.com', family: '4', port: 54321, address: '192.0.2.10' }],
  ['V7_connect_ipv6_postfix', { type: 'connect', hostname: '[2001:db8::25]', family: '6', port: 25000, address: '2001:db8::25' }],
  ['V8_connect_ipv6_sendmail', { type: 'connect', hostname: 'mx.example.org', family: '6', port: 25000, address: 'IPv6:2001:db8::25' }],
  ['V9_connect_unknown', { type: 'connect', hostname: 'unknown', family: 'U' }],
  ['V10_connect_unix', { type: 'connect', hostname: 'localhost', family: 'L', port: 0, address: '/var/run/sock' }],
  ['V11_connect_non_smtpd', { type: 'connect', hostname: 'localhost', family: '4', port: 0, address: '127.0.0.1' }],
  [
    'V12_macros_connect_default',
    {
      type: 'macro',
      stage: 0x43,
      macros: [
        ['j', 'mx.example.test'],
        ['{daemon_name}', 'mx.example.test'],
        ['{daemon_addr}', '127.0.0.1'],
        ['v', 'Postfix 3.7.11'],
        ['_', 'localhost [127.0.0.1]'],
      ],
    },
  ],
  ['V13_macros_helo_empty', { type: 'macro', stage: 0x48, macros: [] }],
  [
    'V14_macros_mail',
    {
      type: 'macro',
      stage: 0x4d,
      macros: [
        ['{mail_addr}', 'alice@example.org'],
        ['{mail_host}', 'example.org'],
        ['{mail_mailer}', 'discard'],
      ],
    },
  ],
  [
    'V15_macros_mail_null_sender',
    {
      type: 'macro',
      stage: 0x4d,
      macros: [
        ['{mail_addr}', ''],
        ['{mail_host}', 'mx.example.test'],
        ['{mail_mailer}', 'discard'],
      ],
    },
  ],
  [
    'V16_macros_rcpt_rejected',
    {
      type: 'macro',
      stage: 0x52,
      macros: [
        ['i', 'D288D20C35B'],
        ['{rcpt_addr}', 'Recipient address rejected: No such user here'],
        ['{rcpt_host}', '5.1.1'],
        ['{rcpt_mailer}', 'error'],
      ],
    },
  ],
  ['V17_macros_header', { type: 'macro', stage: 0x4c, macros: [['i', '057EC20C272']] }],
  ['V18_helo', { type: 'helo', name: 'client.example.net' }],
  ['V19_mail_with_size', { type: 'mail', sender: '<alice@example.org>', esmtpArgs: ['SIZE=100000'] }],
  ['V20_mail_null_sender', { type: 'mail', sender: '<>', esmtpArgs: [] }],
  ['V21_mail_non_smtp', { type: 'mail', sender: 'alice@example.org', esmtpArgs: [] }],
  ['V22_rcpt', { type: 'rcpt', recipient: '<root@mx.example.test>', esmtpArgs: [] }],
  ['V23_header_subject', { type: 'header', name: 'Subject', value: 'Hello' }],
  ['V24_header_folded', { type: 'header', name: 'To', value: 'a@example.com,\n\tb@example.com' }],
  ['V25_header_empty_value', { type: 'header', name: 'X-Empty', value: '' }],
  ['V26_header_8bit', { type: 'header', name: 'X-Eight', value: 'caf\u00e9' }],
  ['V27_header_tab', { type: 'header', name: 'X-Tab', value: '\tvalue' }],
  ['V28_body', { type: 'body', chunk: b('body\r\n') }],
  ['V30_unknown', { type: 'unknown', line: 'XYZZY' }],
  ['V31_data', { type: 'data' }],
  ['V31_eoh', { type: 'eoh' }],
  ['V31_eom', { type: 'eom', chunk: Buffer.alloc(0) }],
  ['V31_abort', { type: 'abort' }],
  ['V31_quit', { type: 'quit' }],
  ['V32_quit_nc', { type: 'quit-nc' }],
];

function decodeAll(decoder: FrameDecoder, chunks: readonly Buffer[]): MilterCommand[] {
  return chunks.flatMap((c) => decoder.push(c)).map(decodeCommand);
}

test('every command vector is covered by the table', () => {
  assert.deepEqual(new Set(EXPECTED.map(([k]) => k)), new Set(Object.keys(V)));
});

for (const [name, expected] of EXPECTED) {
  const bytes = V[name];
  test(`${name}: decodes`, () => {
    assert.deepStrictEqual(decodeAll(new FrameDecoder(), [bytes]), [expected]);
  });
  test(`${name}: encodes back to the same bytes`, () => {
    assert.deepStrictEqual(encodeCommand(expected), bytes);
  });
  test(`${name}: decodes identically when split at every offset`, () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      const got = decodeAll(new FrameDecoder(), [bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.deepStrictEqual(got, [expected], `split at ${cut}`);
    }
  });
}

test('all vectors coalesced into one read decode in order', () => {
  const all = Buffer.concat(EXPECTED.map(([k]) => V[k]));
  assert.deepStrictEqual(decodeAll(new FrameDecoder(), [all]), EXPECTED.map(([, e]) => e));
});

test('all vectors fed one byte at a time decode in order', () => {
  const all = Buffer.concat(EXPECTED.map(([k]) => V[k]));
  const bytes = Array.from({ length: all.length }, (_, i) => all.subarray(i, i + 1));
  assert.deepStrictEqual(decodeAll(new FrameDecoder(), bytes), EXPECTED.map(([, e]) => e));
});

test('all vectors coalesced and split at every offset decode in order', () => {
  const all = Buffer.concat(EXPECTED.map(([k]) => V[k]));
  const want = EXPECTED.map(([, e]) => e);
  for (let cut = 1; cut < all.length; cut++) {
    assert.deepStrictEqual(decodeAll(new FrameDecoder(), [all.subarray(0, cut), all.subarray(cut)]), want, `split at ${cut}`);
  }
});

test('a full Postfix body chunk (length field 65536) is accepted', () => {
  const data = Buffer.alloc(65535, 0x61);
  const frame = Buffer.concat([hex('00 01 00 00 42'), data]);
  const [cmd] = decodeAll(new FrameDecoder(), [frame]);
  assert.equal(cmd?.type, 'body');
  assert.equal(cmd.type === 'body' && cmd.chunk.length, 65535);
});

test('a header larger than 64 KiB (Postfix header_size_limit is 100 KiB) is accepted under the default maximum', () => {
  const value = 'x'.repeat(100_000);
  const bytes = encodeCommand({ type: 'header', name: 'X-Big', value });
  assert.deepStrictEqual(decodeAll(new FrameDecoder(), [bytes]), [{ type: 'header', name: 'X-Big', value }]);
});

test('a 64 KiB chunk arriving in 1 KiB reads decodes to one frame', () => {
  const bytes = encodeCommand({ type: 'body', chunk: Buffer.alloc(65535, 0x62) });
  const decoder = new FrameDecoder();
  const frames = [];
  for (let off = 0; off < bytes.length; off += 1024) frames.push(...decoder.push(bytes.subarray(off, off + 1024)));
  assert.equal(frames.length, 1);
  assert.equal(frames[0]?.payload.length, 65535);
  assert.equal(decoder.bufferedBytes, 0);
});

test('a packet arriving one byte per read holds only its own bytes, not the reads it came in', () => {
  // Each read is a 1-byte view into a fresh 64 KiB buffer, as a socket delivers it. Run with --expose-gc in a child
  // so that what the decoder retains can be measured.
  const script = `
    const { FrameDecoder } = await import(${JSON.stringify(import.meta.resolve('@postfix-milter-ts/protocol'))});
    const decoder = new FrameDecoder();
    const header = Buffer.from([0, 0x10, 0, 0, 0x42]); // BODY, 1 MiB packet
    // Array buffers are freed after a collection has run its course: collect, let it finish, collect again.
    const collect = async () => { gc(); await new Promise((r) => setTimeout(r, 50)); gc(); };
    for (const byte of header) decoder.push(Buffer.alloc(65536, byte).subarray(0, 1));
    await collect();
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 4000; i++) decoder.push(Buffer.alloc(65536, 0x61).subarray(0, 1));
    await collect();
    console.log(JSON.stringify({ grew: process.memoryUsage().arrayBuffers - before, buffered: decoder.bufferedBytes }));
  `;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  const { grew, buffered } = JSON.parse(out) as { grew: number; buffered: number };
  assert.equal(buffered, 4005);
  // 4000 reads kept as received would hold 4000 x 64 KiB = 250 MiB.
  assert.ok(grew < 1024 * 1024, `array buffers grew by ${grew} bytes for 4,000 bytes received`);
});

test('a DATA packet carrying stray bytes still decodes as DATA', () => {
  assert.deepStrictEqual(decodeAll(new FrameDecoder(), [hex('00 00 00 02 54 00')]), [{ type: 'data' }]);
});

test('EOM carrying data (libmilter reads it as a last body chunk) keeps the data', () => {
  assert.deepStrictEqual(decodeAll(new FrameDecoder(), [hex('00 00 00 03 45 6F 6B')]), [{ type: 'eom', chunk: b('ok') }]);
});

test('CONNECT with the address missing after the port is tolerated', () => {
  assert.deepStrictEqual(decodeAll(new FrameDecoder(), [hex('00 00 00 06 43 68 00 34 00 19')]), [
    { type: 'connect', hostname: 'h', family: '4', port: 25, address: '' },
  ]);
});

test('a macro packet with an unknown stage byte decodes (Postfix sends L, B, U)', () => {
  assert.deepStrictEqual(decodeAll(new FrameDecoder(), [hex('00 00 00 06 44 5A 61 00 62 00')]), [
    { type: 'macro', stage: 0x5a, macros: [['a', 'b']] },
  ]);
});
