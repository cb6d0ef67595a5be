// The session state machine, driven with the packets Postfix sends (bytes in) and checked on the packets it
// writes back (bytes out).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ActionFlag,
  decodeResponse,
  encodeCommand,
  FrameDecoder,
  MilterSession,
  ProtocolFlag,
  Verdict,
  type MacroPair,
  type MilterCommand,
  type MilterFilter,
  type MilterProtocolError,
  type MilterResponse,
} from '@postfix-milter-ts/protocol';
import { COMMAND_VECTORS as CV, hex, RESPONSE_VECTORS as RV } from './vectors.js';

const POSTFIX_OFFER: MilterCommand = { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff };
const POSTFIX_CONNECT_MACROS: readonly MacroPair[] = [
  ['j', 'mx.example.test'],
  ['v', 'Postfix 3.7.11'],
];

class Harness<S> {
  readonly written: Buffer[] = [];
  readonly errors: MilterProtocolError[] = [];
  readonly hookErrors: string[] = [];
  ended = false;
  closed = false;
  readonly session: MilterSession<S>;

  constructor(filter: MilterFilter<S>, progressIntervalMs = 1000) {
    this.session = new MilterSession(
      filter,
      { write: (d) => this.written.push(d), end: () => (this.ended = true) },
      {
        id: 't',
        progressIntervalMs,
        observer: {
          protocolError: (_id, e) => this.errors.push(e),
          hookError: (_id, stage, e) => this.hookErrors.push(`${stage}: ${String(e)}`),
          closed: () => (this.closed = true),
        },
      },
    );
  }

  /** Feeds packets, waits until the session has handled them all, returns what it wrote since. */
  async feed(...packets: Array<Buffer | MilterCommand>): Promise<MilterResponse[]> {
    const from = this.written.length;
    const bytes = Buffer.concat(packets.map((p) => (Buffer.isBuffer(p) ? p : encodeCommand(p))));
    this.session.receive(new FrameDecoder().push(bytes));
    await this.idle();
    return this.decode(this.written.slice(from));
  }

  async idle(): Promise<void> {
    while (this.session.isBusy) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  }

  bytesSince(from: number): Buffer {
    return Buffer.concat(this.written.slice(from));
  }

  decode(chunks: Buffer[]): MilterResponse[] {
    return new FrameDecoder().push(Buffer.concat(chunks)).map(decodeResponse);
  }

  /** OPTNEG + the CONNECT Postfix sends for 127.0.0.1. */
  async open(offer: MilterCommand = POSTFIX_OFFER): Promise<void> {
    await this.feed(offer, { type: 'macro', stage: 0x43, macros: POSTFIX_CONNECT_MACROS }, CV.V5_connect_localhost);
  }
}

const types = (rs: readonly MilterResponse[]): string[] => rs.map((r) => r.type);

function recordingFilter(log: string[]): MilterFilter<{ n: number }> {
  return {
    createState: () => ({ n: 0 }),
    connect: (s, info) => void log.push(`connect ${info.hostname} ${info.family} ${info.address}:${info.port} mta=${s.mta}`),
    helo: (_s, name) => void log.push(`helo ${name}`),
    envfrom: (s, sender, args) => void log.push(`mail ${sender} ${args.join(' ')} #${s.messageCount} addr=${s.macro('{mail_addr}') ?? '-'}`),
    envrcpt: (s, rcpt) => void log.push(`rcpt ${rcpt} i=${s.macro('i') ?? '-'}`),
    data: () => void log.push('data'),
    header: (_s, name, value) => void log.push(`header ${name}: ${JSON.stringify(value)}`),
    eoh: () => void log.push('eoh'),
    body: (_s, chunk) => void log.push(`body ${JSON.stringify(chunk.toString('latin1'))}`),
    eom: (s, m) => {
      log.push(`eom i=${s.macro('{i}') ?? '-'}`);
      m.addHeader('X-Rec', 'yes');
    },
    abort: () => void log.push('abort'),
    close: () => void log.push('close'),
    unknown: (_s, line) => void log.push(`unknown ${line}`),
  };
}

