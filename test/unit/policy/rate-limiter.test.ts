// Rate limits per stage with a clock the test moves: keys (IPv4, IPv6 /64, user), profiles (untrusted,
// trusted, authenticated), recovery after the window, the per-message recipient cap, store failures.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CounterStoreUnavailableError, MemoryCounterStore, type CounterStore } from 'postfix-milter-ts/policy/counter-store.js';
import type { ClientIdentity, EnvelopeDecision } from 'postfix-milter-ts/policy/decision.js';
import { rateLimitSchema } from 'postfix-milter-ts/policy/envelope-config.js';
import { RateLimiter, addressKey } from 'postfix-milter-ts/policy/rate-limiter.js';

const client = (address: string, authUser?: string): ClientIdentity => ({ address, hostname: 'unknown', authUser });
const isTrusted = (c: ClientIdentity): boolean => c.address.startsWith('10.');

const CONFIG = rateLimitSchema.parse({
  untrusted: { connections: { limit: 3, window: 10 }, messages: { limit: 2, window: 60 }, recipients: { limit: 5, window: 60 }, recipientsPerMessage: 3 },
  trusted: { connections: { limit: 6, window: 10 }, messages: { limit: 4, window: 60 }, recipients: null, recipientsPerMessage: 50 },
  authenticated: { messages: { limit: 3, window: 60 }, recipients: { limit: 10, window: 60 }, recipientsPerMessage: 20 },
});

function setup(config = CONFIG): { limiter: RateLimiter; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const limiter = new RateLimiter(config, new MemoryCounterStore(1000), { trusted: isTrusted, now: () => clock.now });
  return { limiter, clock };
}

const outcome = (d: EnvelopeDecision): string => (d.type === 'pass' ? 'pass' : d.rule);

async function repeat(times: number, decide: () => Promise<EnvelopeDecision>): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < times; i++) out.push(outcome(await decide()));
  return out;
}

describe('addressKey', () => {
  const cases: readonly [string, string][] = [
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:db8:1:3::1', '2001:db8:1:3::/64'],
    ['', 'unknown'],
    ['garbage', 'other:garbage'],
  ];
  for (const [address, key] of cases) {
    test(`${JSON.stringify(address)} → ${key}`, () => assert.equal(addressKey(address), key));
  }
  test('configurable prefixes', () => {
    assert.equal(addressKey('192.0.2.77', 24, 64), '192.0.2.0/24');
    assert.equal(addressKey('2001:db8:1:2:3::1', 32, 48), '2001:db8:1::/48');
  });
});

