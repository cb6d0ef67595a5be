// Issue #4 end to end: the product (`serve` as a child process) behind a real private Postfix, with a real
// clamd and with a fake clamd that misbehaves. Viruses are refused at end of DATA naming the signature and
// nothing is delivered; any scanner trouble (down, stalled past the deadline, garbage, ERROR) tempfails and
// nothing is delivered; a stalled scan keeps Postfix waiting with progress packets (no milter timeout in its
// log); a message over the scan limit gets 552 5.3.4.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClamdInstance, EICAR, SIGNATURES, WORM_MARKER, fakeWormExe } from '../harness/clamd-instance.js';
import { FakeClamd } from '../harness/fake-clamd.js';
import { GatewayProcess } from '../harness/gateway-process.js';
import { PostfixInstance } from '../harness/postfix-instance.js';
import { SmtpClient, type TransactionResult } from '../harness/smtp-client.js';
import { buildMessage } from '../harness/mail-builder.js';
import { run } from '../harness/run-command.js';
import { makeTgz } from '../unit/content/gzip-writer.js';
import { makeRar } from '../unit/content/rar-writer.js';
import { makeWithSevenZip } from '../unit/content/seven-zip-writer.js';
import { makeTnef } from '../unit/content/tnef-writer.js';
import { makeZip } from '../unit/content/zip-writer.js';

const MAX_SCAN = 900 * 1024;

function gatewayConfig(endpoint: string, extra = ''): string {
  return `
milter:
  listen: inet:127.0.0.1:0
  progressInterval: 500ms
relay:
  localDomains: [example.test]
clamav:
  endpoints: [${endpoint}]
  maxScanBytes: ${MAX_SCAN}
  reprobeInterval: 200ms
  connectTimeout: 1s
${extra}
metrics:
  enabled: false
`;
}

function plain(subject: string, body = 'Hello, nothing to see here.\r\n'): string {
  return `From: sender@example.org\r\nTo: alice@example.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.org>\r\n\r\n${body}`;
}

function withAttachment(subject: string, name: string, type: string, content: Buffer): string {
  return buildMessage({ subject, attachment: { name, type, content } });
}

async function send(postfix: PostfixInstance, message: string): Promise<{ result: TransactionResult; ms: number }> {
  const smtp = await SmtpClient.connect({ host: '127.0.0.1', port: postfix.smtpPort, timeoutMs: 20_000 });
  try {
    await smtp.ehlo('client.example.org');
    const t0 = performance.now();
    const result = await smtp.sendMessage('sender@example.org', ['alice@example.test'], message);
    const ms = performance.now() - t0;
    await smtp.quit();
    return { result, ms };
  } finally {
    smtp.destroy();
  }
}

function subjects(messages: readonly string[]): string[] {
  return messages.map((m) => /^Subject: (.*)$/m.exec(m)?.[1]?.trim() ?? '?').sort();
}

/** Neither delivered nor queued: refused messages leave no trace in Postfix. */
async function assertNothingDelivered(postfix: PostfixInstance, subject: string): Promise<void> {
  await sleep(250);
  assert.ok(!subjects(await postfix.readMessages('alice')).includes(subject), `${subject} was delivered`);
  assert.match(await postfix.postqueue(), /Mail queue is empty/);
}

