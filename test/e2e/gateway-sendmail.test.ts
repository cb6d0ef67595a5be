// Issue #6, Sendmail interoperability: the product (`serve` as a child process) behind a real Sendmail 8.17
// (Debian's, unpacked privately; test/harness/sendmail-instance.ts) with a real clamd — the same product checks
// as through Postfix: the scanned header on clean mail, a relay attempt refused per recipient (554 5.7.1) while
// the other recipient goes on, a spoofed sender refused at every RCPT (our MAIL reply is waived), a banned
// attachment and a virus refused at end of DATA (554, naming them), and mail tempfailed (451) while clamd is
// down. Nothing refused is delivered. An address Sendmail's virtusertable forwards to another domain is accepted
// from an untrusted client (the admin's table, not the client, routes it out).
//
// Sendmail lets loopback clients relay, so the gateway alone decides: its relay.trustedNetworks leave 127.0.0.1
// out and let ::1 in (Sendmail sends ::1 in its full form, IPv6:0:0:0:0:0:0:0:1, which must match ::1/128).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClamdInstance, EICAR, SIGNATURES } from '../harness/clamd-instance.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { SendmailInstance } from '../harness/sendmail-instance.js';
import { SmtpClient, type TransactionResult } from '../harness/smtp-client.js';
import { buildMessage } from '../harness/mail-builder.js';

const DOMAIN = 'example.test';
const TEST_TIMEOUT_MS = 30_000;

let clamd: ClamdInstance | undefined;
let gateway: GatewayProcess | undefined;
let sendmail: SendmailInstance | undefined;
let tablesDir: string | undefined;

before(async () => {
  tablesDir = await mkdtemp(join(tmpdir(), 'sm-tables-'));
  const virtusers = join(tablesDir, 'virtusertable');
  await writeFile(virtusers, `friend@${DOMAIN} friend@elsewhere.example\n`, { mode: 0o644 });
  clamd = await ClamdInstance.start();
  gateway = await GatewayProcess.start({
    config: `milter:
  listen: inet:127.0.0.1:0
  progressInterval: 1s
relay:
  # 127.0.0.1 is not trusted here (Sendmail itself would let it relay); ::1 is.
  trustedNetworks: [192.0.2.0/24, "::1/128"]
  localDomains: [${DOMAIN}]
clamav:
  endpoints: [${clamd.unixEndpoint}]
  maxScanBytes: 900K
  connectTimeout: 1s
  reprobeInterval: 200ms
metrics:
  port: 0
`,
  });
  sendmail = new SendmailInstance({ milter: gateway.milterAddress, domain: DOMAIN, extraMc: `FEATURE(\`virtusertable', \`text -k0 -v1 ${virtusers}')dnl` });
  await sendmail.start();
});

after(async () => {
  await sendmail?.stop();
  await gateway?.stop();
  await clamd?.destroy();
  if (tablesDir !== undefined) await rm(tablesDir, { recursive: true, force: true });
});

function sm(): SendmailInstance {
  assert.ok(sendmail, 'Sendmail is running');
  return sendmail;
}

function message(subject: string, to = `alice@${DOMAIN}`, attachment?: { name: string; content: Buffer }): string {
  return buildMessage({ subject, to, messageId: `${subject.replace(/\W/g, '')}@example.org`, ...(attachment ? { attachment } : {}) });
}

async function send(to: readonly string[], text: string, host = '127.0.0.1'): Promise<TransactionResult> {
  const smtp = await SmtpClient.connect({ host, port: sm().smtpPort, timeoutMs: 25_000 });
  try {
    assert.equal((await smtp.ehlo('client.example.org')).code, 250);
    const r = await smtp.sendMessage('sender@example.org', to, text);
    await smtp.quit();
    return r;
  } finally {
    smtp.destroy();
  }
}

async function logsOnFailure<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const err = e as Error;
    err.message += `\n${await sm().logs()}\n--- gateway log (tail) ---\n${(gateway?.logs ?? []).slice(-15).map((l) => JSON.stringify(l)).join('\n')}`;
    throw err;
  }
}

