// Issue #3 end to end: the product (`serve` as a child process) behind a real private Postfix whose own relay
// restrictions are relaxed (`check_client_access static:OK` passes every client, foreign mail goes to the
// discard transport, unknown local parts are not refused), so the milter alone decides who may relay.
//   - untrusted clients (XCLIENT ADDR=192.0.2.x from the trusted loopback) are refused every relay form of
//     ../shared/peers.md §4.1 (R1–R13, OURS = example.test, [OURIP] = [127.0.0.1]) and the extra variants,
//     and get 250 for our domain; for each form the test records who refused it (Postfix or the milter);
//   - the trusted client (127.0.0.1 itself) and a client that really logged in with AUTH PLAIN against
//     Postfix's Cyrus SASL (so `{auth_authen}` reaches the milter) may relay; a failed login may not;
//   - the null-sender rule (a second recipient is refused) and the spoofed-sender rule (our domain as sender
//     from an untrusted client refuses the message at every RCPT, accepted once authenticated);
//   - a message rate limit (3 per 3 s for untrusted clients) answers 451 4.7.1 and recovers after the window.
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import { ClamdInstance } from '../harness/clamd-instance.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { SaslDatabase } from '../harness/sasl.js';
import { SmtpClient, type SmtpReply } from '../harness/smtp-client.js';

const OURS = 'example.test';
const OURIP = '[127.0.0.1]';
const U = 'victim';
const EXT = 'elsewhere.example';
const SASL_USER = 'alice';
const SASL_PASSWORD = 'correct horse battery staple';
const RATE_LIMIT = 3;
const RATE_WINDOW_MS = 3000;

/** ../shared/peers.md §4.1 RCPT TO forms R1–R13, as typed between the angle brackets. */
const RELAY_FORMS: readonly (readonly [string, string])[] = [
  ['R1', `${U}@${EXT}`],
  ['R2', `${U}%${EXT}@${OURIP}`],
  ['R3', `${U}%${EXT}@${OURS}`],
  ['R4', `"${U}@${EXT}"`],
  ['R5', `"${U}%${EXT}"`],
  ['R6', `${U}@${EXT}@${OURIP}`],
  ['R7', `"${U}@${EXT}"@${OURIP}`],
  ['R8', `${U}@${EXT}@${OURS}`],
  ['R9', `@${OURIP}:${U}@${EXT}`],
  ['R10', `@${OURS}:${U}@${EXT}`],
  ['R11', `${EXT}!${U}`],
  ['R12', `${EXT}!${U}@${OURIP}`],
  ['R13', `${EXT}!${U}@${OURS}`],
];

/** §4.1 "extra variants a filter should normalise". */
const EXTRA_FORMS: readonly (readonly [string, string])[] = [
  ['X-multihop', `@${OURS},@${OURIP}:${U}@${EXT}`],
  ['X-percent-local-hop', `${U}%${EXT}%${OURS}@${OURS}`],
  ['X-escaped-quoted', `"${U}\\@${EXT}"@${OURS}`],
  ['X-escaped-at', `${U}\\@${EXT}@${OURS}`],
  ['X-trailing-dot', `${U}@${EXT}.`],
  ['X-mixed-case', `${U}@ElseWhere.EXAMPLE`],
  ['X-foreign-literal', `${U}@[203.0.113.5]`],
  ['X-foreign-ipv6-literal', `${U}@[IPv6:2001:db8::5]`],
  ['X-null-domain', `${U}@`],
  ['X-unqualified', U],
];

/** An internationalised domain of ours, written in Unicode in the config (stored as xn--bcher-kva.test). */
const IDN = 'bücher.test';
/** What an SMTP client puts on the wire for `text`: UTF-8 bytes (the client writes one byte per character). */
const utf8Wire = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

const OUR_RECIPIENTS = ['alice@example.test', 'bob@example.test', 'alice@EXAMPLE.Test'];

let clamd: ClamdInstance | undefined;
let sasl: SaslDatabase | undefined;
let gateway: GatewayProcess | undefined;
let postfix: PostfixInstance | undefined;
/** A second Postfix in front of the same gateway, with Postfix's own unknown-recipient check left on. */
let strictPostfix: PostfixInstance | undefined;

function gw(): GatewayProcess {
  assert.ok(gateway, 'the gateway is running');
  return gateway;
}

function pf(): PostfixInstance {
  assert.ok(postfix, 'Postfix is running');
  return postfix;
}