describe('real clamd behind real Postfix', () => {
  let clamd: ClamdInstance;
  let gateway: GatewayProcess;
  let postfix: PostfixInstance;
  const accepted: string[] = [];

  before(async () => {
    clamd = await ClamdInstance.start();
    gateway = await GatewayProcess.start({ config: gatewayConfig(clamd.unixEndpoint) });
    postfix = new PostfixInstance({ milter: gateway.milterAddress, mailboxes: ['alice'] });
    await postfix.start();
  });

  after(async () => {
    await postfix?.stop();
    await gateway?.stop();
    await clamd?.destroy();
  });

  test('a clean message with an attachment is delivered with X-Virus-Scanned', async () => {
    const subject = 'clean with a pdf';
    const { result } = await send(postfix, withAttachment(subject, 'report.pdf', 'application/pdf', Buffer.from('%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n')));
    assert.equal(result.final?.code, 250, JSON.stringify(result));
    accepted.push(subject);
    const delivered = (await postfix.waitForMessages('alice', 1)).find((m) => m.includes(`Subject: ${subject}`));
    assert.ok(delivered);
    assert.match(delivered, /^X-Virus-Scanned: postfix-milter-ts with ClamAV\r?$/m);
    const line = await gateway.waitForLog((l) => l.msg === 'message' && l['verdict'] === 'accepted');
    assert.deepEqual(line['reasons'], []);
  });

  test("the sender's own X-Virus-Scanned and X-Gateway-* headers are removed; only ours is delivered", async () => {
    const subject = 'forged scan header';
    const { result } = await send(postfix, `X-Virus-Scanned: clean, trust me\r\nX-Gateway-Attachment: none\r\nX-Virus-Scanned: again\r\n${plain(subject)}`);
    assert.equal(result.final?.code, 250, JSON.stringify(result));
    accepted.push(subject);
    const delivered = (await postfix.waitForMessages('alice', accepted.length)).find((m) => m.includes(`Subject: ${subject}`)) ?? '';
    assert.deepEqual(delivered.match(/^X-Virus-Scanned:.*?(?=\r?$)/gm), ['X-Virus-Scanned: postfix-milter-ts with ClamAV']);
    assert.doesNotMatch(delivered, /^X-Gateway-Attachment:/m);
  });

  test('EICAR in a text attachment: 554 5.7.0 naming it at end of DATA, nothing delivered', async () => {
    const subject = 'eicar as text';
    const { result } = await send(postfix, withAttachment(subject, 'notes.txt', 'text/plain', EICAR));
    assert.equal(result.data?.code, 354, 'refused at end of DATA, not before');
    assert.equal(result.final?.code, 554, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', new RegExp(`^554 5\\.7\\.0 Message refused: virus ${SIGNATURES.eicar.replace(/\./g, '\\.')}$`));
    await assertNothingDelivered(postfix, subject);
  });

  test('EICAR inside a zip (a harmless member name): refused by clamd, nothing delivered', async () => {
    const subject = 'eicar in a zip';
    const zip = makeZip([
      { name: 'readme.txt', data: 'nothing here\n' },
      { name: 'docs/test-file.txt', data: EICAR },
    ]);
    const from = gateway.logs.length;
    const { result } = await send(postfix, withAttachment(subject, 'documents.zip', 'application/zip', zip));
    assert.equal(result.final?.code, 554, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^554 5\.7\.0 Message refused: virus Eicar-Test-Signature\.UNOFFICIAL$/);
    // clamd alone found it: the attachment rules have nothing against this zip.
    const line = await gateway.waitForLog((l) => l.msg === 'message', 5000, from);
    assert.deepEqual(line['reasons'], [`virus: ${SIGNATURES.eicar}`]);
    await assertNothingDelivered(postfix, subject);
  });

  test('a RAR whose member is an executable: 554 naming the member, nothing delivered; a clean 7z is delivered', async () => {
    const refused = 'exe in a rar';
    const rar = makeRar([{ name: 'scans/invoice.exe', data: 'MZ harmless stand-in' }, { name: 'readme.txt', data: 'hi' }]);
    const { result } = await send(postfix, withAttachment(refused, 'scans.rar', 'application/vnd.rar', rar));
    assert.equal(result.final?.code, 554, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^554 5\.7\.0 Message refused: .*invoice\.exe/);
    await assertNothingDelivered(postfix, refused);

    const clean = 'clean 7z';
    const sevenZip = await makeWithSevenZip('7z', [{ name: 'report.pdf', data: '%PDF-1.4\n%%EOF\n' }]);
    const delivered = await send(postfix, withAttachment(clean, 'report.7z', 'application/x-7z-compressed', sevenZip));
    assert.equal(delivered.result.final?.code, 250, JSON.stringify(delivered.result));
    accepted.push(clean);
  });

  test('a .tgz holding invoice.exe: the tar inside is listed, 554 naming the member, nothing delivered', async () => {
    const refused = 'exe in a tgz';
    const tgz = await makeTgz([{ name: 'invoice.exe', data: 'MZ harmless stand-in' }, { name: 'readme.txt', data: 'hi' }]);
    const { result } = await send(postfix, withAttachment(refused, 'invoice.tgz', 'application/gzip', tgz));
    assert.equal(result.final?.code, 554, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^554 5\.7\.0 Message refused: .*invoice\.exe/);
    await assertNothingDelivered(postfix, refused);
  });

  test('winmail.dat (TNEF) holding invoice.exe: 554 naming it, nothing delivered; one holding a text file is delivered', async () => {
    const refused = 'exe in winmail.dat';
    const tnef = makeTnef([{ title: 'INVOICE.EXE', longName: 'invoice.exe', data: 'MZ harmless stand-in' }]);
    const { result } = await send(postfix, withAttachment(refused, 'winmail.dat', 'application/ms-tnef', tnef));
    assert.equal(result.final?.code, 554, JSON.stringify(result));
    // Both names (8.3 title and long name) are banned; the first in the stream is named.
    assert.match(result.final?.raw ?? '', /^554 5\.7\.0 Message refused: attachment "INVOICE\.EXE" \(banned-extension \.exe\) and 1 more$/);
    await assertNothingDelivered(postfix, refused);

    const clean = 'text in winmail.dat';
    const notes = makeTnef([{ title: 'NOTES.TXT', longName: 'notes.txt', data: 'Meeting moved to ten.\r\n' }]);
    const delivered = await send(postfix, withAttachment(clean, 'winmail.dat', 'application/ms-tnef', notes));
    assert.equal(delivered.result.final?.code, 250, JSON.stringify(delivered.result));
    accepted.push(clean);
  });

  test('the worm signature in an executable attachment: 554 naming the worm, nothing delivered', async () => {
    const subject = 'worm exe';
    const { result } = await send(postfix, withAttachment(subject, 'update.exe', 'application/octet-stream', fakeWormExe()));
    assert.equal(result.final?.code, 554, JSON.stringify(result));
    // The attachment rules find the .exe as well; the virus is named first.
    assert.match(result.final?.raw ?? '', /^554 5\.7\.0 Message refused: virus Win\.Worm\.TestMydoom\.UNOFFICIAL and \d+ more$/);
    await assertNothingDelivered(postfix, subject);
  });

  test('the worm marker in a plain text body (no attachment rule applies): refused by clamd alone', async () => {
    const subject = 'worm in text';
    const { result } = await send(postfix, plain(subject, `quoted sample:\r\n${WORM_MARKER.toString('latin1')}\r\n`));
    assert.equal(result.final?.code, 554, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^554 5\.7\.0 Message refused: virus Win\.Worm\.TestMydoom\.UNOFFICIAL$/);
    await assertNothingDelivered(postfix, subject);
  });

  test('a message over clamav.maxScanBytes: 552 5.3.4, nothing delivered', async () => {
    const subject = 'too big to scan';
    const body = `${'x'.repeat(998)}\r\n`.repeat(Math.ceil((MAX_SCAN + 100_000) / 1000));
    const { result } = await send(postfix, plain(subject, body));
    assert.equal(result.final?.code, 552, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^552 5\.3\.4 /);
    await assertNothingDelivered(postfix, subject);
  });

  test('clamd stopped: 451 4.7.1, nothing delivered; after a restart clean mail passes again', async () => {
    await clamd.stop();
    const subject = 'while clamd is down';
    const { result } = await send(postfix, plain(subject));
    assert.equal(result.final?.code, 451, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^451 4\.7\.1 Message could not be checked/);
    await assertNothingDelivered(postfix, subject);
    const line = await gateway.waitForLog((l) => l.msg === 'message' && l['verdict'] === 'tempfailed');
    assert.match(JSON.stringify(line['reasons']), /virus check failed \(unreachable\)/);

    await clamd.restart();
    const again = 'after clamd restart';
    const r2 = await send(postfix, plain(again));
    assert.equal(r2.result.final?.code, 250, JSON.stringify(r2.result));
    accepted.push(again);
  });

  test('a local submission (sendmail) with EICAR is held in the hold queue, not bounced to its forgeable sender', async () => {
    const subject = 'local eicar';
    const message = `From: www-data@example.org\nTo: alice@example.test\nSubject: ${subject}\n\nsee below\n${EICAR.toString('latin1')}\n`;
    const r = await postfix.sendmail(['-f', 'www-data@example.org', '-i', '--', 'alice@example.test'], message);
    assert.equal(r.code, 0, r.stderr);
    const line = await gateway.waitForLog((l) => l.msg === 'message' && l['verdict'] === 'quarantined', 15_000);
    assert.deepEqual(line['reasons'], [`virus: ${SIGNATURES.eicar}`, 'local submission: held instead of bounced']);
    // Postfix put it on hold (its log gives no reason; ours does); the queue lists it as held (`!`).
    const hold = await postfix.waitForLog(/: milter-hold: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: milter triggers HOLD action; from=<www-data@example\.org>/, 10_000);
    const id = /\]: ([0-9A-Za-z]+): milter-hold:/.exec(hold)?.[1];
    assert.ok(id, hold);
    assert.match(await postfix.postqueue(), new RegExp(`^${id}!`, 'm'));
    await sleep(500);
    assert.doesNotMatch(await postfix.maillog(), /sender non-delivery notification/, 'no bounce');
    assert.ok(!subjects(await postfix.readMessages('alice')).includes(subject), 'not delivered');
    const removed = await run('/usr/sbin/postsuper', ['-c', postfix.configDir, '-d', id], { timeoutMs: 10_000 });
    assert.equal(removed.code, 0, removed.stderr);
  });

  test('exactly the accepted messages were delivered and the queue is empty', async () => {
    const delivered = await postfix.waitForMessages('alice', accepted.length);
    await sleep(200);
    assert.deepEqual(subjects(await postfix.readMessages('alice')), [...accepted].sort());
    assert.equal(delivered.length, accepted.length);
    assert.match(await postfix.postqueue(), /Mail queue is empty/);
  });
});

