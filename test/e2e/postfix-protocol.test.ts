// End-to-end: the protocol package behind a real, private Postfix 3.x on loopback. A recording test filter runs
// in this process; the tests talk SMTP to Postfix (and use its sendmail command) and check both Postfix's
// replies and the delivered Maildir files.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MilterServer, Verdict, type CommandType } from '@postfix-milter-ts/protocol';
import { bodyOf, headerValues, parseHeaders } from '../harness/delivered-message.js';
import { rawMessage as message } from '../harness/mail-builder.js';
import { assertMultiMessageRecords, assertMultiMessagesDelivered, sendMultiMessageSession } from '../harness/multi-message-session.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { RecordingFilter, subjectOf, type SessionRecord } from '../harness/recording-filter.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { assertReply, queuedId } from '../harness/smtp-replies.js';
import { waitFor } from '../harness/wait-for.js';

const DOMAIN = 'example.test';
// Bounds a hung test; every wait inside also has its own shorter limit.
const TEST_TIMEOUT_MS = 30_000;

// Postfix 3.7 here: milter_command_timeout 2s (below), the slow hook takes longer, progress every 500 ms.
const COMMAND_TIMEOUT_S = 2;
const SLOW_HOOK_MS = 3500;
const PROGRESS_INTERVAL_MS = 500;

// Larger than one 65535-byte packet in both directions.
const BIG_BODY = Array.from({ length: 4000 }, (_, i) => `body line ${String(i).padStart(5, '0')} ${'x'.repeat(40)}\r\n`).join('');
const BIG_REPLACEMENT = Buffer.from(Array.from({ length: 2500 }, (_, i) => `replacement ${String(i).padStart(5, '0')} ${'y'.repeat(50)}\r\n`).join(''), 'latin1');

const REPLACED_BODY = 'This body was replaced by the milter.\r\nSecond line.\r\n';

// ---------------------------------------------------------------------------------------------------------
// What the filter saw, per milter connection; its answers beyond the shared ones (see recording-filter.ts).

const recorder = new RecordingFilter({
  dataAndEoh: true,
  recipientVerdict(local) {
    if (local === 'percent') return Verdict.reject({ code: 550, xcode: '5.7.1', text: 'We are 100% sure (50%% off)' });
    if (local === 'multiline') return Verdict.reject({ code: 550, xcode: '5.7.1', text: ['first line', 'second line'] });
    // Slower than milter_command_timeout: only the session's progress packets keep Postfix waiting.
    if (local === 'slow') return new Promise<Verdict>((resolve) => setTimeout(() => resolve(Verdict.continue), SLOW_HOOK_MS));
    return undefined;
  },
  modify(m, mod) {
    const subject = subjectOf(m);
    let modified = false;
    if (subject === 'modify me') {
      mod.addHeader('X-Test-Added', 'added at eom');
      mod.changeHeader('Subject', 1, 'modified by milter');
      mod.insertHeader(0, 'X-Test-Top', 'inserted at index 0');
      mod.replaceBody(Buffer.from(REPLACED_BODY, 'latin1'));
      modified = true;
    } else if (subject === 'big') {
      mod.replaceBody(BIG_REPLACEMENT);
      modified = true;
    }
    // Header bytes are latin1 strings in the API: echoing one back must reproduce the original bytes.
    const echo = m.headers.find(([n]) => n === 'X-Echo-Me');
    if (echo) mod.addHeader('X-Echoed', echo[1]);
    return modified;
  },
});
const { sessions, protocolErrors, hookErrors } = recorder;

// ---------------------------------------------------------------------------------------------------------
// Fixture: one milter server and one Postfix for the whole file.

let server: MilterServer<undefined> | undefined;
let postfix: PostfixInstance | undefined;

