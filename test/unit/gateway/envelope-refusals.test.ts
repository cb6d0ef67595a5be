// Where the gateway gives a refusal of the whole message (connection or message rate limit, sender rules): the
// MTA does not wait for our CONNECT and MAIL replies, so an SMTP client hears it at every RCPT; a local
// submission (Postfix's non_smtpd_milters: localhost, port 0) hears it at end of message, because Postfix
// defers rather than refuses mail whose emulated RCPT a milter refuses; an MTA that cannot waive the MAIL reply
// (protocol before v6) hears it at MAIL. Driven with the MTA-side client, no real servers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AddressFamily, ProtocolFlag } from '@postfix-milter-ts/protocol';
import { MilterClient, POSTFIX_OFFER } from '@postfix-milter-ts/protocol/testing';
import { InMemoryGateway } from '../../harness/in-memory-gateway.js';

const TOO_MANY = '451 4.7.1 Too many messages from your address: at most 1 per 1 min; try again later';

describe('a refused message: at every RCPT over SMTP, at end of message for a local submission, at MAIL for an older MTA', () => {
  // One message per minute for everyone, trusted networks (the local submission's 127.0.0.1) included.
  const gateway = new InMemoryGateway({
    relay: { localDomains: ['example.test'] },
    rateLimit: { untrusted: { messages: { limit: 1, window: '1m' } }, trusted: { messages: { limit: 1, window: '1m' } } },
  });
  const { lines, metrics } = gateway;

  before(() => gateway.start());
  after(() => gateway.stop());

  async function session(connect: { hostname: string; port: number; address: string }, offer = POSTFIX_OFFER): Promise<MilterClient> {
    const c = await MilterClient.connect(gateway.address);
    const negotiated = await c.negotiate(offer);
    assert.equal((negotiated.protocol & ProtocolFlag.NR_MAIL) !== 0, (offer.protocol & ProtocolFlag.NR_MAIL) !== 0, 'the MAIL reply is waived when the MTA offers it');
    await c.send({ type: 'connect', family: AddressFamily.INET, ...connect }, [['j', 'mx.example.test'], ['{daemon_addr}', '127.0.0.1']]);
    await c.send({ type: 'helo', name: connect.hostname });
    return c;
  }

  const finalText = (r: Awaited<ReturnType<MilterClient['send']>>): string =>
    r === undefined ? 'no reply' : r.final.type === 'replycode' ? r.final.text : r.final.type;

  async function recipientMetric(outcome: string): Promise<number> {
    const text = await metrics.registry.metrics();
    return Number(new RegExp(`^pmt_recipients_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? '0');
  }

  test('SMTP: the message over the limit is refused at each of its RCPTs, the recipient checks are not run', async () => {
    const c = await session({ hostname: '[192.0.2.90]', port: 40100, address: '192.0.2.90' });
    assert.equal(finalText(await c.send({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] })), 'no reply');
    assert.equal(finalText(await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] })), 'continue', 'the first message is within the limit');
    await c.send({ type: 'abort' });
    const tempfailedBefore = await recipientMetric('tempfailed');
    assert.equal(finalText(await c.send({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] })), 'no reply');
    for (const to of ['<alice@example.test>', '<bob@example.test>', '<victim@elsewhere.example>']) {
      // The relay recipient gets the message's refusal, not relay-denied: nothing but the refusal is checked.
      assert.equal(finalText(await c.send({ type: 'rcpt', recipient: to, esmtpArgs: [] })), TOO_MANY, to);
    }
    assert.equal((await recipientMetric('tempfailed')) - tempfailedBefore, 3);
    await c.send({ type: 'abort' });
    await c.quit();
    const refusals = lines.filter((l) => l['msg'] === 'refused at mail: Too many messages from your address: at most 1 per 1 min; try again later');
    assert.equal(refusals.length, 1, 'the refusal is logged once');
    const line = lines.find((l) => l['msg'] === 'message' && l['client'] === '192.0.2.90' && l['verdict'] === 'refused-envelope');
    assert.ok(line, JSON.stringify(lines));
    assert.equal(line['refusedRecipients'], 4, JSON.stringify(line)); // MAIL plus its three recipients
  });

  test('local submission: RCPT is never refused; the message over the limit is refused at end of message', async () => {
    const local = { hostname: 'localhost', port: 0, address: '127.0.0.1' };
    const first = await session(local);
    await first.send({ type: 'mail', sender: 'root@example.test', esmtpArgs: [] });
    assert.equal(finalText(await first.send({ type: 'rcpt', recipient: 'alice@example.test', esmtpArgs: [] })), 'continue');
    assert.equal(finalText(await first.send({ type: 'eom', chunk: Buffer.from('Subject: one\r\n\r\nfirst\r\n') })), 'accept');
    await first.quit();

    // Postfix opens a milter connection per local submission.
    const second = await session(local);
    await second.send({ type: 'mail', sender: 'root@example.test', esmtpArgs: [] });
    assert.equal(finalText(await second.send({ type: 'rcpt', recipient: 'alice@example.test', esmtpArgs: [] })), 'continue');
    assert.equal(finalText(await second.send({ type: 'eom', chunk: Buffer.from('Subject: two\r\n\r\nsecond\r\n') })), TOO_MANY);
    await second.quit();
  });

  test('an MTA that cannot waive the MAIL reply (older protocol) gets the refusal at MAIL itself', async () => {
    const c = await session({ hostname: '[192.0.2.91]', port: 40101, address: '192.0.2.91' }, { ...POSTFIX_OFFER, protocol: POSTFIX_OFFER.protocol & ~ProtocolFlag.NR_MAIL });
    assert.equal(finalText(await c.send({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] })), 'continue', 'within the limit');
    await c.send({ type: 'abort' });
    assert.equal(finalText(await c.send({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] })), TOO_MANY);
    await c.quit();
  });
});
