// End-to-end: the protocol package behind a real Sendmail 8.17 (Debian's, unpacked privately, never installed)
// on loopback. A recording test filter runs in this process; the tests talk SMTP to Sendmail and check its
// replies, what the filter saw (macros as Sendmail sends them) and the delivered files.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { MilterServer, Verdict } from '@postfix-milter-ts/protocol';
import { bodyOf, headerValues } from '../harness/delivered-message.js';
import { freeLoopbackPort } from '../harness/free-port.js';
import { rawMessage as message } from '../harness/mail-builder.js';
import { assertMultiMessageRecords, assertMultiMessagesDelivered, sendMultiMessageSession } from '../harness/multi-message-session.js';
import { RecordingFilter, subjectOf } from '../harness/recording-filter.js';
import { SendmailInstance } from '../harness/sendmail-instance.js';
import { SmtpClient, type SmtpReply } from '../harness/smtp-client.js';
import { acceptedId, assertReply } from '../harness/smtp-replies.js';
import { waitFor } from '../harness/wait-for.js';

const DOMAIN = 'example.test';
/** The INPUT_MAIL_FILTER name the harness gives our milter. */
const MILTER = 'pmts';
const TEST_TIMEOUT_MS = 30_000;

// Sendmail's per-read milter timeout (T=R:) for this instance; the slow hooks take longer.
const READ_TIMEOUT_S = 2;
const SLOW_HOOK_MS = 3500;
const PROGRESS_INTERVAL_MS = 500;

// What the filter saw (macros as Sendmail sends them), per milter connection; its answers beyond the shared
// ones (see recording-filter.ts). No DATA or EOH hooks: Sendmail is asked for neither.
const recorder = new RecordingFilter({
  recipientVerdict(local) {
    // Slower than T=R: Sendmail takes no progress before EOM, so it gives up on the milter.
    if (local === 'slowrcpt') return new Promise<Verdict>((resolve) => setTimeout(() => resolve(Verdict.continue), SLOW_HOOK_MS));
    return undefined;
  },
  // Slower than T=R: only the session's progress packets keep Sendmail waiting.
  async eomWait(m) {
    if (subjectOf(m) === 'slow eom') await new Promise((r) => setTimeout(r, SLOW_HOOK_MS));
  },
});
const { sessions, protocolErrors, hookErrors } = recorder;

// ---------------------------------------------------------------------------------------------------------
// Fixture: one milter server and one Sendmail for the whole file.

let server: MilterServer<undefined> | undefined;
let sendmail: SendmailInstance | undefined;

before(async () => {
  server = new MilterServer(recorder.filter, { progressIntervalMs: PROGRESS_INTERVAL_MS, observer: recorder.observer });
  const milter = await server.listen('inet:127.0.0.1:0');
  sendmail = new SendmailInstance({
    milter,
    domain: DOMAIN,
    milterTimeouts: { connect: '2s', send: '5s', read: `${READ_TIMEOUT_S}s`, eom: '20s' },
  });
  const t0 = Date.now();
  await sendmail.start();
  // Shows in the test output: the first run downloads the .debs, later runs reuse them.
  console.log(`# Sendmail started in ${Date.now() - t0} ms`);
}, { timeout: 120_000 });

after(async () => {
  // Sendmail first (it holds milter connections), then the milter; both even if a test failed.
  try {
    await sendmail?.stop();
  } finally {
    await server?.close(2000);
  }
}, { timeout: 60_000 });

function sm(): SendmailInstance {
  assert.ok(sendmail, 'Sendmail did not start');
  return sendmail;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers.

async function connect(host = '127.0.0.1'): Promise<SmtpClient> {
  const c = await SmtpClient.connect({ host, port: sm().smtpPort, timeoutMs: 25_000 });
  assert.equal(c.greeting?.code, 220, `greeting: ${c.greeting?.raw}`);
  return c;
}

/** Lets a background delivery that should not happen get the chance to, before asserting it did not. */
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 500));
}

// ---------------------------------------------------------------------------------------------------------
// Tests.