before(async () => {
  server = new MilterServer(recorder.filter, { progressIntervalMs: PROGRESS_INTERVAL_MS, observer: recorder.observer });
  const milter = await server.listen('inet:127.0.0.1:0');
  postfix = new PostfixInstance({
    milter,
    domain: DOMAIN,
    mailboxes: ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'multi', 'xclient', 'ipv6', 'local', 'blocked', 'percent', 'multiline', 'slow', 'postmaster'],
    milterTimeouts: { connect: '2s', command: `${COMMAND_TIMEOUT_S}s`, content: '10s' },
  });
  await postfix.start();
}, { timeout: 60_000 });

after(async () => {
  // Postfix first (it holds milter connections), then the milter; both even if a test failed.
  try {
    await postfix?.stop();
  } finally {
    await server?.close(2000);
  }
}, { timeout: 60_000 });

function pf(): PostfixInstance {
  assert.ok(postfix, 'Postfix did not start');
  return postfix;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers.

async function connect(host: string): Promise<SmtpClient> {
  const c = await SmtpClient.connect({ host, port: pf().smtpPort, timeoutMs: 15_000 });
  assert.equal(c.greeting?.code, 220, `greeting: ${c.greeting?.raw}`);
  return c;
}

/** Commands of a session after each EOM: Postfix ends every SMTP transaction with ABORT. */
function commandsAfterEom(s: SessionRecord): Array<CommandType | undefined> {
  return s.commands.flatMap((c, i) => (c === 'eom' ? [s.commands[i + 1]] : []));
}

// ---------------------------------------------------------------------------------------------------------
// Tests.

test('mail over SMTP reaches the milter with every stage and the right values', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  let queueId: string;
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    assertReply(await c.mailFrom('a@example.test', 'BODY=8BITMIME'), 250, 'MAIL');
    assertReply(await c.rcptTo('alice@example.test'), 250, 'RCPT');
    const msg =
      'Subject: hello milter\r\nFrom: A <a@example.test>\r\nTo: alice@example.test\r\n' +
      'X-Folded: first part\r\n\tsecond part\r\n\r\n' +
      'line one\r\n.leading dot\r\n\r\nlast line\r\n';
    const { data, final } = await c.data(msg);
    assertReply(data, 354, 'DATA');
    assertReply(final, 250, 'end of data');
    queueId = queuedId(final);
    assertReply(await c.quit(), 221, 'QUIT');
  } finally {
    c.destroy();
  }

  const s = await recorder.closedSessionForClient(c.localPort, '127.0.0.1');
  assert.deepEqual(s.connect, { hostname: '[127.0.0.1]', family: '4', address: '127.0.0.1', port: c.localPort });
  assert.equal(s.helo, 'client.example.net');
  assert.equal(s.messages.length, 1);
  const m = s.messages[0];
  assert.ok(m);
  assert.equal(m.sender, '<a@example.test>');
  assert.deepEqual(m.senderArgs, ['BODY=8BITMIME']);
  assert.deepEqual(m.recipients, ['<alice@example.test>']);
  assert.equal(m.data, true);
  // The client's headers in order; Postfix's own Received is hidden, the Message-Id/Date it added come last.
  assert.deepEqual(m.headers.slice(0, 4), [
    ['Subject', 'hello milter'],
    ['From', 'A <a@example.test>'],
    ['To', 'alice@example.test'],
    ['X-Folded', 'first part\n\tsecond part'],
  ]);
  assert.deepEqual(m.headers.slice(4).map(([n]) => n), ['Message-Id', 'Date']);
  assert.ok(!m.headers.some(([n]) => n === 'Received'), 'the milter must not see Postfix’s own Received header');
  assert.equal(m.eoh, true);
  assert.equal(m.body.toString('latin1'), 'line one\r\n.leading dot\r\n\r\nlast line\r\n');
  assert.equal(m.outcome, 'accepted');
  assert.equal(m.queueId, queueId, 'the i macro at EOM is the queue ID Postfix announced');
  assert.deepEqual(s.commands, [
    'optneg', 'connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'header', 'header', 'header', 'header', 'header',
    'eoh', 'body', 'eom', 'abort', 'abort', 'quit',
  ]);
  // One reply per command that expects one: everything up to and including EOM, nothing for ABORT/QUIT.
  assert.deepEqual(s.replies.map(([stage]) => stage), s.commands.filter((c) => c !== 'abort' && c !== 'quit'));

  const [delivered] = await pf().waitForMessages('alice', 1);
  assert.ok(delivered);
  assert.deepEqual(headerValues(delivered, 'X-Test-Session'), [`${s.id} msg=1`]);
  assert.deepEqual(headerValues(delivered, 'Subject'), ['hello milter']);
  assert.deepEqual(headerValues(delivered, 'X-Folded'), ['first part\n\tsecond part']);
  assert.equal(bodyOf(delivered), 'line one\n.leading dot\n\nlast line\n');
});