test('a Postfix session with two messages: one reply per replied command, none for D/A/Q, hooks in order', async () => {
  const log: string[] = [];
  const h = new Harness(recordingFilter(log));
  const i = (id: string): Buffer => encodeCommand({ type: 'macro', stage: 0x4c, macros: [['i', id]] });

  assert.deepStrictEqual(h.bytesSince(0), Buffer.alloc(0));
  const optneg = await h.feed(CV.V1_optneg);
  assert.deepEqual(types(optneg), ['optneg']);
  // Every hook present: no step skipped; all actions but SETSYMLIST (no macro lists asked); SKIP (content hooks).
  assert.deepStrictEqual(h.bytesSince(0), hex('00 00 00 0D 4F 00 00 00 06 00 00 00 FF 00 00 04 00'));

  const replies = await h.feed(
    CV.V12_macros_connect_default,
    CV.V5_connect_localhost,
    CV.V13_macros_helo_empty,
    CV.V18_helo,
    CV.V14_macros_mail,
    CV.V19_mail_with_size,
    CV.V22_rcpt,
    CV.V31_data,
    i('057EC20C272'),
    CV.V23_header_subject,
    i('057EC20C272'),
    CV.V24_header_folded,
    CV.V31_eoh,
    CV.V28_body,
    CV.V31_eom,
    CV.V31_abort, // Postfix sends ABORT after every message
    CV.V30_unknown,
    CV.V20_mail_null_sender,
    CV.V31_eom,
    CV.V31_abort,
    CV.V31_abort, // and again at QUIT
    CV.V31_quit,
  );
  assert.deepEqual(types(replies), [
    'continue', // C
    'continue', // H
    'continue', // M
    'continue', // R
    'continue', // T
    'continue', // L
    'continue', // L
    'continue', // N
    'continue', // B
    'add-header', // E: modification, then the final reply
    'continue',
    'continue', // U
    'continue', // M
    'add-header',
    'continue',
  ]);
  assert.deepEqual(log, [
    'connect localhost 4 127.0.0.1:41236 mta=postfix',
    'helo client.example.net',
    'mail <alice@example.org> SIZE=100000 #1 addr=alice@example.org',
    'rcpt <root@mx.example.test> i=-',
    'data',
    'header Subject: "Hello"',
    'header To: "a@example.com,\\n\\tb@example.com"',
    'eoh',
    'body "body\\r\\n"',
    'eom i=057EC20C272',
    'unknown XYZZY',
    'mail <>  #2 addr=-',
    'eom i=-',
    'close',
  ]);
  assert.equal(h.ended, true, 'QUIT closes the connection');
  assert.equal(h.errors.length, 0);
});

test('the EOM reply is one write: modifications then the final verdict', async () => {
  const h = new Harness<undefined>({
    eom: (_s, m) => {
      m.addHeader('X-Rec', 'yes');
      m.changeHeader('Subject', 1, 'changed subject');
    },
  });
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  const from = h.written.length;
  await h.feed(CV.V31_eom);
  assert.equal(h.written.length - from, 1, 'a single write');
  assert.deepStrictEqual(h.bytesSince(from), Buffer.concat([RV.V39_addheader, RV.V40_chgheader, RV.V33_continue]));
});

test('MAIL without ABORT after a message in progress runs abort first (synthesised abort)', async () => {
  const log: string[] = [];
  const h = new Harness(recordingFilter(log));
  await h.open();
  await h.feed(CV.V19_mail_with_size, CV.V22_rcpt, CV.V20_mail_null_sender);
  assert.deepEqual(log.slice(-3), ['rcpt <root@mx.example.test> i=-', 'abort', 'mail <>  #2 addr=-']);
});

test('ABORT resets the message but keeps the connection (CONNECT and HELO info stay)', async () => {
  const log: string[] = [];
  const h = new Harness(recordingFilter(log));
  await h.open();
  await h.feed(CV.V18_helo, CV.V19_mail_with_size, CV.V22_rcpt, CV.V31_abort, CV.V31_abort);
  assert.deepEqual(log.filter((l) => l === 'abort'), ['abort'], 'a second ABORT outside a message is a no-op');
  assert.equal(h.session.inMessage, false);
  assert.equal(h.session.helo, 'client.example.net');
  assert.equal(h.session.connection?.address, '127.0.0.1');
  const r = await h.feed(CV.V22_rcpt);
  assert.equal(h.ended, true, 'RCPT outside a message is out of order');
  assert.deepEqual(types(r), []);
  assert.equal(h.errors[0]?.kind, 'unexpected-command');
});