test('mail reaches the milter with Sendmail\'s macros and values, and the header it adds is delivered', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  let queueId: string;
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    assertReply(await c.mailFrom('a@example.test', 'BODY=8BITMIME'), 250, 'MAIL');
    assertReply(await c.rcptTo('alice@example.test'), 250, 'RCPT');
    const { final } = await c.data(
      'Subject: hello milter\r\nFrom: A <a@example.test>\r\nTo: alice@example.test\r\n\r\nline one\r\n.leading dot\r\n\r\nlast line\r\n',
    );
    queueId = acceptedId(final);
    assertReply(await c.quit(), 221, 'QUIT');
  } finally {
    c.destroy();
  }

  const s = await recorder.closedSessionForClient(c.localPort);
  assert.deepEqual(s.connect, { hostname: sm().loopbackName, family: '4', address: '127.0.0.1', port: c.localPort });
  assert.equal(s.mta, 'sendmail', 'the session recognised Sendmail (from the v macro)');
  const cm = s.connectMacros ?? {};
  assert.match(cm['v'] ?? '', /^8\.1[4-9]\.\d+/, 'v is the bare Sendmail version');
  assert.equal(cm['{daemon_name}'], sm().daemonNames.v4);
  assert.equal(cm['j'], sm().mtaName);
  assert.equal(cm['{client_addr}'], '127.0.0.1');
  assert.equal(cm['{client_port}'], String(c.localPort));
  assert.equal(cm['_'], `${sm().loopbackName} [127.0.0.1]`);
  // Sendmail leaves {if_addr} undefined on loopback, and undefined macros are not sent.
  assert.equal(cm['{if_addr}'], undefined);
  assert.equal(s.helo, 'client.example.net');

  const m = s.messages[0];
  assert.ok(m);
  assert.equal(s.messages.length, 1);
  // Sendmail sends ESMTP parameters after the sender, like Postfix.
  assert.equal(m.sender, '<a@example.test>');
  assert.deepEqual(m.senderArgs, ['BODY=8BITMIME']);
  assert.deepEqual(m.recipients, ['<alice@example.test>']);
  assert.equal(m.macros.envfrom?.['i'], queueId, 'the queue ID is known from MAIL on');
  assert.equal(m.macros.envfrom?.['{auth_authen}'], undefined, 'no AUTH, no {auth_authen}');
  assert.equal(m.macros.envfrom?.['{mail_mailer}'], 'local');
  assert.equal(m.macros.envrcpt[0]?.['{rcpt_mailer}'], 'local');
  assert.equal(m.macros.envrcpt[0]?.['{rcpt_addr}'], 'alice');
  assert.equal(m.macros.eom?.['i'], queueId);
  assert.match(m.macros.eom?.['{msg_id}'] ?? '', new RegExp(`^<\\d+\\.${queueId}@${sm().mtaName.replace(/\./g, '\\.')}>$`));
  assert.deepEqual(m.headers.slice(0, 3), [
    ['Subject', 'hello milter'],
    ['From', 'A <a@example.test>'],
    ['To', 'alice@example.test'],
  ]);
  assert.equal(m.body.toString('latin1'), 'line one\r\n.leading dot\r\n\r\nlast line\r\n', 'dot-unstuffed, CRLF');
  assert.equal(m.outcome, 'accepted');

  const [delivered] = await sm().waitForMessages('alice', 1);
  assert.ok(delivered);
  assert.deepEqual(headerValues(delivered, 'X-Test-Session'), [`${s.id} msg=1`]);
  assert.deepEqual(headerValues(delivered, 'Subject'), ['hello milter']);
  assert.match(headerValues(delivered, 'Received')[0] ?? '', new RegExp(`with ESMTP id ${queueId}`));
  assert.equal(bodyOf(delivered), 'line one\n.leading dot\n\nlast line\n');
});

test('a recipient the milter refuses gets 550 5.7.1 with our text; the other recipient is delivered', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['bob@example.test', 'blocked@example.test'], message({ Subject: 'one refused' }, 'x\r\n'));
    assertReply(r.rcpts[0], 250, 'RCPT bob');
    // Sendmail puts the recipient in front of our text.
    assert.equal(r.rcpts[1]?.raw, '550 5.7.1 <blocked@example.test>... Recipient blocked by the test milter');
    acceptedId(r.final);
    await c.quit();
  } finally {
    c.destroy();
  }
  const s = await recorder.closedSessionForClient(c.localPort);
  assert.deepEqual(s.messages[0]?.recipients, ['<bob@example.test>', '<blocked@example.test>']);
  const [toBob] = await sm().waitForMessages('bob', 1);
  assert.deepEqual(headerValues(toBob ?? '', 'Subject'), ['one refused']);
  await settle();
  assert.deepEqual(await sm().readMessages('blocked'), [], 'the refused recipient got nothing');
});

test('a message tempfailed at end of message gets our 451 and is neither delivered nor queued', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['carol@example.test'], message({ Subject: 'tempfail me' }, 'x\r\n'));
    assertReply(r.data, 354, 'DATA');
    assert.equal(r.final?.raw, '451 4.7.1 Test milter: try again later');
    assertReply(await c.quit(), 221, 'QUIT');
  } finally {
    c.destroy();
  }
  assert.equal(recorder.sessionForClient(c.localPort)?.messages[0]?.outcome, 'tempfailed');
  await settle();
  assert.deepEqual(await sm().readMessages('carol'), []);
  assert.match(await sm().mailq(), /queue is empty/);
});