test('a recipient rejected by the milter gets our reply; the others still get the message', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['bob@example.test', 'blocked@example.test', 'carol@example.test'],
      message({ Subject: 'two of three', From: 'a@example.test' }, 'hello\r\n'));
    assertReply(r.mail, 250, 'MAIL');
    assert.deepEqual(r.rcpts.map((x) => x.raw), ['250 2.1.5 Ok', '550 5.7.1 Recipient blocked by the test milter', '250 2.1.5 Ok']);
    assertReply(r.final, 250, 'end of data');
    assertReply(await c.quit(), 221, 'QUIT');
  } finally {
    c.destroy();
  }
  const s = recorder.sessionForClient(c.localPort, '127.0.0.1');
  assert.ok(s);
  // Postfix still sends the recipient after the rejected one, and the message goes on.
  assert.deepEqual(s.messages[0]?.recipients, ['<bob@example.test>', '<blocked@example.test>', '<carol@example.test>']);
  assert.equal(s.messages[0]?.outcome, 'accepted');
  assert.ok(s.replies.some(([stage, type]) => stage === 'rcpt' && type === 'replycode'));

  const [toBob] = await pf().waitForMessages('bob', 1);
  const [toCarol] = await pf().waitForMessages('carol', 1);
  assert.ok(toBob && toCarol);
  assert.deepEqual(headerValues(toBob, 'Subject'), ['two of three']);
  assert.deepEqual(headerValues(toBob, 'X-Original-To'), ['bob@example.test']);
  assert.deepEqual(headerValues(toCarol, 'X-Original-To'), ['carol@example.test']);
  assert.deepEqual(await pf().readMessages('blocked'), [], 'the blocked recipient got nothing');
});

test('a message tempfailed at end of message gets our 451 and is not delivered', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['dave@example.test'], message({ Subject: 'tempfail me' }, 'x\r\n'));
    assertReply(r.data, 354, 'DATA');
    assert.equal(r.final?.raw, '451 4.7.1 Test milter: try again later');
    assertReply(await c.quit(), 221, 'QUIT');
  } finally {
    c.destroy();
  }
  assert.equal(recorder.sessionForClient(c.localPort, '127.0.0.1')?.messages[0]?.outcome, 'tempfailed');
  assert.match(await pf().postqueue(), /Mail queue is empty/);

  // A later message to the same mailbox arrives; the tempfailed one never does.
  const c2 = await connect('127.0.0.1');
  try {
    assertReply(await c2.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c2.sendMessage('a@example.test', ['dave@example.test'], message({ Subject: 'control' }, 'x\r\n'));
    assertReply(r.final, 250, 'end of data');
    await c2.quit();
  } finally {
    c2.destroy();
  }
  const delivered = await pf().waitForMessages('dave', 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual((await pf().readMessages('dave')).map((d) => headerValues(d, 'Subject')), [['control']]);
  assert.equal(delivered.length, 1);
});