test('macros are scoped per stage: a new MAIL clears the previous RCPT macros; x and {x} are the same', async () => {
  const h = new Harness<undefined>({ envfrom: () => undefined, envrcpt: () => undefined });
  await h.open();
  await h.feed(CV.V14_macros_mail, CV.V19_mail_with_size, CV.V16_macros_rcpt_rejected, CV.V22_rcpt);
  assert.equal(h.session.macro('{rcpt_mailer}'), 'error');
  assert.equal(h.session.macro('{i}'), 'D288D20C35B');
  assert.equal(h.session.macro('i'), 'D288D20C35B');
  assert.equal(h.session.macro('j'), 'mx.example.test');
  await h.feed(CV.V31_abort, CV.V15_macros_mail_null_sender, CV.V20_mail_null_sender);
  assert.equal(h.session.macro('{rcpt_mailer}'), undefined);
  assert.equal(h.session.macro('{mail_addr}'), '');
  assert.equal(h.session.macro('j'), 'mx.example.test', 'connect macros survive');
});

test('QUIT_NC ends the session state but not the connection; CONNECT follows without OPTNEG', async () => {
  const log: string[] = [];
  const filter = recordingFilter(log);
  let created = 0;
  const h = new Harness<{ n: number }>({ ...filter, createState: () => ({ n: ++created }) });
  await h.open();
  assert.equal(h.session.state.n, 1);
  await h.feed(CV.V19_mail_with_size, CV.V32_quit_nc);
  assert.equal(h.ended, false);
  assert.equal(h.session.state.n, 2, 'fresh state');
  assert.equal(h.session.macro('j'), undefined, 'macros cleared');
  const r = await h.feed(CV.V6_connect_ipv4);
  assert.deepEqual(types(r), ['continue']);
  assert.deepEqual(log.slice(-3), ['abort', 'close', 'connect mail.example.com 4 192.0.2.10:54321 mta=unknown']);
});

test("Sendmail's IPv6: prefix is removed from the CONNECT address", async () => {
  const log: string[] = [];
  const h = new Harness(recordingFilter(log));
  await h.feed(POSTFIX_OFFER, CV.V8_connect_ipv6_sendmail);
  assert.equal(h.session.connection?.address, '2001:db8::25');
  assert.equal(h.session.connection?.family, '6');
});

test("IPv6 addresses come out in one spelling: Sendmail's full form is compressed", async () => {
  const h = new Harness(recordingFilter([]));
  await h.feed(POSTFIX_OFFER, { type: 'connect', hostname: '[IPv6:0:0:0:0:0:0:0:1]', family: '6', port: 25, address: 'IPv6:0:0:0:0:0:0:0:1' });
  assert.equal(h.session.connection?.address, '::1');
  const g = new Harness(recordingFilter([]));
  await g.feed(POSTFIX_OFFER, { type: 'connect', hostname: 'x', family: '6', port: 25, address: '2001:DB8:0:0:1:0:0:1' });
  assert.equal(g.session.connection?.address, '2001:db8::1:0:0:1');
  // What is no IPv6 address is not turned into one (a URL parser reads `::1]:25/x?[` as ::1).
  const f = new Harness(recordingFilter([]));
  await f.feed(POSTFIX_OFFER, { type: 'connect', hostname: 'x', family: '6', port: 25, address: '::1]:25/x?[' });
  assert.equal(f.session.connection?.address, '::1]:25/x?[');
});

for (const [what, packets] of [
  ['a command before OPTNEG', [CV.V18_helo]],
  ['a second OPTNEG', [CV.V1_optneg, CV.V1_optneg]],
  ['a second CONNECT', [CV.V1_optneg, CV.V5_connect_localhost, CV.V5_connect_localhost]],
  ['RCPT after a header of the same message', [CV.V1_optneg, CV.V5_connect_localhost, CV.V20_mail_null_sender, CV.V23_header_subject, CV.V22_rcpt]],
] as const) {
  test(`out of order: ${what} closes the connection with unexpected-command`, async () => {
    const h = new Harness(recordingFilter([]));
    await h.feed(...packets);
    assert.equal(h.ended, true);
    assert.equal(h.errors.at(-1)?.kind, 'unexpected-command');
  });
}

test('a packet that does not decode closes the connection with its reason; nothing is replied to it', async () => {
  const h = new Harness(recordingFilter([]));
  await h.open();
  const r = await h.feed(Buffer.from([0, 0, 0, 3, 0x48, 0x61, 0x62])); // HELO without NUL
  assert.deepEqual(r, []);
  assert.equal(h.ended, true);
  assert.equal(h.errors[0]?.kind, 'malformed-command');
  await h.idle();
  assert.equal(h.closed, true, 'close hook path ran');
});