test('a message rejected at end of message gets our 554 and is not delivered', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['dave@example.test'], message({ Subject: 'reject me' }, 'x\r\n'));
    assert.equal(r.final?.raw, '554 5.7.1 Test milter: message refused');
    assertReply(await c.quit(), 221, 'QUIT');
  } finally {
    c.destroy();
  }
  assert.equal(recorder.sessionForClient(c.localPort)?.messages[0]?.outcome, 'rejected');
  await settle();
  assert.deepEqual(await sm().readMessages('dave'), []);
  assert.match(await sm().mailq(), /queue is empty/);
});

test('several messages on one SMTP connection share one milter connection, each handled on its own', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  let finals: Array<string | undefined>;
  try {
    finals = await sendMultiMessageSession(c, (rcpt) => assert.equal(rcpt?.code, 550));
  } finally {
    c.destroy();
  }
  const ids = [finals[0], finals[2], finals[4]].map((f) => acceptedId({ code: 250, lines: [], raw: f ?? '' }));
  assert.equal(new Set(ids).size, 3, 'each accepted message has its own queue ID');
  assert.equal(finals[1], '451 4.7.1 Test milter: try again later');
  assert.equal(finals[3], '554 5.7.1 Test milter: message refused');

  const s = await recorder.closedSessionForClient(c.localPort);
  assertMultiMessageRecords(s);
  // Each message has its own queue ID in the i macro.
  assert.deepEqual([s.messages[0], s.messages[2], s.messages[5]].map((m) => m?.macros.eom?.['i']), ids);
  // Unlike Postfix, Sendmail sends no ABORT after a finished message, only for one it drops (here at RSET);
  // DATA and EOH are absent because the filter has no hooks for them (negotiated away).
  const oneMessage = ['mail', 'rcpt', 'header', 'body', 'eom'];
  assert.deepEqual(s.commands, ['optneg', 'connect', 'helo', ...oneMessage, ...oneMessage, ...oneMessage, 'mail', 'rcpt', 'abort', ...oneMessage, ...oneMessage, 'quit']);

  const delivered = await sm().waitForMessages('multi', 3);
  await settle();
  assert.equal((await sm().readMessages('multi')).length, 3);
  assertMultiMessagesDelivered(delivered, s.id);
});

test('progress packets at end of message keep Sendmail waiting for a hook slower than its read timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  let elapsed: number;
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const t0 = Date.now();
    const r = await c.sendMessage('a@example.test', ['slow@example.test'], message({ Subject: 'slow eom' }, 'x\r\n'));
    elapsed = Date.now() - t0;
    acceptedId(r.final);
    await c.quit();
  } finally {
    c.destroy();
  }
  assert.ok(elapsed >= SLOW_HOOK_MS - 100 && elapsed > READ_TIMEOUT_S * 1000, `the transaction took ${elapsed} ms`);
  const s = await recorder.closedSessionForClient(c.localPort);
  const eomReplies = s.replies.filter(([stage]) => stage === 'eom').map(([, type]) => type);
  assert.ok(eomReplies.filter((t) => t === 'progress').length >= 4, `replies at EOM: ${eomReplies.join(' ')}`);
  assert.equal(eomReplies.at(-1), 'continue');
  const [delivered] = await sm().waitForMessages('slow', 1);
  assert.deepEqual(headerValues(delivered ?? '', 'X-Test-Session'), [`${s.id} msg=1`]);
});

test('before end of message no progress is sent: a hook slower than the read timeout makes Sendmail give up (F=T: 4xx)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  let rcpt: SmtpReply;
  let elapsed: number;
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    assertReply(await c.mailFrom('a@example.test'), 250, 'MAIL');
    const t0 = Date.now();
    rcpt = await c.rcptTo('slowrcpt@example.test');
    elapsed = Date.now() - t0;
    await c.quit();
  } finally {
    c.destroy();
  }
  // Sendmail's own text for F=T, not ours: the milter never answered.
  assert.equal(rcpt.raw, '451 4.3.2 Please try again later');
  assert.ok(elapsed >= READ_TIMEOUT_S * 1000 - 100 && elapsed < SLOW_HOOK_MS, `RCPT took ${elapsed} ms`);
  const s = recorder.sessionForClient(c.localPort);
  assert.ok(s);
  assert.deepEqual(s.replies.filter(([stage, type]) => stage === 'rcpt' && type === 'progress'), [], 'no progress packet before EOM');
  assert.match(await sm().debugLog(), new RegExp(`^milter_read\\(${MILTER}\\): timeout, where=rcpt$`, 'm'), 'Sendmail logged the milter timeout');
});