before(async () => {
  clamd = await ClamdInstance.start();
  sasl = await SaslDatabase.create({ realm: OURS, users: [{ user: SASL_USER, password: SASL_PASSWORD }] });
  gateway = await GatewayProcess.start({
    config: `
milter:
  listen: inet:127.0.0.1:0
relay:
  localDomains: [${OURS}, ${IDN}]
rateLimit:
  untrusted:
    messages: { limit: ${RATE_LIMIT}, window: ${RATE_WINDOW_MS / 1000}s }
clamav:
  endpoints: [${clamd.unixEndpoint}]
metrics:
  port: 0
`,
  });
  postfix = new PostfixInstance({
    milter: gateway.milterAddress,
    mailboxes: ['alice', 'bob'],
    mainCf: {
      // Postfix lets everything through; the milter alone decides.
      smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination',
      default_transport: 'discard',
      relay_transport: 'discard',
      // Without this Postfix refuses `u%ext@ours`-style local parts as unknown users before the milter sees them.
      smtpd_reject_unlisted_recipient: 'no',
      ...sasl.mainCf,
    },
  });
  await postfix.start();
  await sasl.installInto(postfix);
});

after(async () => {
  await strictPostfix?.stop();
  await postfix?.stop();
  await gateway?.stop();
  await clamd?.destroy();
  await sasl?.destroy();
});

function message(subject: string, to = 'alice@example.test'): string {
  return `From: sender@example.org\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W+/g, '-')}.${Date.now()}@example.org>\r\n\r\nHello.\r\n`;
}

/** A session from 127.0.0.1; with `asClient`, Postfix is told (XCLIENT) that the client is that address. */
async function connect(asClient?: string, port = pf().smtpPort): Promise<SmtpClient> {
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port });
  const ehlo = await smtp.ehlo('client.example.org');
  assert.equal(ehlo.code, 250, ehlo.raw);
  if (asClient !== undefined) {
    const x = await smtp.xclient({ ADDR: asClient, NAME: '[UNAVAILABLE]' });
    assert.equal(x.code, 220, x.raw);
    assert.equal((await smtp.ehlo('client.example.org')).code, 250);
  }
  return smtp;
}

interface FormResult {
  readonly id: string;
  readonly form: string;
  readonly reply: SmtpReply;
  /** The milter's rule when the milter refused it; undefined when it never reached the milter or passed. */
  readonly milterRule: string | undefined;
}

/**
 * One session (as `asClient` via XCLIENT, or as 127.0.0.1 itself), `prepare` (e.g. AUTH), one MAIL, each form as
 * a RCPT, QUIT; then every refusal is attributed from the gateway's log. Postfix sends the milter ABORT for an
 * unfinished transaction only with its next command (ABORT has no reply, so it stays in Postfix's buffer on
 * RSET), so QUIT is the barrier: after it the milter logs the transaction, after its per-recipient lines.
 */
