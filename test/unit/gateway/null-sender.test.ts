// A bounce (the null sender) may have `nullSenderMaxRecipients` recipients, however the MTA spells the null
// sender, and only recipients that were accepted count. Driven with the MTA-side client, no real servers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AddressFamily } from '@postfix-milter-ts/protocol';
import { MilterClient, POSTFIX_OFFER } from '@postfix-milter-ts/protocol/testing';
import { InMemoryGateway } from '../../harness/in-memory-gateway.js';

const ONE_RECIPIENT = '554 5.7.1 A message with the null sender (a bounce) may have at most 1 recipient';

describe('the null sender: one recipient per bounce', () => {
  const gateway = new InMemoryGateway({ relay: { localDomains: ['example.test'] } });

  before(() => gateway.start());
  after(() => gateway.stop());

  async function untrustedSession(address: string): Promise<MilterClient> {
    const c = await MilterClient.connect(gateway.address);
    await c.negotiate(POSTFIX_OFFER);
    await c.send({ type: 'connect', family: AddressFamily.INET, hostname: `[${address}]`, port: 40200, address }, [['j', 'mx.example.test']]);
    await c.send({ type: 'helo', name: 'bounce.example.org' });
    return c;
  }

  const reply = (r: Awaited<ReturnType<MilterClient['send']>>): string =>
    r === undefined ? 'no reply' : r.final.type === 'replycode' ? r.final.text : r.final.type;

  const rcpt = async (c: MilterClient, recipient: string): Promise<string> => reply(await c.send({ type: 'rcpt', recipient, esmtpArgs: [] }));

  for (const sender of ['<>', '< >']) {
    test(`MAIL FROM:${sender} is the null sender: its second recipient is refused`, async () => {
      const c = await untrustedSession('192.0.2.60');
      await c.send({ type: 'mail', sender, esmtpArgs: [] });
      assert.equal(await rcpt(c, '<alice@example.test>'), 'continue');
      assert.equal(await rcpt(c, '<bob@example.test>'), ONE_RECIPIENT);
      await c.send({ type: 'abort' });
      await c.quit();
    });
  }

  test('only accepted recipients count: a refused relay attempt does not use up the bounce\'s recipient', async () => {
    const c = await untrustedSession('192.0.2.61');
    await c.send({ type: 'mail', sender: '<>', esmtpArgs: [] });
    assert.match(await rcpt(c, '<victim@elsewhere.example>'), /^554 5\.7\.1 Relay access denied/);
    assert.equal(await rcpt(c, '<alice@example.test>'), 'continue');
    assert.equal(await rcpt(c, '<bob@example.test>'), ONE_RECIPIENT);
    await c.send({ type: 'abort' });
    await c.quit();
  });
});