describe('RateLimiter', () => {
  test('connections: limit, then 451 4.7.1, then recovery after the window', async () => {
    const { limiter, clock } = setup();
    const c = client('198.51.100.7');
    assert.deepEqual(await repeat(4, () => limiter.onConnect(c)), ['pass', 'pass', 'pass', 'rate-connections']);
    const refused = await limiter.onConnect(c);
    assert.equal(refused.type, 'refuse');
    if (refused.type === 'refuse') {
      assert.deepEqual([refused.class, refused.code, refused.xcode], ['tempfail', 451, '4.7.1']);
      assert.match(refused.text, /at most 3 per 10 s/);
    }
    clock.now += 9_000;
    assert.equal(outcome(await limiter.onConnect(c)), 'rate-connections', 'still inside the window');
    clock.now += 2_000; // 11 s: past window + one sub-window
    assert.deepEqual(await repeat(4, () => limiter.onConnect(c)), ['pass', 'pass', 'pass', 'rate-connections']);
  });

  test('IPv6 clients of one /64 share a counter; another /64 does not', async () => {
    const { limiter } = setup();
    assert.deepEqual(await repeat(2, () => limiter.onMessage(client('2001:db8:1:2::1'))), ['pass', 'pass']);
    assert.equal(outcome(await limiter.onMessage(client('2001:db8:1:2:dead:beef::9'))), 'rate-messages');
    assert.equal(outcome(await limiter.onMessage(client('2001:db8:1:3::1'))), 'pass');
  });

  test('authenticated users are counted by login wherever they connect from', async () => {
    const { limiter } = setup();
    assert.deepEqual(
      [
        outcome(await limiter.onMessage(client('198.51.100.1', 'alice'))),
        outcome(await limiter.onMessage(client('203.0.113.9', 'alice'))),
        outcome(await limiter.onMessage(client('10.0.0.5', 'alice'))),
        outcome(await limiter.onMessage(client('198.51.100.2', 'alice'))),
      ],
      ['pass', 'pass', 'pass', 'rate-messages'],
    );
    assert.equal(outcome(await limiter.onMessage(client('198.51.100.1', 'bob'))), 'pass', 'another user');
    assert.equal(outcome(await limiter.onMessage(client('198.51.100.1'))), 'pass', 'the same address, not authenticated');
    const refused = await limiter.onMessage(client('198.51.100.1', 'alice'));
    assert.ok(refused.type === 'refuse' && /this user/.test(refused.text));
  });

  test('trusted networks have their own (higher) limits, and are still limited', async () => {
    const { limiter } = setup();
    assert.deepEqual(await repeat(5, () => limiter.onMessage(client('10.1.1.1'))), ['pass', 'pass', 'pass', 'pass', 'rate-messages']);
    assert.deepEqual(await repeat(3, () => limiter.onMessage(client('198.51.100.7'))), ['pass', 'pass', 'rate-messages']);
  });

  test('a limit set to null is off', async () => {
    const { limiter } = setup();
    const results = await repeat(100, () => limiter.onRecipient(client('10.1.1.1'), 0));
    assert.ok(results.every((r) => r === 'pass'));
  });

  test('recipients over the window', async () => {
    const { limiter, clock } = setup();
    const c = client('198.51.100.7');
    assert.deepEqual(await repeat(6, () => limiter.onRecipient(c, 0)), ['pass', 'pass', 'pass', 'pass', 'pass', 'rate-recipients']);
    clock.now += 66_000;
    assert.equal(outcome(await limiter.onRecipient(c, 0)), 'pass');
  });

  test('recipients per message: 452 4.5.3 at the cap, per profile, without using the window', async () => {
    const { limiter } = setup();
    const c = client('198.51.100.7');
    assert.equal(outcome(await limiter.onRecipient(c, 2)), 'pass');
    const capped = await limiter.onRecipient(c, 3);
    assert.ok(capped.type === 'refuse');
    if (capped.type === 'refuse') assert.deepEqual([capped.rule, capped.code, capped.xcode, capped.class], ['rate-recipients-per-message', 452, '4.5.3', 'tempfail']);
    assert.equal(outcome(await limiter.onRecipient(client('198.51.100.7', 'alice'), 19)), 'pass');
    assert.equal(outcome(await limiter.onRecipient(client('198.51.100.7', 'alice'), 20)), 'rate-recipients-per-message');
    // The capped attempt used no window budget: 4 more of the 5 are left after the first.
    assert.deepEqual(await repeat(5, () => limiter.onRecipient(c, 0)), ['pass', 'pass', 'pass', 'pass', 'rate-recipients']);
  });

  test('connections are counted by address even when the identity carries a login', async () => {
    const { limiter } = setup();
    assert.deepEqual(await repeat(3, () => limiter.onConnect(client('198.51.100.7', 'alice'))), ['pass', 'pass', 'pass']);
    assert.equal(outcome(await limiter.onConnect(client('198.51.100.7'))), 'rate-connections');
  });

  test('disabled: everything passes', async () => {
    const { limiter } = setup(rateLimitSchema.parse({ enabled: false, untrusted: { connections: { limit: 1, window: 60 } } }));
    assert.deepEqual(await repeat(5, () => limiter.onConnect(client('198.51.100.7'))), ['pass', 'pass', 'pass', 'pass', 'pass']);
    assert.equal(outcome(await limiter.onRecipient(client('198.51.100.7'), 5000)), 'pass');
  });

  test('store unavailable (tempfail mode): 451 4.3.0, never a pass', async () => {
    const failing: CounterStore = {
      consume: () => Promise.reject(new CounterStoreUnavailableError('test')),
      close: () => Promise.resolve(),
    };
    const limiter = new RateLimiter(CONFIG, failing, { trusted: isTrusted });
    const d = await limiter.onMessage(client('198.51.100.7'));
    assert.ok(d.type === 'refuse');
    if (d.type === 'refuse') assert.deepEqual([d.rule, d.code, d.xcode, d.class], ['rate-store-unavailable', 451, '4.3.0', 'tempfail']);
  });

  test('other store errors are bugs and propagate', async () => {
    const broken: CounterStore = { consume: () => Promise.reject(new TypeError('bug')), close: () => Promise.resolve() };
    const limiter = new RateLimiter(CONFIG, broken, { trusted: isTrusted });
    await assert.rejects(limiter.onMessage(client('198.51.100.7')), TypeError);
  });

  test('profiles and keys', () => {
    const { limiter } = setup();
    assert.equal(limiter.profileOf(client('198.51.100.7')), 'untrusted');
    assert.equal(limiter.profileOf(client('10.0.0.1')), 'trusted');
    assert.equal(limiter.profileOf(client('10.0.0.1', 'alice')), 'authenticated');
    assert.equal(limiter.clientKey(client('10.0.0.1', 'alice')), 'user:alice');
    assert.equal(limiter.clientKey(client('2001:db8::1')), '2001:db8::/64');
  });
});
