// The relay and rateLimit config sections: safe defaults, normalised entries, unknown keys refused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rateLimitSchema, relaySchema } from 'postfix-milter-ts/policy/envelope-config.js';

describe('relaySchema', () => {
  test('defaults: loopback trusted, only localhost ours, spoofed-sender check on, one recipient per bounce', () => {
    const c = relaySchema.parse({});
    assert.deepEqual(c.trustedNetworks, ['127.0.0.0/8', '::1/128']);
    assert.deepEqual(c.localDomains, ['localhost']);
    assert.deepEqual(c.relayDomains, []);
    assert.equal(c.refuseOwnDomainSenderFromUntrusted, true);
    assert.equal(c.nullSenderMaxRecipients, 1);
    assert.equal(c.trustUnknownClientAddress, false);
  });

  test('domains are normalised; next hops lose brackets and port', () => {
    const c = relaySchema.parse({ localDomains: ['Example.COM.', '.Sub.Example.com'], relayNextHops: ['[Inner.Example.com]:25', '[IPv6:2001:DB8::1]'] });
    assert.deepEqual(c.localDomains, ['example.com', '.sub.example.com']);
    assert.deepEqual(c.relayNextHops, ['inner.example.com', '2001:db8::1']);
  });

  test('internationalised domains are stored as A-labels, the form addresses are compared in', () => {
    const c = relaySchema.parse({ localDomains: ['Bücher.test', '.bücher.test', 'xn--bcher-kva.example'], relayDomains: ['münchen.example.'] });
    assert.deepEqual(c.localDomains, ['xn--bcher-kva.test', '.xn--bcher-kva.test', 'xn--bcher-kva.example']);
    assert.deepEqual(c.relayDomains, ['xn--mnchen-3ya.example']);
  });

  const invalid: readonly [string, unknown, RegExp][] = [
    ['unknown key', { trustedNetwork: [] }, /trustedNetwork/],
    ['bad CIDR', { trustedNetworks: ['10.0.0.0/33'] }, /not an IPv4 or IPv6 address or CIDR/],
    ['bad domain', { localDomains: ['exa mple.com'] }, /a domain such as/],
    ['bad IDN', { localDomains: ['bü..test'] }, /a domain such as/],
    ['bad own address', { ownAddresses: ['example.com'] }, /not an IPv4 or IPv6 address/],
    ['zero bounce recipients', { nullSenderMaxRecipients: 0 }, /too_small|>=?\s*1|greater/i],
  ];
  for (const [name, input, message] of invalid) {
    test(`refuses ${name}`, () => {
      const r = relaySchema.safeParse(input);
      assert.equal(r.success, false);
      assert.match(JSON.stringify(r.error?.issues), message);
    });
  }
});

describe('rateLimitSchema', () => {
  test('defaults: on, in memory, LRU of 100000, limits for every profile', () => {
    const c = rateLimitSchema.parse({});
    assert.equal(c.enabled, true);
    assert.deepEqual(c.store, { type: 'memory' });
    assert.equal(c.maxKeys, 100_000);
    assert.deepEqual(c.untrusted.connections, { limit: 60, window: 60_000 });
    assert.equal(c.untrusted.recipientsPerMessage, 100);
    assert.ok((c.trusted.messages?.limit ?? 0) > (c.untrusted.messages?.limit ?? 0), 'trusted gets more, but is limited');
    assert.ok(c.authenticated.messages !== null);
  });

  test('durations as strings, null turns a limit off, partial profiles keep other defaults', () => {
    const c = rateLimitSchema.parse({ untrusted: { messages: { limit: 5, window: '10m' }, connections: null } });
    assert.deepEqual(c.untrusted.messages, { limit: 5, window: 600_000 });
    assert.equal(c.untrusted.connections, null);
    assert.deepEqual(c.untrusted.recipients, { limit: 1000, window: 3_600_000 });
  });

  test('redis store defaults: local fallback, short command timeout', () => {
    const c = rateLimitSchema.parse({ store: { type: 'redis' } });
    assert.deepEqual(c.store, { type: 'redis', url: 'redis://127.0.0.1:6379', keyPrefix: 'pmt:rate:', commandTimeout: 250, connectTimeout: 2000, fallback: 'local' });
  });

  const invalid: readonly [string, unknown][] = [
    ['unknown key', { limits: {} }],
    ['unknown profile key', { trusted: { connection: null } }],
    ['unknown store', { store: { type: 'memcached' } }],
    ['bad fallback', { store: { type: 'redis', fallback: 'open' } }],
    ['bad URL', { store: { type: 'redis', url: 'http://x' } }],
    ['connections for authenticated users', { authenticated: { connections: null } }],
    ['zero limit', { untrusted: { messages: { limit: 0, window: 60 } } }],
    ['tiny LRU', { maxKeys: 10 }],
  ];
  for (const [name, input] of invalid) {
    test(`refuses ${name}`, () => {
      assert.equal(rateLimitSchema.safeParse(input).success, false);
    });
  }
});