describe('a misbehaving clamd behind real Postfix (milter_content_timeout 2s, scan deadline 3s)', () => {
  let fake: FakeClamd;
  let gateway: GatewayProcess;
  let postfix: PostfixInstance;
  const DEADLINE_MS = 3000;

  before(async () => {
    fake = await FakeClamd.start({ unix: true });
    gateway = await GatewayProcess.start({ config: gatewayConfig(fake.endpoint, `  scanDeadline: ${DEADLINE_MS}ms`) });
    postfix = new PostfixInstance({
      milter: gateway.milterAddress,
      mailboxes: ['alice'],
      milterTimeouts: { connect: '2s', command: '2s', content: '2s' },
    });
    await postfix.start();
  });

  after(async () => {
    await postfix?.stop();
    await gateway?.stop();
    await fake?.stop();
  });

  test('the fake answers a plain scan: clean mail is delivered (the setup works)', async () => {
    fake.scanBehavior = { kind: 'detect' };
    const { result } = await send(postfix, plain('fake clean'));
    assert.equal(result.final?.code, 250, JSON.stringify(result));
    await postfix.waitForMessages('alice', 1);
  });

  test('a stalled clamd: 451 4.7.1 after the scan deadline, progress keeps Postfix waiting (no milter timeout)', async () => {
    fake.scanBehavior = { kind: 'stall' };
    const scansBefore = fake.scans.length;
    const subject = 'stalled scan';
    const { result, ms } = await send(postfix, plain(subject));
    assert.equal(result.final?.code, 451, JSON.stringify(result));
    // Our reply, not Postfix's milter_default_action ("451 4.7.1 Service unavailable - try again later").
    assert.match(result.final?.raw ?? '', /^451 4\.7\.1 Message could not be checked/);
    assert.ok(ms >= DEADLINE_MS - 100, `answered after ${Math.round(ms)} ms, before the ${DEADLINE_MS} ms deadline`);
    assert.ok(ms < DEADLINE_MS + 3000, `answered after ${Math.round(ms)} ms`);
    assert.equal(fake.scans.length, scansBefore + 1);
    assert.equal(fake.scans.at(-1)?.ended, true, 'the whole message reached clamd');
    const log = await postfix.maillog();
    assert.doesNotMatch(log, /milter.*(timed out|timeout)|(timed out|timeout).*milter/i, log);
    const line = await gateway.waitForLog((l) => l.msg === 'message' && JSON.stringify(l['reasons']).includes('timeout'));
    assert.equal(line['verdict'], 'tempfailed');
    await assertNothingDelivered(postfix, subject);
  });

  test('garbage instead of a scan result: 451 4.7.1, nothing delivered', async () => {
    fake.scanBehavior = { kind: 'reply', reply: '\x01\x02 OK?? what FOUND' };
    const subject = 'garbage reply';
    const { result } = await send(postfix, plain(subject));
    assert.equal(result.final?.code, 451, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^451 4\.7\.1 Message could not be checked/);
    await gateway.waitForLog((l) => l.msg === 'message' && JSON.stringify(l['reasons']).includes('(protocol)'));
    await assertNothingDelivered(postfix, subject);
  });

  test('`stream: ... ERROR`: 451 4.7.1 (a failure, not a virus), nothing delivered', async () => {
    fake.scanBehavior = { kind: 'reply', reply: "stream: Can't allocate memory ERROR" };
    const subject = 'clamd error';
    const { result } = await send(postfix, plain(subject));
    assert.equal(result.final?.code, 451, JSON.stringify(result));
    assert.match(result.final?.raw ?? '', /^451 4\.7\.1 Message could not be checked/);
    await gateway.waitForLog((l) => l.msg === 'message' && /virus check failed \(error\)/.test(JSON.stringify(l['reasons'])));
    await assertNothingDelivered(postfix, subject);
    assert.deepEqual(subjects(await postfix.readMessages('alice')), ['fake clean']);
  });
});