test('end-of-message changes: addHeader, changeHeader, insertHeader and replaceBody show in the delivered mail', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['erin@example.test'],
      message({ Subject: 'modify me', From: 'a@example.test', 'X-Keep': 'kept' }, 'original body\r\n'));
    assertReply(r.final, 250, 'end of data');
    await c.quit();
  } finally {
    c.destroy();
  }
  const s = recorder.sessionForClient(c.localPort, '127.0.0.1');
  assert.equal(s?.messages[0]?.outcome, 'modified');
  assert.equal(s?.messages[0]?.body.toString('latin1'), 'original body\r\n', 'the filter saw the original body');

  const [delivered] = await pf().waitForMessages('erin', 1);
  assert.ok(delivered);
  assert.deepEqual(headerValues(delivered, 'X-Test-Added'), ['added at eom']);
  assert.deepEqual(headerValues(delivered, 'Subject'), ['modified by milter']);
  assert.deepEqual(headerValues(delivered, 'X-Keep'), ['kept']);
  assert.deepEqual(headerValues(delivered, 'X-Test-Top'), ['inserted at index 0']);
  const names = parseHeaders(delivered).map(([n]) => n);
  assert.ok(names.indexOf('X-Test-Top') < names.indexOf('Received'), `X-Test-Top above Postfix's Received: ${names.join(', ')}`);
  // Added headers go to the end of the header block, in the order requested.
  assert.ok(names.indexOf('X-Test-Session') < names.indexOf('X-Test-Added'));
  assert.equal(names.at(-1), 'X-Test-Added');
  assert.equal(bodyOf(delivered), REPLACED_BODY.replace(/\r\n/g, '\n'));
});

test('several messages on one SMTP connection reuse one milter connection, each handled on its own', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  let finals: Array<string | undefined>;
  try {
    finals = await sendMultiMessageSession(c, (rcpt) => assert.equal(rcpt?.raw, '550 5.7.1 Recipient blocked by the test milter'));
  } finally {
    c.destroy();
  }
  assert.match(finals[0] ?? '', /^250 2\.0\.0 Ok: queued as /);
  assert.equal(finals[1], '451 4.7.1 Test milter: try again later');
  assert.match(finals[2] ?? '', /^250 2\.0\.0 Ok: queued as /);
  assert.equal(finals[3], '554 5.7.1 Test milter: message refused');
  assert.match(finals[4] ?? '', /^250 2\.0\.0 Ok: queued as /);

  const s = await recorder.closedSessionForClient(c.localPort, '127.0.0.1');
  assertMultiMessageRecords(s);
  assert.deepEqual(commandsAfterEom(s), ['abort', 'abort', 'abort', 'abort', 'abort'], 'Postfix sends ABORT after every message');

  const delivered = await pf().waitForMessages('multi', 3);
  await new Promise((r) => setTimeout(r, 300));
  const all = await pf().readMessages('multi');
  assert.equal(delivered.length, 3);
  assertMultiMessagesDelivered(all, s.id);
});

test('XCLIENT: Postfix reconnects to the milter with the new client address and the mail is handled', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  try {
    const ehlo = await c.ehlo('proxy.example.net');
    assertReply(ehlo, 250, 'EHLO');
    assert.ok(ehlo.lines.some((l) => l.startsWith('XCLIENT')), 'XCLIENT is offered to loopback');
    const x = await c.xclient({ ADDR: '192.0.2.77', NAME: '[UNAVAILABLE]' });
    assertReply(x, 220, 'XCLIENT');
    assertReply(await c.ehlo('behind.example.net'), 250, 'EHLO after XCLIENT');
    const r = await c.sendMessage('x@example.test', ['xclient@example.test'], message({ Subject: 'via xclient' }, 'x\r\n'));
    assertReply(r.final, 250, 'end of data');
    await c.quit();
  } finally {
    c.destroy();
  }
  const first = await waitFor('the pre-XCLIENT milter session to close', () => {
    const s = recorder.sessionForClient(c.localPort, '127.0.0.1');
    return s?.closed ? s : undefined;
  });
  assert.equal(first.helo, 'proxy.example.net');
  assert.equal(first.messages.length, 0);
  // XCLIENT resets the session: ABORT for the HELO state, QUIT, then a brand-new milter connection.
  assert.deepEqual(first.commands, ['optneg', 'connect', 'helo', 'abort', 'quit']);
  const second = [...sessions.values()].find((s) => s.connect?.address === '192.0.2.77');
  assert.ok(second, 'a second milter connection with the XCLIENT address');
  assert.notEqual(second.id, first.id);
  assert.equal(second.connect?.family, '4');
  assert.equal(second.connect?.hostname, '[192.0.2.77]');
  assert.equal(second.commands[0], 'optneg', 'the new connection starts with its own option negotiation');
  assert.equal(second.helo, 'behind.example.net');
  assert.equal(second.messages[0]?.sender, '<x@example.test>');
  assert.equal(second.messages[0]?.outcome, 'accepted');

  const [delivered] = await pf().waitForMessages('xclient', 1);
  assert.ok(delivered);
  assert.deepEqual(headerValues(delivered, 'X-Test-Session'), [`${second.id} msg=1`]);
  assert.match(headerValues(delivered, 'Received')[0] ?? '', /\[192\.0\.2\.77\]/);
});