test('a verdict with a reply text becomes SMFIR_REPLYCODE (V35); a reply of the wrong class falls back to the plain verdict', async () => {
  const h = new Harness<undefined>({
    envrcpt: (_s, rcpt) =>
      rcpt.includes('root')
        ? Verdict.reject({ code: 550, xcode: '5.7.1', text: 'Recipient blocked by milter' })
        : Verdict.reject({ code: 451, xcode: '4.7.1', text: 'wrong class for a reject' }),
  });
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  let from = h.written.length;
  await h.feed(CV.V22_rcpt);
  assert.deepStrictEqual(h.bytesSince(from), RV.V35_replycode);
  from = h.written.length;
  await h.feed({ type: 'rcpt', recipient: '<other@example.test>', esmtpArgs: [] });
  assert.deepStrictEqual(h.bytesSince(from), RV.V34_reject);
  assert.equal(h.errors[0]?.kind, 'invalid-reply');
});

test('a hook that throws or rejects fails closed: tempfail, and the error is reported', async () => {
  const h = new Harness<undefined>({
    envfrom: () => {
      throw new Error('policy store down');
    },
    eom: () => Promise.reject(new Error('scanner unreachable')),
  });
  await h.open();
  assert.deepEqual(await h.feed(CV.V20_mail_null_sender), [{ type: 'tempfail' }]);
  assert.deepEqual(await h.feed(CV.V31_eom), [{ type: 'tempfail' }]);
  assert.deepEqual(h.hookErrors, ['mail: Error: policy store down', 'eom: Error: scanner unreachable']);
  assert.equal(h.ended, false, 'the session goes on');
});

test('modifications are dropped when the final verdict refuses the message', async () => {
  const h = new Harness<undefined>({
    eom: (_s, m) => {
      m.addHeader('X-Rec', 'yes');
      return Verdict.reject({ code: 554, xcode: '5.7.0', text: 'Virus found: Eicar' });
    },
  });
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  assert.deepEqual(await h.feed(CV.V31_eom), [{ type: 'replycode', text: '554 5.7.0 Virus found: Eicar' }]);
});

test('a modification whose action was not negotiated is refused and the message tempfailed', async () => {
  const h = new Harness<undefined>({ eom: (_s, m) => m.replaceBody(Buffer.from('x')) });
  await h.open({ type: 'optneg', version: 6, actions: ActionFlag.ADDHDRS, protocol: 0x1fffff });
  await h.feed(CV.V20_mail_null_sender);
  assert.deepEqual(await h.feed(CV.V31_eom), [{ type: 'tempfail' }]);
  assert.match(h.hookErrors[0] ?? '', /CHGBODY action was not negotiated/);
});

test('body replacement goes last and in one run even when asked for between other changes', async () => {
  const h = new Harness<undefined>({
    eom: (_s, m) => {
      m.replaceBody(Buffer.from('new body line 1\r\n'));
      m.addHeader('X-Rec', 'yes');
      m.replaceBody(Buffer.from('line 2\r\n'));
    },
  });
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  const from = h.written.length;
  await h.feed(CV.V31_eom);
  assert.deepStrictEqual(h.bytesSince(from), Buffer.concat([RV.V39_addheader, RV.V45_replbody, RV.V33_continue]));
});

test('with HDR_LEADSPC the milter adds the space after the colon itself', async () => {
  const h = new Harness<undefined>({ headerLeadingSpace: true, eom: (_s, m) => m.addHeader('X-Rec', 'yes') });
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  assert.deepEqual((await h.feed(CV.V31_eom))[0], { type: 'add-header', name: 'X-Rec', value: ' yes' });
});

test('discard at CONNECT is not allowed: tempfail instead, reported', async () => {
  const h = new Harness<undefined>({ connect: () => Verdict.discard });
  assert.deepEqual((await h.feed(POSTFIX_OFFER, CV.V5_connect_localhost)).slice(1), [{ type: 'tempfail' }]);
  assert.equal(h.errors[0]?.kind, 'invalid-reply');
});

test('SKIP on a body chunk is sent only when negotiated', async () => {
  const filter: MilterFilter<undefined> = { body: () => Verdict.skip };
  const h = new Harness(filter);
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  assert.deepEqual(await h.feed(CV.V28_body), [{ type: 'skip' }]);
  const old = new Harness(filter);
  await old.open({ type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff & ~ProtocolFlag.SKIP });
  await old.feed(CV.V20_mail_null_sender);
  assert.deepEqual(await old.feed(CV.V28_body), [{ type: 'continue' }]);
});