test('clean mail is delivered through Sendmail with the scanned header added by the milter', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    const r = await send([`alice@${DOMAIN}`], message('sendmail clean'));
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    const [delivered] = await sm().waitForMessages('alice', 1);
    assert.match(delivered ?? '', /^Subject: sendmail clean$/m);
    assert.match(delivered ?? '', /^X-Virus-Scanned: postfix-milter-ts with ClamAV$/m);
    const line = await gateway?.waitForLog((l) => l.msg === 'message' && l['verdict'] === 'accepted');
    assert.equal(line?.['client'], '127.0.0.1');
  }),
);

test("the sender's own X-Virus-Scanned and X-Gateway-* headers are removed; only ours is delivered", { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    const forged = `X-Virus-Scanned: clean, trust me\r\nX-Gateway-Attachment: none\r\nX-Virus-Scanned: again\r\n${message('sendmail forged scan header')}`;
    const before = (await sm().readMessages('alice')).length;
    const r = await send([`alice@${DOMAIN}`], forged);
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    const delivered = (await sm().waitForMessages('alice', before + 1)).find((m) => /^Subject: sendmail forged scan header$/m.test(m)) ?? '';
    assert.deepEqual(delivered.match(/^X-Virus-Scanned:.*$/gm), ['X-Virus-Scanned: postfix-milter-ts with ClamAV']);
    assert.doesNotMatch(delivered, /^X-Gateway-Attachment:/m);
  }),
);

test('a relay attempt from an untrusted client is refused for that recipient (554 5.7.1); the local recipient still gets the mail', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    const relayedBefore = (await sm().readRelayed()).length;
    const r = await send([`victim@elsewhere.example`, `bob@${DOMAIN}`], message('sendmail relay attempt', `victim@elsewhere.example, bob@${DOMAIN}`));
    const [foreign, ours] = r.rcpts;
    assert.equal(foreign?.code, 554, foreign?.raw);
    assert.match(foreign?.raw ?? '', /^554 5\.7\.1 .*Relay access denied/);
    assert.equal(ours?.code, 250, ours?.raw);
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    const [delivered] = await sm().waitForMessages('bob', 1);
    assert.match(delivered ?? '', /^Subject: sendmail relay attempt$/m);
    await sleep(500);
    assert.equal((await sm().readRelayed()).length, relayedBefore, 'nothing went out to the foreign domain');
  }),
);

test('an address Sendmail forwards to another domain (virtusertable) is accepted from an untrusted client; a percent hack is not', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    // Sendmail reports {rcpt_mailer}=esmtp and {rcpt_addr}=friend@elsewhere.example for it.
    // (Not friend%elsewhere.example: Sendmail treats it as the same recipient, and refusing it drops both.)
    const r = await send([`friend@${DOMAIN}`, `victim%elsewhere.example@${DOMAIN}`], message('sendmail forwarded', `friend@${DOMAIN}`));
    const [forwarded, percent] = r.rcpts;
    assert.equal(forwarded?.code, 250, forwarded?.raw);
    assert.match(percent?.raw ?? '', /^554 5\.7\.1 .*Relay access denied/);
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const all = await sm().readRelayed();
      const relayed = all.find((m) => m.recipients.includes('friend@elsewhere.example'));
      if (relayed) {
        assert.match(relayed.message, /^Subject: sendmail forwarded\r?$/m);
        break;
      }
      assert.ok(Date.now() < deadline, `the forwarded message reached the sink; it has ${JSON.stringify(all.map((m) => m.recipients))}`);
      await sleep(50);
    }
  }),
);