test('an IPv6 client: the milter sees family 6 and address ::1', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('::1');
  try {
    assertReply(await c.ehlo('v6.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('v6@example.test', ['ipv6@example.test'], message({ Subject: 'over ipv6' }, 'x\r\n'));
    assertReply(r.final, 250, 'end of data');
    await c.quit();
  } finally {
    c.destroy();
  }
  assert.equal(c.localAddress, '::1');
  const s = recorder.sessionForClient(c.localPort, '::1');
  assert.ok(s, `a milter session for [::1]:${c.localPort}`);
  assert.deepEqual(s.connect, { hostname: '[::1]', family: '6', address: '::1', port: c.localPort });
  assert.equal(s.messages[0]?.outcome, 'accepted');
  const [delivered] = await pf().waitForMessages('ipv6', 1);
  assert.ok(delivered);
  assert.deepEqual(headerValues(delivered, 'X-Test-Session'), [`${s.id} msg=1`]);
});

test('a local submission with sendmail -C goes through non_smtpd_milters', { timeout: TEST_TIMEOUT_MS }, async () => {
  const r = await pf().sendmail(
    ['-f', 'local-sender@example.test', '-i', '--', 'local@example.test'],
    'Subject: local submission\nTo: local@example.test\n\nsubmitted locally\n',
  );
  assert.equal(r.code, 0, `sendmail exit ${r.code}: ${r.stderr}`);
  const [delivered] = await pf().waitForMessages('local', 1);
  assert.ok(delivered);
  const s = [...sessions.values()].find((x) => x.messages[0]?.sender === 'local-sender@example.test');
  assert.ok(s, 'a milter session for the local submission');
  assert.deepEqual(s.connect, { hostname: 'localhost', family: '4', address: '127.0.0.1', port: 0 });
  assert.equal(s.helo, 'localhost');
  assert.deepEqual(s.messages[0]?.recipients, ['local@example.test'], 'recipients come without brackets');
  assert.equal(s.messages[0]?.body.toString('latin1'), 'submitted locally\r\n');
  assert.equal(s.messages[0]?.outcome, 'accepted');
  await waitFor('the local session to end', () => s.closed);
  assert.ok(!s.commands.includes('abort'), `no ABORT for a local submission: ${s.commands.join(' ')}`);
  assert.equal(s.commands.at(-1), 'quit');
  assert.deepEqual(headerValues(delivered, 'X-Test-Session'), [`${s.id} msg=1`]);
  assert.deepEqual(headerValues(delivered, 'Subject'), ['local submission']);
});

test('a % in the reply text reaches the SMTP client literally', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    assertReply(await c.mailFrom('a@example.test'), 250, 'MAIL');
    const reply = await c.rcptTo('percent@example.test');
    assert.equal(reply.raw, '550 5.7.1 We are 100% sure (50%% off)');
    await c.quit();
  } finally {
    c.destroy();
  }
});