test('stages without a hook are skipped by negotiation; a message then opens at its first command', async () => {
  const log: string[] = [];
  const h = new Harness<undefined>({ envrcpt: (_s, r) => void log.push(r), eom: () => void log.push('eom') });
  const [neg] = await h.feed(POSTFIX_OFFER);
  assert.ok(neg?.type === 'optneg' && neg.protocol & ProtocolFlag.NOMAIL);
  // Postfix still sends the D packet of a skipped SMTP stage, but not the command.
  const r = await h.feed(CV.V14_macros_mail, CV.V22_rcpt, CV.V31_eom, CV.V31_abort, CV.V22_rcpt, CV.V31_eom);
  assert.deepEqual(types(r), ['continue', 'continue', 'continue', 'continue']);
  assert.deepEqual(log, ['<root@mx.example.test>', 'eom', '<root@mx.example.test>', 'eom']);
  assert.equal(h.session.messageCount, 2);
});

test('waived replies (NR_HDR): no reply per header, a refusal from the header hook is given at EOH', async () => {
  const h = new Harness<undefined>({
    noReply: ['header'],
    header: (_s, name) => (name === 'Subject' ? Verdict.reject({ code: 554, xcode: '5.7.1', text: 'bad subject' }) : undefined),
    eoh: () => undefined,
  });
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  const r = await h.feed(CV.V23_header_subject, CV.V24_header_folded, CV.V31_eoh);
  assert.deepEqual(r, [{ type: 'replycode', text: '554 5.7.1 bad subject' }]);
});

test('waived MAIL reply (NR_MAIL): a refusal at MAIL is given at every RCPT of that message, not to the next message', async () => {
  let refuse = true;
  const h = new Harness<undefined>({
    noReply: ['envfrom'],
    envfrom: () => (refuse ? Verdict.reject({ code: 554, xcode: '5.7.1', text: 'sender refused' }) : undefined),
    envrcpt: () => undefined,
  });
  await h.open();
  // No reply to MAIL; each RCPT gets the refusal (the MTA refuses one recipient at a time and takes the next).
  assert.deepEqual(await h.feed(CV.V20_mail_null_sender), []);
  const refusal = { type: 'replycode', text: '554 5.7.1 sender refused' };
  assert.deepEqual(await h.feed(CV.V22_rcpt, CV.V22_rcpt, CV.V22_rcpt), [refusal, refusal, refusal]);
  await h.feed(CV.V31_abort);
  refuse = false;
  assert.deepEqual(await h.feed(CV.V20_mail_null_sender, CV.V22_rcpt), [{ type: 'continue' }], 'the next message is judged anew');
});

test('waived CONNECT reply (NR_CONN): a refusal at connect is given at MAIL of every message, until QUIT_NC', async () => {
  let refuse = true;
  const h = new Harness<undefined>({
    noReply: ['connect'],
    connect: () => (refuse ? Verdict.tempfail({ code: 451, xcode: '4.7.1', text: 'too many connections' }) : undefined),
    envfrom: () => undefined,
  });
  const opened = await h.feed(POSTFIX_OFFER, { type: 'macro', stage: 0x43, macros: POSTFIX_CONNECT_MACROS }, CV.V5_connect_localhost);
  assert.deepEqual(types(opened), ['optneg']); // no reply to CONNECT
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(await h.feed(CV.V20_mail_null_sender), [{ type: 'replycode', text: '451 4.7.1 too many connections' }]);
    await h.feed(CV.V31_abort);
  }
  refuse = false;
  await h.feed({ type: 'quit-nc' }, CV.V5_connect_localhost);
  assert.deepEqual(await h.feed(CV.V20_mail_null_sender), [{ type: 'continue' }]);
});