test('a sender refused at MAIL (our domain from an untrusted client) is refused at every RCPT; nothing is delivered', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    // Our MAIL reply is waived (SMFIP_NR_MAIL, which Sendmail honours as Postfix does): Sendmail accepts MAIL and
    // gives the refusal at each RCPT.
    const before = (await sm().readMessages('alice')).length;
    const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: sm().smtpPort, timeoutMs: 25_000 });
    try {
      assert.equal((await smtp.ehlo('client.example.org')).code, 250);
      const r = await smtp.sendMessage(`ceo@${DOMAIN}`, [`alice@${DOMAIN}`, `bob@${DOMAIN}`], message('sendmail spoofed sender'));
      assert.equal(r.mail.code, 250, r.mail.raw);
      assert.deepEqual(r.rcpts.map((x) => x.code), [554, 554], JSON.stringify(r.rcpts));
      assert.match(r.rcpts[0]?.raw ?? '', /^554 5\.7\.1 .*Sender address rejected/);
      assert.equal(r.final, undefined, 'no DATA without a recipient');
      await smtp.quit();
    } finally {
      smtp.destroy();
    }
    await gateway?.waitForLog((l) => l.msg.startsWith('refused at mail') && l['rule'] === 'spoofed-sender');
    await sleep(500);
    assert.equal((await sm().readMessages('alice')).length, before, 'nothing delivered');
  }),
);

test('a trusted client (::1, which Sendmail sends as IPv6:0:0:0:0:0:0:0:1) may relay', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    const r = await send(['someone@remote.example.net'], message('sendmail trusted relay', 'someone@remote.example.net'), '::1');
    assert.equal(r.rcpts[0]?.code, 250, r.rcpts[0]?.raw);
    assert.equal(r.final?.code, 250, JSON.stringify(r));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const relayed = (await sm().readRelayed()).find((m) => m.recipients.includes('someone@remote.example.net'));
      if (relayed) {
        assert.match(relayed.message, /^X-Virus-Scanned: postfix-milter-ts with ClamAV\r?$/m);
        // The gateway saw the IPv6 loopback (logged in the form Sendmail sent it) and trusted it.
        // (Log lines are written in batches, at the latest 200 ms after they were made.)
        const line = await gateway?.waitForLog((l) => l['queueId'] !== undefined && l['verdict'] === 'accepted' && l['client'] === '::1', 5000);
        assert.ok(line, 'a message line for the ::1 client');
        break;
      }
      assert.ok(Date.now() < deadline, 'the relayed message reached the sink');
      await sleep(50);
    }
  }),
);

test('a banned attachment is refused at end of DATA naming the file; nothing is delivered', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    const before = (await sm().readMessages('carol')).length;
    const r = await send([`carol@${DOMAIN}`], message('sendmail banned', `carol@${DOMAIN}`, { name: 'invoice.pdf.exe', content: Buffer.from('not really a program\n') }));
    assert.equal(r.final?.code, 554, JSON.stringify(r));
    assert.match(r.final?.raw ?? '', /^554 5\.7\.0 Message refused: attachment "invoice\.pdf\.exe"/);
    await sleep(500);
    assert.equal((await sm().readMessages('carol')).length, before);
  }),
);

test('a virus (EICAR) is refused at end of DATA naming the signature; nothing is delivered', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    const before = (await sm().readMessages('dave')).length;
    const r = await send([`dave@${DOMAIN}`], message('sendmail eicar', `dave@${DOMAIN}`, { name: 'readme.txt', content: EICAR }));
    assert.equal(r.final?.code, 554, JSON.stringify(r));
    assert.equal(r.final?.raw, `554 5.7.0 Message refused: virus ${SIGNATURES.eicar}`);
    await sleep(500);
    assert.equal((await sm().readMessages('dave')).length, before);
    const line = await gateway?.waitForLog((l) => l.msg === 'message' && l['verdict'] === 'rejected' && JSON.stringify(l).includes(SIGNATURES.eicar));
    assert.ok(line);
  }),
);

test('with clamd stopped, mail is tempfailed (451 4.7.1), never accepted unscanned', { timeout: TEST_TIMEOUT_MS }, () =>
  logsOnFailure(async () => {
    assert.ok(clamd);
    await clamd.stop();
    const before = (await sm().readMessages('erin')).length;
    const r = await send([`erin@${DOMAIN}`], message('sendmail clamd down', `erin@${DOMAIN}`));
    assert.equal(r.final?.code, 451, JSON.stringify(r));
    assert.match(r.final?.raw ?? '', /^451 4\.7\.1 Message could not be checked for viruses and dangerous content, try again later$/);
    await sleep(500);
    assert.equal((await sm().readMessages('erin')).length, before);
    assert.match(await sm().mailq(), /is empty/i, 'Sendmail did not queue it either');
  }),
);
