// The product end to end, smallest useful path: the CLI's `serve` behind a real Postfix with a real clamd.
// Clean mail is delivered with the scanned header; EICAR is refused at end of DATA; a relay attempt from an
// untrusted client is refused at RCPT; SIGTERM exits 0.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ClamdInstance, EICAR } from '../harness/clamd-instance.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { buildMessage } from '../harness/mail-builder.js';

let clamd: ClamdInstance;
let gateway: GatewayProcess;
let postfix: PostfixInstance;

before(async () => {
  clamd = await ClamdInstance.start();
  gateway = await GatewayProcess.start({
    config: `
milter:
  listen: inet:127.0.0.1:0
relay:
  localDomains: [example.test]
clamav:
  endpoints: [${clamd.unixEndpoint}]
  maxScanBytes: 900K
metrics:
  port: 0
`,
  });
  postfix = new PostfixInstance({ milter: gateway.milterAddress, mailboxes: ['alice'], mainCf: { smtpd_relay_restrictions: 'check_client_access static:OK, reject_unauth_destination', default_transport: 'discard', relay_transport: 'discard' } });
  await postfix.start();
});

after(async () => {
  await postfix?.stop();
  await gateway?.stop();
  await clamd?.destroy();
});

function message(subject: string, extra = ''): string {
  return `From: sender@example.org\r\nTo: alice@example.test\r\nSubject: ${subject}\r\n${extra}\r\nHello.\r\n`;
}

function withAttachment(subject: string, name: string, content: Buffer): string {
  return buildMessage({ subject, attachment: { name, type: 'text/plain', content } });
}

test('clean mail is delivered with the scanned header, and logged once', async () => {
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort });
  await smtp.ehlo('client.example.org');
  const r = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message('clean one'));
  await smtp.quit();
  assert.equal(r.final?.code, 250, JSON.stringify(r));
  const [delivered] = await postfix.waitForMessages('alice', 1);
  assert.match(delivered ?? '', /^X-Virus-Scanned: postfix-milter-ts with ClamAV$/m);
  const line = await gateway.waitForLog((l) => l.msg === 'message' && l['verdict'] === 'accepted');
  assert.equal(line['recipients'], 1);
  assert.equal(line['sender'], '<sender@example.org>');
});

test('EICAR in an attachment is refused at end of DATA naming the signature; nothing is delivered', async () => {
  const before = (await postfix.readMessages('alice')).length;
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort });
  await smtp.ehlo('client.example.org');
  const r = await smtp.sendMessage('sender@example.org', ['alice@example.test'], withAttachment('eicar', 'readme.txt', EICAR));
  await smtp.quit();
  assert.equal(r.final?.code, 554, JSON.stringify(r));
  assert.match(r.final?.raw ?? '', /5\.7\.0 Message refused: virus Eicar-Test-Signature\.UNOFFICIAL/);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal((await postfix.readMessages('alice')).length, before);
});

test('an untrusted client may not relay; our domain is accepted', async () => {
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort });
  await smtp.ehlo('client.example.org');
  const x = await smtp.xclient({ ADDR: '192.0.2.77', NAME: '[UNAVAILABLE]' });
  assert.equal(x.code, 220, x.raw);
  await smtp.ehlo('client.example.org');
  assert.equal((await smtp.mailFrom('sender@example.org')).code, 250);
  const foreign = await smtp.rcptTo('victim@elsewhere.example');
  assert.equal(foreign.code, 554, foreign.raw);
  assert.match(foreign.raw, /5\.7\.1 Relay access denied/);
  const ours = await smtp.rcptTo('alice@example.test');
  assert.equal(ours.code, 250, ours.raw);
  await smtp.quit();
});

test('SIGTERM stops the milter with exit code 0', async () => {
  assert.equal(await gateway.stop(), 0);
  assert.ok(gateway.logs.some((l) => l.msg === 'stopped'));
});
