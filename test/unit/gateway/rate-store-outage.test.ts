// The rate-limit counter store unavailable (Redis down with `fallback: tempfail`) when a client connects: its
// messages are tempfailed while the store is down and accepted as soon as it is back, in the same session; the
// connection is counted once the store answers; our outage is never recorded as the client's offence.
// Driven with the MTA-side client, no real servers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AddressFamily } from '@postfix-milter-ts/protocol';
import { MilterClient, POSTFIX_OFFER } from '@postfix-milter-ts/protocol/testing';
import { CounterStoreUnavailableError, MemoryCounterStore, type ConsumeResult, type CounterStore, type SlidingWindow } from 'postfix-milter-ts/policy/counter-store.js';
import { InMemoryGateway } from '../../harness/in-memory-gateway.js';

/** Counts in memory; while `down`, fails as the Redis store does with `fallback: tempfail`. */
class SwitchableStore implements CounterStore {
  down = false;
  private readonly memory = new MemoryCounterStore(1000);
  consume(key: string, window: SlidingWindow, nowMs: number, cost?: number): Promise<ConsumeResult> {
    if (this.down) return Promise.reject(new CounterStoreUnavailableError('Redis does not answer'));
    return this.memory.consume(key, window, nowMs, cost);
  }
  close(): Promise<void> {
    return this.memory.close();
  }
}

const STORE_DOWN = '451 4.3.0 Temporary failure checking rate limits; try again later';
const TOO_MANY_CONNECTIONS = /^451 4\.7\.1 Too many connections from your address/;

describe('rate-limit store unavailable at connect', () => {
  const store = new SwitchableStore();
  // One connection per minute, so a connection that was counted shows in the next one.
  const gateway = new InMemoryGateway({ relay: { localDomains: ['example.test'] }, rateLimit: { untrusted: { connections: { limit: 1, window: '1m' } } } }, store);

  before(() => gateway.start());
  after(() => gateway.stop());

  async function session(address: string): Promise<MilterClient> {
    const c = await MilterClient.connect(gateway.address);
    await c.negotiate(POSTFIX_OFFER);
    await c.send({ type: 'connect', family: AddressFamily.INET, hostname: `[${address}]`, port: 40300, address }, [['j', 'mx.example.test']]);
    await c.send({ type: 'helo', name: 'client.example.org' });
    return c;
  }

  const reply = (r: Awaited<ReturnType<MilterClient['send']>>): string =>
    r === undefined ? 'no reply' : r.final.type === 'replycode' ? r.final.text : r.final.type;

  async function message(c: MilterClient): Promise<string> {
    await c.send({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] });
    const r = reply(await c.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] }));
    await c.send({ type: 'abort' });
    return r;
  }

  test('the session tempfails while the store is down and recovers with it; the connection is then counted', async () => {
    store.down = true;
    const c = await session('192.0.2.70');
    assert.equal(await message(c), STORE_DOWN, 'store still down at MAIL');
    store.down = false;
    assert.equal(await message(c), 'continue', 'the same session, store back');
    assert.equal(await message(c), 'continue', 'the connection is counted once, not per message');
    await c.quit();

    const next = await session('192.0.2.70');
    assert.match(await message(next), TOO_MANY_CONNECTIONS, 'the first connection was counted when the store came back');
    await next.quit();
  });

  test('the store being down is not recorded as the client\'s offence', async () => {
    store.down = true;
    const c = await session('192.0.2.71');
    assert.equal(await message(c), STORE_DOWN);
    store.down = false;
    await c.quit();
    assert.deepEqual(gateway.offenders.top().filter((o) => o.address === '192.0.2.71'), []);
  });
});