test('a waived HELO hook that throws tempfails every message of the session; a waived header refusal only its message', async () => {
  const h = new Harness<undefined>({
    noReply: ['helo', 'header'],
    helo: (_s, name) => {
      if (name === 'bad.example') throw new Error('helo check failed');
    },
    header: (_s, name) => (name === 'Subject' ? Verdict.reject({ code: 554, xcode: '5.7.1', text: 'bad subject' }) : undefined),
    eoh: () => undefined,
    envfrom: () => undefined,
  });
  await h.open();
  await h.feed({ type: 'helo', name: 'good.example' });
  assert.deepEqual(await h.feed(CV.V20_mail_null_sender, CV.V23_header_subject, CV.V31_eoh), [{ type: 'continue' }, { type: 'replycode', text: '554 5.7.1 bad subject' }]);
  await h.feed(CV.V31_abort);
  assert.deepEqual(await h.feed(CV.V20_mail_null_sender), [{ type: 'continue' }], 'the header refusal was for that message only');
  await h.feed(CV.V31_abort, { type: 'helo', name: 'bad.example' });
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(types(await h.feed(CV.V20_mail_null_sender)), ['tempfail']);
    await h.feed(CV.V31_abort);
  }
});

test('awaitsReply: true for packets the MTA waits on after negotiation, false for macros and waived replies', async () => {
  const h = new Harness<undefined>({ noReply: ['helo', 'header', 'body'], helo: () => undefined, header: () => undefined, body: () => undefined });
  const awaits = (p: Buffer | MilterCommand): boolean => h.session.awaitsReply(new FrameDecoder().push(Buffer.isBuffer(p) ? p : encodeCommand(p))[0]!);
  assert.equal(awaits(POSTFIX_OFFER), true);
  await h.open();
  const answered: Record<string, Buffer> = { mail: CV.V20_mail_null_sender, rcpt: CV.V22_rcpt, eom: CV.V31_eom, connect: CV.V5_connect_localhost };
  const silent: Record<string, Buffer | MilterCommand> = {
    header: CV.V23_header_subject,
    helo: { type: 'helo', name: 'client.example' },
    body: { type: 'body', chunk: Buffer.from('x') },
    macro: { type: 'macro', stage: 77, macros: [['i', 'Q1']] },
    abort: { type: 'abort' },
    quit: { type: 'quit' },
  };
  for (const [name, p] of Object.entries(answered)) assert.equal(awaits(p), true, name);
  for (const [name, p] of Object.entries(silent)) assert.equal(awaits(p), false, name);
});

test('a slow EOM hook sends progress packets on the interval, then one final reply', async () => {
  const h = new Harness<undefined>({ eom: () => new Promise((r) => setTimeout(() => r(Verdict.accept), 130)) }, 40);
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  const r = await h.feed(CV.V31_eom);
  assert.ok(r.length >= 3, `got ${JSON.stringify(types(r))}`);
  assert.deepEqual(new Set(types(r.slice(0, -1))), new Set(['progress']));
  assert.deepEqual(r.at(-1), { type: 'accept' });
});

test('progress before EOM only for Postfix (Sendmail calls it a bogus response)', async () => {
  const slowRcpt: MilterFilter<undefined> = { envrcpt: () => new Promise((r) => setTimeout(() => r(undefined), 100)) };
  const postfix = new Harness(slowRcpt, 30);
  await postfix.open();
  await postfix.feed(CV.V20_mail_null_sender);
  const rp = await postfix.feed(CV.V22_rcpt);
  assert.ok(types(rp).includes('progress'));
  assert.equal(rp.at(-1)?.type, 'continue');

  const other = new Harness(slowRcpt, 30);
  await other.feed(POSTFIX_OFFER, CV.V5_connect_localhost); // no `v` macro: not known to be Postfix
  await other.feed(CV.V20_mail_null_sender);
  assert.deepEqual(await other.feed(CV.V22_rcpt), [{ type: 'continue' }]);
});

test('the connection going away mid-message runs abort then close, once', async () => {
  const log: string[] = [];
  const h = new Harness(recordingFilter(log));
  await h.open();
  await h.feed(CV.V19_mail_with_size);
  h.session.transportClosed();
  h.session.transportClosed();
  await h.idle();
  assert.deepEqual(log.slice(-2), ['abort', 'close']);
  assert.equal(log.filter((l) => l === 'close').length, 1);
});

test('nothing is written after the connection went away while a hook was running', async () => {
  let release: () => void = () => undefined;
  const h = new Harness<undefined>({ eom: () => new Promise<undefined>((r) => (release = () => r(undefined))) }, 10_000);
  await h.open();
  await h.feed(CV.V20_mail_null_sender);
  h.session.receive(new FrameDecoder().push(CV.V31_eom));
  const from = h.written.length;
  h.session.transportClosed();
  release();
  await h.idle();
  assert.equal(h.written.length, from);
  assert.equal(h.closed, true);
});