test('an IPv6 client: family 6, and Sendmail writes the address in full with its IPv6: prefix', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect('::1');
  try {
    assertReply(await c.ehlo('v6.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('v6@example.test', ['ipv6@example.test'], message({ Subject: 'over ipv6' }, 'x\r\n'));
    acceptedId(r.final);
    await c.quit();
  } finally {
    c.destroy();
  }
  assert.equal(c.localAddress, '::1');
  const s = await recorder.closedSessionForClient(c.localPort);
  // Debian's Sendmail is built with IPV6_FULL: no `::` compression (Postfix sends `::1`).
  // Sendmail writes every group; the session gives the address in its compressed form, as Postfix does.
  assert.deepEqual(s.connect, { hostname: sm().loopbackName, family: '6', address: '::1', port: c.localPort });
  assert.equal(net.isIPv6(s.connect?.address ?? ''), true);
  assert.equal(s.connectMacros?.['{client_addr}'], 'IPv6:0:0:0:0:0:0:0:1');
  assert.equal(s.connectMacros?.['{daemon_name}'], sm().daemonNames.v6);
  const [delivered] = await sm().waitForMessages('ipv6', 1);
  assert.deepEqual(headerValues(delivered ?? '', 'X-Test-Session'), [`${s.id} msg=1`]);
});

test('mail for another domain is relayed through SMART_HOST to the sink, with the milter\'s header', { timeout: TEST_TIMEOUT_MS }, async () => {
  const c = await connect();
  try {
    assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
    const r = await c.sendMessage('a@example.test', ['someone@remote.example.net'], message({ Subject: 'relayed' }, 'x\r\n'));
    acceptedId(r.final);
    await c.quit();
  } finally {
    c.destroy();
  }
  const s = await recorder.closedSessionForClient(c.localPort);
  assert.equal(s.messages[0]?.macros.envrcpt[0]?.['{rcpt_mailer}'], 'esmtp');
  assert.equal(s.messages[0]?.macros.envrcpt[0]?.['{rcpt_host}'], '[127.0.0.1]');
  const relayed = await waitFor(
    'the relayed message at the sink',
    async () => (await sm().readRelayed()).find((m) => m.recipients.includes('someone@remote.example.net')),
    10_000,
  );
  assert.deepEqual(headerValues(relayed.message.replace(/\r\n/g, '\n'), 'X-Test-Session'), [`${s.id} msg=1`]);
});

test('with the milter down, F=T makes Sendmail tempfail the connection (451 4.3.2)', { timeout: TEST_TIMEOUT_MS }, async () => {
  // A port nothing listens on: bound then closed.
  const deadPort = await freeLoopbackPort();
  const down = new SendmailInstance({ milter: `inet:127.0.0.1:${deadPort}`, domain: DOMAIN, ipv6: false });
  try {
    await down.start();
    const c = await SmtpClient.connect({ host: '127.0.0.1', port: down.smtpPort, timeoutMs: 15_000 });
    try {
      // Sendmail still greets; the refusal comes with the first command that would need the milter.
      assertReply(await c.ehlo('client.example.net'), 250, 'EHLO');
      const mail = await c.mailFrom('a@example.test');
      assert.equal(mail.raw, '451 4.3.2 Please try again later');
      await c.quit();
    } finally {
      c.destroy();
    }
    assert.match(await down.debugLog(), new RegExp(`^milter_open \\(${MILTER}\\): open 127\\.0\\.0\\.1 failed: Connection refused`, 'm'));
  } finally {
    await down.stop();
  }
});

test('the package reported no protocol or hook errors; Sendmail logged no milter error but the deliberate timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.deepEqual(protocolErrors, []);
  assert.deepEqual(hookErrors, []);
  const problems = (await sm().debugLog()).split('\n').filter((l) => /error|timeout|fail|abort|unknown/i.test(l));
  assert.deepEqual(problems, [`milter_read(${MILTER}): timeout, where=rcpt`]);
  // Every milter connection was closed by Sendmail's QUIT, none by an error (the slow-RCPT one aside).
  const slow = [...sessions.values()].filter((s) => s.messages.some((m) => m.recipients.includes('<slowrcpt@example.test>')));
  for (const s of sessions.values()) {
    if (slow.includes(s)) continue;
    assert.equal(s.commands.at(-1), 'quit', `session ${s.id}: ${s.commands.join(' ')}`);
  }
});