async function tryRecipients(
  asClient: string | undefined,
  forms: readonly (readonly [string, string])[],
  options: { readonly sender?: string; readonly prepare?: (smtp: SmtpClient) => Promise<void>; readonly port?: number } = {},
): Promise<FormResult[]> {
  const smtp = await connect(asClient, options.port);
  const from = gw().logs.length;
  const replies: SmtpReply[] = [];
  try {
    await options.prepare?.(smtp);
    const mail = await smtp.mailFrom(options.sender ?? 'sender@example.org');
    assert.equal(mail.code, 250, mail.raw);
    for (const [, form] of forms) replies.push(await smtp.command(`RCPT TO:<${form}>`));
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
  if (replies.some((r) => r.code >= 400)) {
    // No such line when Postfix itself refused every form (the milter saw nothing to refuse).
    await gw()
      .waitForLog((l) => l.msg === 'message' && l['verdict'] === 'refused-envelope', 5000, from)
      .catch(() => undefined);
  }
  const refusals = gw().logs.slice(from).filter((l) => l.msg.startsWith('refused at rcpt'));
  return forms.map(([id, form], i) => {
    const line = refusals.find((l) => l['stage'] === `rcpt <${form}>`);
    return { id, form, reply: replies[i] as SmtpReply, milterRule: line === undefined ? undefined : String(line['rule']) };
  });
}

function table(results: readonly FormResult[]): string {
  return results
    .map((r) => `${r.id.padEnd(24)} <${r.form}>`.padEnd(72) + ` → ${r.reply.raw.split('\n')[0]}  [${r.milterRule !== undefined ? `milter: ${r.milterRule}` : r.reply.code >= 400 ? 'Postfix' : 'accepted'}]`)
    .join('\n');
}

function logTable(t: TestContext, title: string, results: readonly FormResult[]): void {
  t.diagnostic(`${title}\n${table(results)}`);
}

test('an untrusted client is refused every relay form (R1–R13 and the extras) and gets 250 for our domain', async (t) => {
  const results = await tryRecipients('192.0.2.10', [...RELAY_FORMS, ...EXTRA_FORMS, ...OUR_RECIPIENTS.map((r, i) => [`ours-${i + 1}`, r] as const)]);
  logTable(t, 'untrusted client 192.0.2.10 (XCLIENT)', results);
  for (const r of results) {
    if (r.id.startsWith('ours-')) {
      assert.equal(r.reply.code, 250, `${r.id} <${r.form}>: ${r.reply.raw}`);
      assert.equal(r.milterRule, undefined);
      continue;
    }
    // Never 2xx for a relay form, whoever refuses it; and refused for good (5xx), not "try later".
    assert.ok(r.reply.code >= 500 && r.reply.code < 600, `${r.id} <${r.form}> was not refused: ${r.reply.raw}`);
    if (r.milterRule !== undefined) assert.match(r.reply.raw, /^554 5\.7\.1 Relay access denied: /, `${r.id}: ${r.reply.raw}`);
  }
  // With these Postfix settings every R1–R13 form reaches the milter, and the milter refuses each, naming the trick.
  const rules = Object.fromEntries(results.filter((r) => /^R\d+$/.test(r.id)).map((r) => [r.id, r.milterRule ?? `Postfix: ${r.reply.raw}`]));
  assert.deepEqual(rules, {
    R1: 'relay-denied',
    R2: 'percent-hack',
    R3: 'percent-hack',
    R4: 'quoted-routing',
    R5: 'quoted-routing',
    R6: 'multiple-at',
    R7: 'quoted-routing',
    R8: 'multiple-at',
    R9: 'source-route',
    R10: 'source-route',
    R11: 'bang-path',
    R12: 'bang-path',
    R13: 'bang-path',
  });
});

test('with Postfix\'s own unknown-recipient check on (its default), Postfix refuses R3, R8 and R13 first; no relay form gets 250', async (t) => {
  strictPostfix = new PostfixInstance({
    milter: gw().milterAddress,
    mailboxes: ['alice', 'bob'],
    mainCf: { smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination', default_transport: 'discard', relay_transport: 'discard' },
  });
  await strictPostfix.start();
  const results = await tryRecipients('192.0.2.13', RELAY_FORMS, { port: strictPostfix.smtpPort });
  logTable(t, 'untrusted client 192.0.2.13 (XCLIENT), smtpd_reject_unlisted_recipient = yes', results);
  for (const r of results) assert.ok(r.reply.code >= 500 && r.reply.code < 600, `${r.id} <${r.form}> was not refused: ${r.reply.raw}`);
  // The forms whose final domain is ours (virtual_mailbox_domains) name no known mailbox: Postfix refuses them
  // before the milter is asked. Every other form reaches the milter, which refuses it.
  const refusedBy = Object.fromEntries(results.map((r) => [r.id, r.milterRule === undefined ? `Postfix ${r.reply.raw.slice(0, 9)}` : 'milter']));
  assert.deepEqual(refusedBy, {
    R1: 'milter',
    R2: 'milter',
    R3: 'Postfix 550 5.1.1',
    R4: 'milter',
    R5: 'milter',
    R6: 'milter',
    R7: 'milter',
    R8: 'Postfix 550 5.1.1',
    R9: 'milter',
    R10: 'milter',
    R11: 'milter',
    R12: 'milter',
    R13: 'Postfix 550 5.1.1',
  });
  await strictPostfix.stop();
  strictPostfix = undefined;
});

test('the refused recipients of an untrusted client do not spoil the message: it goes to our recipient', async () => {
  const smtp = await connect('192.0.2.12');
  try {
    const before = (await pf().readMessages('bob')).length;
    const from = gw().logs.length;
    const sent = await smtp.sendMessage('sender@example.org', [`${U}@${EXT}`, 'bob@example.test', `${U}%${EXT}@${OURS}`], message('mixed recipients', 'bob@example.test'));
    assert.equal(sent.rcpts[0]?.code, 554, sent.rcpts[0]?.raw);
    assert.equal(sent.rcpts[1]?.code, 250, sent.rcpts[1]?.raw);
    assert.equal(sent.rcpts[2]?.code, 554, sent.rcpts[2]?.raw);
    assert.equal(sent.final?.code, 250, JSON.stringify(sent));
    await pf().waitForMessages('bob', before + 1);
    const line = await gw().waitForLog((l) => l.msg === 'message' && l['verdict'] === 'accepted', 10_000, from);
    assert.equal(line['client'], '192.0.2.12');
    assert.equal(line['recipients'], 1);
    assert.equal(line['refusedRecipients'], 2);
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
});

test('R14 (our own IP literal) from an untrusted client: ours, not a relay (recorded)', async (t) => {
  const [r14] = await tryRecipients('192.0.2.11', [['R14', `${U}@${OURIP}`]]);
  assert.ok(r14);
  logTable(t, 'untrusted client 192.0.2.11 (XCLIENT)', [r14]);
  // [127.0.0.1] is the address the client connected to ({daemon_addr}): the milter counts its literal as ours,
  // as Postfix's resolver counts literals of its inet_interfaces as local; delivery there is not a relay.
  assert.equal(r14.milterRule, undefined, r14.reply.raw);
});

test('the trusted client (127.0.0.1, no XCLIENT) may relay: 250 at RCPT and at end of DATA', async (t) => {
  const results = await tryRecipients(undefined, RELAY_FORMS);
  logTable(t, 'trusted client 127.0.0.1', results);
  for (const r of results) assert.equal(r.milterRule, undefined, `the milter refused ${r.id} <${r.form}> for a trusted client: ${r.reply.raw}`);
  assert.equal(results[0]?.reply.code, 250, results[0]?.reply.raw);

  const smtp = await connect();
  try {
    const from = gw().logs.length;
    const sent = await smtp.sendMessage('sender@example.org', [`${U}@${EXT}`], message('trusted relay', `${U}@${EXT}`));
    assert.equal(sent.rcpts[0]?.code, 250, sent.rcpts[0]?.raw);
    assert.equal(sent.final?.code, 250, JSON.stringify(sent));
    const line = await gw().waitForLog((l) => l.msg === 'message' && l['verdict'] === 'accepted', 10_000, from);
    assert.equal(line['client'], '127.0.0.1');
    assert.equal(line['recipients'], 1);
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
});

const authPlain = (password: string): string => `AUTH PLAIN ${SaslDatabase.plainResponse(`${SASL_USER}@${OURS}`, password)}`;

test('a failed SASL login grants nothing: still 554 for a relay', async () => {
  const [denied] = await tryRecipients('192.0.2.21', [['R1', `${U}@${EXT}`]], {
    prepare: async (smtp) => {
      const bad = await smtp.command(authPlain('wrong password'));
      assert.equal(bad.code, 535, bad.raw);
    },
  });
  assert.equal(denied?.reply.code, 554, denied?.reply.raw);
  assert.equal(denied?.milterRule, 'relay-denied');
});

test('a client that logged in with SASL (AUTH PLAIN against Postfix) may relay, with our domain as sender', async (t) => {
  const login = async (smtp: SmtpClient): Promise<void> => {
    const ehlo = await smtp.ehlo('client.example.org');
    assert.ok(ehlo.lines.some((l) => /^AUTH\b.*\bPLAIN\b/.test(l)), `AUTH PLAIN offered: ${ehlo.raw}`);
    const good = await smtp.command(authPlain(SASL_PASSWORD));
    assert.equal(good.code, 235, good.raw);
  };
  const results = await tryRecipients('192.0.2.20', RELAY_FORMS, { sender: `${SASL_USER}@${OURS}`, prepare: login });
  logTable(t, `authenticated client 192.0.2.20 (XCLIENT, AUTH PLAIN ${SASL_USER}@${OURS})`, results);
  for (const r of results) assert.equal(r.milterRule, undefined, `the milter refused ${r.id} <${r.form}> for an authenticated client: ${r.reply.raw}`);
  assert.equal(results[0]?.reply.code, 250, results[0]?.reply.raw);

  const smtp = await connect('192.0.2.20');
  try {
    await login(smtp);
    const from = gw().logs.length;
    const sent = await smtp.sendMessage(`${SASL_USER}@${OURS}`, [`${U}@${EXT}`], message('authenticated relay', `${U}@${EXT}`));
    assert.equal(sent.mail.code, 250, sent.mail.raw);
    assert.equal(sent.rcpts[0]?.code, 250, sent.rcpts[0]?.raw);
    assert.equal(sent.final?.code, 250, JSON.stringify(sent));
    const line = await gw().waitForLog((l) => l.msg === 'message' && l['verdict'] === 'accepted', 10_000, from);
    assert.equal(line['client'], '192.0.2.20');
    // {auth_authen} as Postfix passed it to the milter.
    assert.equal(line['authUser'], `${SASL_USER}@${OURS}`);
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
});

test('null sender: the first recipient is accepted, a second one is refused (a bounce has one recipient)', async () => {
  const smtp = await connect('192.0.2.30');
  try {
    const before = { alice: (await pf().readMessages('alice')).length, bob: (await pf().readMessages('bob')).length };
    const from = gw().logs.length;
    const sent = await smtp.sendMessage('', ['alice@example.test', 'bob@example.test'], message('a bounce'));
    assert.equal(sent.mail.code, 250, sent.mail.raw);
    assert.equal(sent.rcpts[0]?.code, 250, sent.rcpts[0]?.raw);
    assert.equal(sent.rcpts[1]?.code, 554, sent.rcpts[1]?.raw);
    assert.match(sent.rcpts[1]?.raw ?? '', /^554 5\.7\.1 A message with the null sender \(a bounce\) may have at most 1 recipient/);
    assert.equal(sent.final?.code, 250, JSON.stringify(sent));
    await gw().waitForLog((l) => l.msg.startsWith('refused at rcpt') && l['rule'] === 'null-sender-recipients', 5000, from);
    await pf().waitForMessages('alice', before.alice + 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await pf().readMessages('bob')).length, before.bob, 'nothing for the refused second recipient');
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
});

test('null sender written `< >`, after a refused relay attempt: our first recipient is accepted, a second one refused', async () => {
  const smtp = await connect('192.0.2.31');
  try {
    const before = (await pf().readMessages('alice')).length;
    const mail = await smtp.command('MAIL FROM:< >');
    assert.equal(mail.code, 250, mail.raw);
    const relay = await smtp.command(`RCPT TO:<${U}@${EXT}>`);
    assert.match(relay.raw, /^554 5\.7\.1 .*Relay access denied/);
    // The refused recipient does not count against the bounce's one recipient.
    const first = await smtp.command('RCPT TO:<alice@example.test>');
    assert.equal(first.code, 250, first.raw);
    const second = await smtp.command('RCPT TO:<bob@example.test>');
    assert.match(second.raw, /^554 5\.7\.1 A message with the null sender \(a bounce\) may have at most 1 recipient/);
    const sent = await smtp.data(message('a bounce written < >'));
    assert.equal(sent.final?.code, 250, JSON.stringify(sent));
    await pf().waitForMessages('alice', before + 1);
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
});

test('SMTPUTF8: our internationalised domain is ours as recipient and refused as sender from an untrusted client', async () => {
  const smtp = await connect('192.0.2.32');
  try {
    assert.equal((await smtp.command('MAIL FROM:<sender@example.org> SMTPUTF8')).code, 250);
    const rcpt = await smtp.command(utf8Wire(`RCPT TO:<alice@${IDN}>`));
    assert.equal(rcpt.code, 250, rcpt.raw);
    assert.equal((await smtp.command('RSET')).code, 250);
    assert.equal((await smtp.command(utf8Wire(`MAIL FROM:<ceo@${IDN}> SMTPUTF8`))).code, 250);
    const spoofed = await smtp.command('RCPT TO:<alice@example.test>');
    assert.match(spoofed.raw, /^554 5\.7\.1 .*Sender address rejected/);
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
});

test('spoofed sender: our domain (or our IP literal, or no domain) as MAIL FROM from an untrusted client is refused at every RCPT', async (t) => {
  // The milter does not answer MAIL (its reply is waived), so Postfix accepts MAIL and the refusal comes at RCPT,
  // for each recipient, as with Postfix's own sender restrictions (smtpd_delay_reject).
  // §4.1 MAIL FROM forms S1–S6, each from its own client address (the message rate limit is 3 per window).
  const senders: readonly [string, string, 'accept' | 'refuse' | 'record'][] = [
    ['S1', '', 'accept'],
    ['S2', `spammer@${EXT}`, 'accept'],
    ['S3', `ceo@${OURS}`, 'refuse'],
    ['S3-case', `ceo@Example.TEST.`, 'refuse'],
    ['S4', `ceo@${OURIP}`, 'refuse'],
    ['S5', 'ceo@localhost', 'record'],
    ['S6', 'ceo', 'refuse'],
  ];
  const rows: string[] = [];
  let n = 40;
  for (const [id, sender, expected] of senders) {
    const client = `192.0.2.${n++}`;
    const smtp = await connect(client);
    try {
      const from = gw().logs.length;
      const mail = await smtp.mailFrom(sender);
      // Postfix's own checks answer at MAIL; the milter's at the recipient, here one of ours.
      const reply = mail.code === 250 ? await smtp.rcptTo(`alice@${OURS}`) : mail;
      // A refusal by the milter is logged before its reply; the line may reach us a moment after the reply.
      const line = reply.code >= 400 ? await gw().waitForLog((l) => l.msg.startsWith('refused at mail'), 2000, from).catch(() => undefined) : undefined;
      const by = reply.code < 400 ? 'accepted' : line ? `milter: ${String(line['rule'])}` : 'Postfix';
      rows.push(`${id.padEnd(8)} <${sender}>`.padEnd(40) + ` → ${reply.raw.split('\n')[0]}  [${by}]`);
      if (expected === 'accept') assert.equal(reply.code, 250, `${id} <${sender}>: ${reply.raw}`);
      if (expected === 'refuse') {
        assert.equal(mail.code, 250, `${id} <${sender}>: MAIL ${mail.raw}`);
        assert.equal(reply.code, 554, `${id} <${sender}>: ${reply.raw}`);
        assert.match(reply.raw, /^554 5\.7\.1 Sender address rejected: /);
        assert.match(by, /^milter: (spoofed-sender|unqualified-sender)$/);
        // The whole message is refused: a second recipient too.
        const second = await smtp.rcptTo(`bob@${OURS}`);
        assert.equal(second.code, 554, `${id} <${sender}>, second recipient: ${second.raw}`);
      }
      if (reply.code === 250) {
        // Whatever the sender claims, it grants no relay.
        const rcpt = await smtp.rcptTo(`${U}@${EXT}`);
        assert.equal(rcpt.code, 554, `${id}: relay with sender <${sender}>: ${rcpt.raw}`);
        await smtp.rset();
      }
      await smtp.quit();
    } finally {
      smtp.destroy();
    }
  }
  t.diagnostic(`MAIL FROM forms from untrusted clients\n${rows.join('\n')}`);
});

test(`rate limit: the ${RATE_LIMIT + 1}th message in ${RATE_WINDOW_MS / 1000} s from one untrusted client gets 451 4.7.1, and mail flows again after the window`, async () => {
  const smtp = await connect('192.0.2.60');
  try {
    const startedAt = Date.now();
    assert.equal((await smtp.mailFrom('sender@example.org')).code, 250, 'message 1');
    assert.equal((await smtp.rcptTo('alice@example.test')).code, 250);
    // The first counted event happened before this moment (Postfix sends the waived MAIL with the RCPT at the
    // latest): it stops counting by 1.1 windows after it.
    const firstCountedBy = Date.now();
    const first = await smtp.data(message('rate 1'));
    assert.equal(first.final?.code, 250, JSON.stringify(first));
    for (let i = 2; i <= RATE_LIMIT; i++) {
      assert.equal((await smtp.mailFrom('sender@example.org')).code, 250, `message ${i}`);
      assert.equal((await smtp.rset()).code, 250);
    }
    // The milter's MAIL reply is waived: Postfix accepts MAIL and the refusal comes at RCPT.
    assert.equal((await smtp.mailFrom('sender@example.org')).code, 250);
    const over = await smtp.rcptTo('alice@example.test');
    const overAt = Date.now();
    assert.ok(overAt - startedAt < RATE_WINDOW_MS, `inconclusive: the ${RATE_LIMIT + 1} attempts took ${overAt - startedAt} ms, longer than the window`);
    assert.equal(over.code, 451, over.raw);
    assert.match(over.raw, /^451 4\.7\.1 Too many messages from your address: at most 3 per 3 s; try again later/);
    await gw().waitForLog((l) => l.msg.startsWith('refused at mail') && l['rule'] === 'rate-messages' && l['client'] === '192.0.2.60', 5000);
    // Still refused a moment later; another client is not affected.
    assert.equal((await smtp.rset()).code, 250);
    assert.equal((await smtp.mailFrom('sender@example.org')).code, 250);
    assert.equal((await smtp.rcptTo('alice@example.test')).code, 451);
    assert.equal((await smtp.rset()).code, 250);
    const other = await connect('192.0.2.61');
    try {
      assert.equal((await other.mailFrom('sender@example.org')).code, 250);
      assert.equal((await other.rcptTo('alice@example.test')).code, 250);
      await other.quit();
    } finally {
      other.destroy();
    }

    // A counted message stops counting between one window and 1.1 windows after it (10 sub-windows).
    await new Promise((r) => setTimeout(r, Math.max(0, firstCountedBy + RATE_WINDOW_MS * 1.1 + 50 - Date.now())));
    const again = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message('rate after the window'));
    assert.equal(again.mail.code, 250, again.mail.raw);
    assert.equal(again.final?.code, 250, JSON.stringify(again));
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
});

test('connection rate limit (untrusted default 60 per minute): the 61st connection is refused at every RCPT, not at connect', async () => {
  // Our CONNECT and MAIL replies are waived (the MTA does not wait for them), so the refusal is given at each
  // RCPT of every message on that connection; Postfix answers HELO/EHLO and MAIL as usual.
  for (let i = 1; i <= 60; i++) {
    const smtp = await connect('192.0.2.70');
    try {
      await smtp.quit();
    } finally {
      smtp.destroy();
    }
  }
  const from = gw().logs.length;
  const smtp = await connect('192.0.2.70');
  try {
    assert.equal((await smtp.mailFrom('sender@example.org')).code, 250);
    const first = await smtp.rcptTo('alice@example.test');
    assert.equal(first.code, 451, first.raw);
    assert.match(first.raw, /^451 4\.7\.1 Too many connections from .*: at most 60 per 1 ?min/);
    assert.equal((await smtp.rcptTo('bob@example.test')).code, 451, 'a second recipient');
    await smtp.rset();
    assert.equal((await smtp.mailFrom('sender@example.org')).code, 250);
    assert.equal((await smtp.rcptTo('alice@example.test')).code, 451, 'a second message on the same connection');
    await smtp.quit();
  } finally {
    smtp.destroy();
  }
  await gw().waitForLog((l) => l.msg.startsWith('refused at connect') && l['rule'] === 'rate-connections' && l['client'] === '192.0.2.70', 5000, from);
});

test('rate limit: IPv6 clients are counted per /64 (XCLIENT ADDR=IPV6:…)', async () => {
  const attempt = async (address: string): Promise<SmtpReply> => {
    const smtp = await connect(`IPV6:${address}`);
    try {
      const mail = await smtp.mailFrom('sender@example.org');
      const rcpt = mail.code === 250 ? await smtp.rcptTo('alice@example.test') : mail;
      await smtp.quit();
      return rcpt;
    } finally {
      smtp.destroy();
    }
  };
  const from = gw().logs.length;
  // Three hosts of one /64 share its budget of 3 messages; the fourth host of that /64 is refused.
  for (const host of ['2001:db8:1:1::1', '2001:db8:1:1::2', '2001:db8:1:1:ffff::3']) assert.equal((await attempt(host)).code, 250, host);
  const over = await attempt('2001:db8:1:1::4');
  assert.equal(over.code, 451, over.raw);
  const line = await gw().waitForLog((l) => l.msg.startsWith('refused at mail') && l['rule'] === 'rate-messages', 5000, from);
  assert.equal(line['client'], '2001:db8:1:1::4');
  // The next /64 is another client.
  assert.equal((await attempt('2001:db8:1:2::1')).code, 250);
});

test('the gateway counted what it refused on /metrics', async () => {
  const res = await fetch(`http://127.0.0.1:${gw().metricsPort}/metrics`);
  const text = await res.text();
  const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? 'NaN');
  assert.ok(value(/^pmt_rate_limit_hits_total\{kind="messages"\} (\d+)/m) >= 2, 'rate-limit hits');
  assert.ok(value(/^pmt_relay_rejections_total\{rule="relay-denied"\} (\d+)/m) >= 3, 'relay-denied');
  assert.ok(value(/^pmt_relay_rejections_total\{rule="percent-hack"\} (\d+)/m) >= 2, 'percent-hack');
});
