// A local submission (Postfix's non_smtpd_milters: localhost, port 0) has no SMTP client to hear a rejection:
// Postfix would bounce it to a sender anyone on the host can forge. So what an SMTP client gets as 554 at end of
// message, a local submission gets as QUARANTINE (Postfix's hold queue) and ACCEPT. Driven with the MTA-side
// client, no real servers (no clamd: the banned attachment decides without it).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AddressFamily } from '@postfix-milter-ts/protocol';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { InMemoryGateway } from '../../harness/in-memory-gateway.js';

const gateway = new InMemoryGateway({ relay: { localDomains: ['example.test'] } });
before(() => gateway.start());
after(() => gateway.stop());

const EXE_MESSAGE = Buffer.from(
  'Subject: tool\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' +
    '--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n' +
    '--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="setup.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n' +
    '--b--\r\n',
);

async function endOfMessage(connect: { hostname: string; port: number; address: string }): Promise<Awaited<ReturnType<MilterClient['send']>>> {
  const c = await MilterClient.connect(gateway.address);
  try {
    await c.negotiate();
    await c.send({ type: 'connect', family: AddressFamily.INET, ...connect }, [['j', 'mx.example.test'], ['{daemon_addr}', '127.0.0.1']]);
    await c.send({ type: 'helo', name: connect.hostname });
    await c.send({ type: 'mail', sender: '<www-data@example.test>', esmtpArgs: [] });
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    return await c.send({ type: 'eom', chunk: EXE_MESSAGE });
  } finally {
    await c.quit();
  }
}

test('over SMTP, a banned attachment is refused at end of message: 554, no hold', async () => {
  const r = await endOfMessage({ hostname: 'client.example.org', port: 40200, address: '127.0.0.1' });
  assert.ok(r);
  assert.equal(r.final.type, 'replycode');
  assert.match(r.final.type === 'replycode' ? r.final.text : '', /^554 5\.7\.0 Message refused: attachment "setup\.exe"/);
  assert.deepEqual(r.interim.filter((p) => p.type === 'quarantine'), []);
});

test('a local submission with the same attachment is held with the refusal as the reason, and accepted: Postfix bounces nothing', async () => {
  const r = await endOfMessage({ hostname: 'localhost', port: 0, address: '127.0.0.1' });
  assert.ok(r);
  assert.equal(r.final.type, 'accept');
  const holds = r.interim.filter((p) => p.type === 'quarantine');
  assert.equal(holds.length, 1);
  assert.match(holds[0]?.type === 'quarantine' ? holds[0].reason : '', /^local submission held, not bounced: 554 Message refused: attachment "setup\.exe"/);
  const line = gateway.lines.findLast((l) => l['msg'] === 'message');
  assert.equal(line?.['verdict'], 'quarantined', JSON.stringify(line));
});