test('a multi-line reply from the milter reaches the client as a multi-line SMTP reply', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('127.0.0.1');
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    assertReply(await c.mailFrom('a@example.test'), 250, 'MAIL');
    const reply = await c.rcptTo('multiline@example.test');
    assert.equal(reply.raw, '550-5.7.1 first line\n550 5.7.1 second line');
    await c.quit();
  } finally {
    c.destroy();
  }
});

test('progress packets keep Postfix waiting for a hook slower than milter_command_timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.equal(await pf().postconf('milter_command_timeout'), `${COMMAND_TIMEOUT_S}s`);
  const c = await connect('127.0.0.1');
  let elapsed: number;
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    assertReply(await c.mailFrom('a@example.test'), 250, 'MAIL');
    const t0 = Date.now();
    const reply = await c.rcptTo('slow@example.test');
    elapsed = Date.now() - t0;
    assert.equal(reply.raw, '250 2.1.5 Ok');
    const { final } = await c.data(message({ Subject: 'slow recipient' }, 'x\r\n'));
    assertReply(final, 250, 'end of data');
    await c.quit();
  } finally {
    c.destroy();
  }
  assert.ok(elapsed >= SLOW_HOOK_MS - 100 && elapsed > COMMAND_TIMEOUT_S * 1000, `RCPT took ${elapsed} ms`);
  const s = recorder.sessionForClient(c.localPort, '127.0.0.1');
  assert.ok(s);
  const rcptReplies = s.replies.filter(([stage]) => stage === 'rcpt').map(([, type]) => type);
  assert.ok(rcptReplies.filter((t) => t === 'progress').length >= 4, `replies at RCPT: ${rcptReplies.join(' ')}`);
  assert.equal(rcptReplies.at(-1), 'continue');
  const [delivered] = await pf().waitForMessages('slow', 1);
  assert.deepEqual(headerValues(delivered ?? '', 'Subject'), ['slow recipient']);
});

test('a message over 64 KiB: body chunks arrive complete, a large replacement body and 8-bit header bytes survive', { timeout: TEST_TIMEOUT_MS }, async () => {
  const eightBit = Buffer.from('caf\u00e9 \u20ac 100%', 'utf8').toString('latin1');
  const c = await connect('127.0.0.1');
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['frank@example.test'], message({ Subject: 'big', 'X-Echo-Me': eightBit }, BIG_BODY));
    assertReply(r.final, 250, 'end of data');
    await c.quit();
  } finally {
    c.destroy();
  }
  const s = recorder.sessionForClient(c.localPort, '127.0.0.1');
  const m = s?.messages[0];
  assert.ok(s && m);
  assert.ok(Buffer.byteLength(BIG_BODY) > 3 * 65535);
  assert.equal(m.body.toString('latin1'), BIG_BODY, 'every body chunk arrived, in order');
  assert.ok(s.commands.filter((x) => x === 'body').length >= 4, 'Postfix split the body into several BODY packets');
  assert.deepEqual(m.headers.find(([n]) => n === 'X-Echo-Me'), ['X-Echo-Me', eightBit]);

  const [delivered] = await pf().waitForMessages('frank', 1);
  assert.ok(delivered);
  assert.ok(BIG_REPLACEMENT.length > 2 * 65535);
  assert.equal(bodyOf(delivered), BIG_REPLACEMENT.toString('latin1').replace(/\r\n/g, '\n'));
  assert.deepEqual(headerValues(delivered, 'X-Echoed'), [eightBit]);
  assert.deepEqual(headerValues(delivered, 'X-Echo-Me'), [eightBit]);
});

test('Postfix logged no milter failure and the package reported no protocol or hook errors', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.deepEqual(protocolErrors, []);
  assert.deepEqual(hookErrors, []);
  const log = await pf().maillog();
  const problems = log.split('\n').filter((l) => /milter/i.test(l) && /warning|error|fatal|panic/i.test(l));
  assert.deepEqual(problems, []);
  assert.doesNotMatch(log, /4\.7\.1 Service unavailable|4\.3\.5 Server configuration problem/);
});
