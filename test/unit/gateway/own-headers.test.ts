// Headers the gateway adds at end of message (X-Virus-Scanned, the tag headers) cannot be forged by the sender:
// every copy the message already carries is deleted (last first), then ours are added. Driven with the MTA-side
// client the way Postfix sends a message, no real servers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AddressFamily } from '@postfix-milter-ts/protocol';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { InMemoryGateway } from '../../harness/in-memory-gateway.js';

const gateway = new InMemoryGateway({ relay: { localDomains: ['example.test'] }, actions: { attachment: 'tag' } });
// Behind another scanner that adds X-Virus-Scanned, with ours switched off.
const quiet = new InMemoryGateway({ relay: { localDomains: ['example.test'] }, actions: { attachment: 'tag', scannedHeader: { enabled: false } } });
before(() => Promise.all([gateway.start(), quiet.start()]));
after(() => Promise.all([gateway.stop(), quiet.stop()]));

async function send(headers: readonly [string, string][], body: string, via = gateway): Promise<Awaited<ReturnType<MilterClient['send']>>> {
  const c = await MilterClient.connect(via.address);
  try {
    await c.negotiate();
    await c.send({ type: 'connect', family: AddressFamily.INET, hostname: 'client.example.org', port: 40200, address: '192.0.2.9' });
    await c.send({ type: 'helo', name: 'client.example.org' });
    await c.send({ type: 'mail', sender: '<bob@example.org>', esmtpArgs: [] });
    await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    for (const [name, value] of headers) await c.send({ type: 'header', name, value });
    await c.send({ type: 'eoh' });
    return await c.send({ type: 'eom', chunk: Buffer.from(body) });
  } finally {
    await c.quit();
  }
}

test("the sender's X-Virus-Scanned and X-Gateway-* copies are deleted, last first, before ours are added", async () => {
  const r = await send(
    [
      ['Subject', 'hi'],
      ['X-Virus-Scanned', 'clean, trust me'],
      ['x-gateway-attachment', 'none'],
      ['X-VIRUS-SCANNED', 'again'],
    ],
    'hello\r\n',
  );
  assert.equal(r?.final.type, 'accept');
  assert.deepEqual(r?.interim, [
    { type: 'change-header', index: 2, name: 'x-virus-scanned', value: '' },
    { type: 'change-header', index: 1, name: 'x-virus-scanned', value: '' },
    { type: 'change-header', index: 1, name: 'x-gateway-attachment', value: '' },
    { type: 'add-header', name: 'X-Virus-Scanned', value: ' postfix-milter-ts with ClamAV' },
  ]);
});

test('a message without such headers gets only ours; other headers are left alone', async () => {
  const r = await send([['Subject', 'hi'], ['X-Virus-Status', 'whatever']], 'hello\r\n');
  assert.deepEqual(r?.interim, [{ type: 'add-header', name: 'X-Virus-Scanned', value: ' postfix-milter-ts with ClamAV' }]);
});

test('with the scanned header switched off, an X-Virus-Scanned is left alone (another scanner may have added it); X-Gateway-* copies still go', async () => {
  const r = await send([['X-Virus-Scanned', 'amavisd-new at example.test'], ['X-Gateway-Virus', 'none, trust me']], 'hello\r\n', quiet);
  assert.equal(r?.final.type, 'accept');
  assert.deepEqual(r?.interim, [{ type: 'change-header', index: 1, name: 'x-gateway-virus', value: '' }]);
});
