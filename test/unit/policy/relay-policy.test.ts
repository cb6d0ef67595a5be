// The relay decision over every address form of peers.md §4.1 (R1–R14, S1–S6) and the extra variants, each
// for an untrusted, a trusted and an authenticated client; then the MTA cross-check, the null-sender rule and
// trusted-network matching.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientIdentity, EnvelopeDecision } from 'postfix-milter-ts/policy/decision.js';
import { relaySchema } from 'postfix-milter-ts/policy/envelope-config.js';
import { RelayPolicy, type RecipientContext } from 'postfix-milter-ts/policy/relay-policy.js';

// OURS = ours.test, [OURIP] = [192.0.2.1], EXT = ext.test
const policy = new RelayPolicy(
  relaySchema.parse({
    trustedNetworks: ['127.0.0.0/8', '::1', '10.0.0.0/8', '2001:db8:aaaa::/48'],
    // An IDN entry written in Unicode: stored as A-labels, as addresses compare.
    localDomains: ['ours.test', 'localhost', 'bücher.test', '.xn--bcher-kva.test'],
    relayDomains: ['relayed.test', '.relayed.test'],
    relayNextHops: ['[10.9.9.9]:25'],
    ownAddresses: ['192.0.2.1', '2001:db8::25'],
  }),
);

/** What the milter protocol delivers for a UTF-8 argument: one character per byte. */
const wire = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

const UNTRUSTED: ClientIdentity = { address: '198.51.100.7', hostname: 'unknown', authUser: undefined };
const TRUSTED: ClientIdentity = { address: '10.1.2.3', hostname: 'app.internal', authUser: undefined };
const AUTHENTICATED: ClientIdentity = { address: '198.51.100.7', hostname: 'unknown', authUser: 'alice' };

const FIRST: RecipientContext = { acceptedRecipients: 0, nullSender: false };

/** 'pass' or the refusal's rule. */
function outcome(decision: EnvelopeDecision): string {
  return decision.type === 'pass' ? 'pass' : decision.rule;
}

type Row = readonly [id: string, address: string, untrusted: string, trusted: string, authenticated: string];

const RCPT_TABLE: readonly Row[] = [
  ['R1', '<u@ext.test>', 'relay-denied', 'pass', 'pass'],
  ['R2', '<u%ext.test@[192.0.2.1]>', 'percent-hack', 'pass', 'pass'],
  ['R3', '<u%ext.test@ours.test>', 'percent-hack', 'pass', 'pass'],
  ['R4', '<"u@ext.test">', 'quoted-routing', 'pass', 'pass'],
  ['R5', '<"u%ext.test">', 'quoted-routing', 'pass', 'pass'],
  ['R6', '<u@ext.test@[192.0.2.1]>', 'multiple-at', 'pass', 'pass'],
  ['R7', '<"u@ext.test"@[192.0.2.1]>', 'quoted-routing', 'pass', 'pass'],
  ['R8', '<u@ext.test@ours.test>', 'multiple-at', 'pass', 'pass'],
  ['R9', '<@[192.0.2.1]:u@ext.test>', 'source-route', 'pass', 'pass'],
  ['R10', '<@ours.test:u@ext.test>', 'source-route', 'pass', 'pass'],
  ['R11', '<ext.test!u>', 'bang-path', 'pass', 'pass'],
  ['R12', '<ext.test!u@[192.0.2.1]>', 'bang-path', 'pass', 'pass'],
  ['R13', '<ext.test!u@ours.test>', 'bang-path', 'pass', 'pass'],
  ['R14', '<u@[192.0.2.1]>', 'pass', 'pass', 'pass'],
  ['multi-hop source route', '<@a.test,@b.test:u@ext.test>', 'source-route', 'pass', 'pass'],
  ['source route to ours', '<@ours.test:u@ours.test>', 'source-route', 'pass', 'pass'],
  ['percent route with local hop', '<u%ext.test%ours.test@ours.test>', 'percent-hack', 'pass', 'pass'],
  ['quoted with escaped @', '<"u\\@ext.test"@ours.test>', 'quoted-routing', 'pass', 'pass'],
  ['backslash-escaped @', '<u\\@ext.test@ours.test>', 'quoted-routing', 'pass', 'pass'],
  ['external domain, trailing dot', '<u@ext.test.>', 'relay-denied', 'pass', 'pass'],
  ['external domain, mixed case', '<u@EXT.Test>', 'relay-denied', 'pass', 'pass'],
  ['our domain, trailing dot', '<u@ours.test.>', 'pass', 'pass', 'pass'],
  ['our domain, mixed case', '<U@Ours.TEST>', 'pass', 'pass', 'pass'],
  ['our domain, no brackets', 'u@ours.test', 'pass', 'pass', 'pass'],
  ['our domain, quoted local part', '<"john smith"@ours.test>', 'pass', 'pass', 'pass'],
  ['suffix without a dot is not ours', '<u@notours.test>', 'relay-denied', 'pass', 'pass'],
  ['subdomain of an exact entry is not ours', '<u@mail.ours.test>', 'relay-denied', 'pass', 'pass'],
  ['relay domain', '<u@relayed.test>', 'pass', 'pass', 'pass'],
  ['relay subdomain (.entry)', '<u@deep.sub.relayed.test>', 'pass', 'pass', 'pass'],
  ['external IPv4 literal', '<u@[203.0.113.5]>', 'domain-literal', 'pass', 'pass'],
  ['our IPv6 literal', '<u@[IPv6:2001:db8:0::25]>', 'pass', 'pass', 'pass'],
  ['our IPv4 as mapped IPv6 literal', '<u@[IPv6:::ffff:192.0.2.1]>', 'pass', 'pass', 'pass'],
  ['external IPv6 literal', '<u@[IPv6:2001:db8::99]>', 'domain-literal', 'pass', 'pass'],
  ['unbracketed IP domain', '<u@192.0.2.1>', 'numeric-domain', 'pass', 'pass'],
  ['null domain', '<u@>', 'null-domain', 'null-domain', 'null-domain'],
  ['unqualified recipient', '<u>', 'missing-domain', 'pass', 'pass'],
  ['unqualified postmaster (RFC 5321)', '<Postmaster>', 'pass', 'pass', 'pass'],
  ['null address as recipient', '<>', 'bad-recipient-syntax', 'bad-recipient-syntax', 'bad-recipient-syntax'],
  ['unterminated quote', '<"u@ext.test>', 'bad-recipient-syntax', 'bad-recipient-syntax', 'bad-recipient-syntax'],
  ['X.400 encoding at our gateway', '<"/c=us/admd=x/s=u(a)ext.test/"@ours.test>', 'pass', 'pass', 'pass'],
  ['X.400 encoding at a foreign gateway', '<"/c=us/s=u/"@x400gw.test>', 'relay-denied', 'pass', 'pass'],
  ['DECnet encoding', '<"gw::smtp%\\"u@ext.test\\""@ours.test>', 'quoted-routing', 'pass', 'pass'],
  ['our IDN (SMTPUTF8)', wire('<alice@bücher.test>'), 'pass', 'pass', 'pass'],
  ['our IDN, subdomain entry', wire('<alice@mx.bücher.test>'), 'pass', 'pass', 'pass'],
  ['a foreign IDN', wire('<alice@bücher.example>'), 'relay-denied', 'pass', 'pass'],
  ['invalid UTF-8', '<alice@b\xfccher.test>', 'bad-recipient-syntax', 'bad-recipient-syntax', 'bad-recipient-syntax'],
];

const MAIL_TABLE: readonly Row[] = [
  ['S1', '<>', 'pass', 'pass', 'pass'],
  ['S2', '<s@ext.test>', 'pass', 'pass', 'pass'],
  ['S3', '<s@ours.test>', 'spoofed-sender', 'pass', 'pass'],
  ['S4', '<s@[192.0.2.1]>', 'spoofed-sender', 'pass', 'pass'],
  ['S5', '<s@localhost>', 'spoofed-sender', 'pass', 'pass'],
  ['S6', '<s>', 'unqualified-sender', 'pass', 'pass'],
  ['our domain, trailing dot and case', '<s@OURS.test.>', 'spoofed-sender', 'pass', 'pass'],
  ['relay domain sender', '<s@x.relayed.test>', 'spoofed-sender', 'pass', 'pass'],
  ['routed through ours to ext', '<@ours.test:s@ext.test>', 'pass', 'pass', 'pass'],
  ['routed to ours', '<s%ours.test@ext.test>', 'spoofed-sender', 'pass', 'pass'],
  ['showing ours, routed on', '<s%ext.test@ours.test>', 'spoofed-sender', 'pass', 'pass'],
  ['showing ours, bang path on', '<ext.test!s@ours.test>', 'spoofed-sender', 'pass', 'pass'],
  ['null domain', '<s@>', 'bad-sender-syntax', 'bad-sender-syntax', 'bad-sender-syntax'],
  ['our IDN (SMTPUTF8)', wire('<alice@bücher.test>'), 'spoofed-sender', 'pass', 'pass'],
  ['our domain behind a soft hyphen', wire('<ceo@ou\u00ADrs.test>'), 'spoofed-sender', 'pass', 'pass'],
  ['invalid UTF-8', '<alice@b\xfccher.test>', 'bad-sender-syntax', 'bad-sender-syntax', 'bad-sender-syntax'],
];

const CLIENTS = [
  ['untrusted', UNTRUSTED],
  ['trusted', TRUSTED],
  ['authenticated', AUTHENTICATED],
] as const;

describe('RCPT TO decision table', () => {
  test('covers at least 30 address forms and every R1–R14 form', () => {
    assert.ok(RCPT_TABLE.length + MAIL_TABLE.length >= 30);
    for (let i = 1; i <= 14; i++) assert.ok(RCPT_TABLE.some(([id]) => id === `R${i}`), `R${i} missing`);
    for (let i = 1; i <= 6; i++) assert.ok(MAIL_TABLE.some(([id]) => id === `S${i}`), `S${i} missing`);
  });
  for (const [id, address, ...expected] of RCPT_TABLE) {
    for (const [index, [name, client]] of CLIENTS.entries()) {
      test(`${id} ${address} from ${name} client → ${expected[index]}`, () => {
        assert.equal(outcome(policy.checkRecipient(client, address, FIRST)), expected[index]);
      });
    }
  }
});

describe('MAIL FROM decision table', () => {
  for (const [id, address, ...expected] of MAIL_TABLE) {
    for (const [index, [name, client]] of CLIENTS.entries()) {
      test(`${id} ${address} from ${name} client → ${expected[index]}`, () => {
        assert.equal(outcome(policy.checkSender(client, address)), expected[index]);
      });
    }
  }

  test('spoofed-sender check can be turned off', () => {
    const lenient = new RelayPolicy(relaySchema.parse({ localDomains: ['ours.test'], refuseOwnDomainSenderFromUntrusted: false }));
    assert.equal(outcome(lenient.checkSender(UNTRUSTED, '<s@ours.test>')), 'pass');
    assert.equal(outcome(lenient.checkSender(UNTRUSTED, '<s>')), 'pass');
    assert.equal(outcome(lenient.checkSender(UNTRUSTED, '<s@>')), 'bad-sender-syntax');
  });

  test('the server address the client connected to counts as ours', () => {
    assert.equal(outcome(policy.checkSender(UNTRUSTED, '<s@[198.18.0.1]>')), 'pass');
    assert.equal(outcome(policy.checkSender(UNTRUSTED, '<s@[198.18.0.1]>', { serverAddress: '198.18.0.1' })), 'spoofed-sender');
  });
});

describe('refusal replies', () => {
  const cases: readonly [string, () => EnvelopeDecision, number, string][] = [
    ['relay denied', () => policy.checkRecipient(UNTRUSTED, '<u@ext.test>', FIRST), 554, '5.7.1'],
    ['routing trick', () => policy.checkRecipient(UNTRUSTED, '<u%ext.test@ours.test>', FIRST), 554, '5.7.1'],
    ['spoofed sender', () => policy.checkSender(UNTRUSTED, '<s@ours.test>'), 554, '5.7.1'],
    ['bad recipient syntax', () => policy.checkRecipient(TRUSTED, '<u@>', FIRST), 553, '5.1.3'],
    ['bad sender syntax', () => policy.checkSender(TRUSTED, '<s@>'), 553, '5.1.7'],
    ['bounce with two recipients', () => policy.checkRecipient(TRUSTED, '<u@ours.test>', { acceptedRecipients: 1, nullSender: true }), 554, '5.7.1'],
  ];
  for (const [name, decide, code, xcode] of cases) {
    test(`${name}: ${code} ${xcode}, class reject, label-safe rule, readable text`, () => {
      const d = decide();
      assert.equal(d.type, 'refuse');
      if (d.type !== 'refuse') return;
      assert.equal(d.code, code);
      assert.equal(d.xcode, xcode);
      assert.equal(d.class, 'reject');
      assert.match(d.rule, /^[a-z][a-z0-9-]*$/);
      assert.ok(d.text.length > 10 && d.text.length < 200, d.text);
    });
  }
});

describe('null sender', () => {
  const cases: readonly [string, RecipientContext, ClientIdentity, string][] = [
    ['a bounce with no recipient accepted yet', { acceptedRecipients: 0, nullSender: true }, UNTRUSTED, 'pass'],
    ['a bounce with one recipient accepted, untrusted', { acceptedRecipients: 1, nullSender: true }, UNTRUSTED, 'null-sender-recipients'],
    ['a bounce with one recipient accepted, trusted', { acceptedRecipients: 1, nullSender: true }, TRUSTED, 'null-sender-recipients'],
    ['a bounce with two recipients accepted, authenticated', { acceptedRecipients: 2, nullSender: true }, AUTHENTICATED, 'null-sender-recipients'],
    ['a normal message with one recipient accepted', { acceptedRecipients: 1, nullSender: false }, UNTRUSTED, 'pass'],
  ];
  for (const [name, context, client, expected] of cases) {
    test(`${name} → ${expected}`, () => {
      assert.equal(outcome(policy.checkRecipient(client, '<u@ours.test>', context)), expected);
    });
  }

  test('the limit is configurable and can be turned off', () => {
    const two = new RelayPolicy(relaySchema.parse({ localDomains: ['ours.test'], nullSenderMaxRecipients: 2 }));
    const none = new RelayPolicy(relaySchema.parse({ localDomains: ['ours.test'], nullSenderMaxRecipients: null }));
    assert.equal(outcome(two.checkRecipient(UNTRUSTED, '<u@ours.test>', { acceptedRecipients: 1, nullSender: true })), 'pass');
    assert.equal(outcome(two.checkRecipient(UNTRUSTED, '<u@ours.test>', { acceptedRecipients: 2, nullSender: true })), 'null-sender-recipients');
    assert.equal(outcome(none.checkRecipient(UNTRUSTED, '<u@ours.test>', { acceptedRecipients: 50, nullSender: true })), 'pass');
  });
});

describe('cross-check with the MTA routing ({rcpt_mailer}, {rcpt_host}, {rcpt_addr})', () => {
  const cases: readonly [string, string, Partial<RecipientContext>, ClientIdentity, string][] = [
    ['local domain delivered locally (Postfix local)', '<u@ours.test>', { rcptMailer: 'local', rcptHost: 'ours.test' }, UNTRUSTED, 'pass'],
    ['local domain to virtual mailbox', '<u@ours.test>', { rcptMailer: 'virtual', rcptHost: 'ours.test' }, UNTRUSTED, 'pass'],
    ['local domain the MTA sends out over smtp', '<u@ours.test>', { rcptMailer: 'smtp', rcptHost: 'ext.test' }, UNTRUSTED, 'mta-routes-out'],
    ['local domain the MTA sends out (Sendmail esmtp, upper case)', '<u@ours.test>', { rcptMailer: 'ESMTP', rcptHost: 'ext.test' }, UNTRUSTED, 'mta-routes-out'],
    ['our IP literal routed out', '<u@[192.0.2.1]>', { rcptMailer: 'smtp', rcptHost: '[192.0.2.1]' }, UNTRUSTED, 'mta-routes-out'],
    ['recipient the MTA already rejected', '<u@ours.test>', { rcptMailer: 'error', rcptHost: '5.1.1' }, UNTRUSTED, 'pass'],
    ['relay domain to its own MX', '<u@relayed.test>', { rcptMailer: 'relay', rcptHost: 'relayed.test' }, UNTRUSTED, 'pass'],
    ['relay domain to a host in a relay subdomain', '<u@relayed.test>', { rcptMailer: 'relay', rcptHost: '[mx.relayed.test]:25' }, UNTRUSTED, 'pass'],
    ['relay domain to the configured next hop', '<u@relayed.test>', { rcptMailer: 'smtp', rcptHost: '[10.9.9.9]' }, UNTRUSTED, 'pass'],
    ['relay domain to a foreign host', '<u@relayed.test>', { rcptMailer: 'smtp', rcptHost: 'ext.test' }, UNTRUSTED, 'mta-routes-out'],
    ['relay domain, no host given', '<u@relayed.test>', { rcptMailer: 'relay' }, UNTRUSTED, 'pass'],
    ['trusted client, routed out', '<u@ours.test>', { rcptMailer: 'smtp', rcptHost: 'ext.test' }, TRUSTED, 'pass'],
    ['foreign domain the MTA would deliver locally stays foreign', '<u@ext.test>', { rcptMailer: 'local', rcptHost: 'ext.test' }, UNTRUSTED, 'relay-denied'],
    ['the address the client connected to, as literal', '<u@[198.18.0.1]>', { serverAddress: '198.18.0.1' }, UNTRUSTED, 'pass'],
    ['another literal, with a server address given', '<u@[198.18.0.2]>', { serverAddress: '198.18.0.1' }, UNTRUSTED, 'domain-literal'],
    // Sendmail's virtusertable forwards `friend@ours.test` to `friend@elsewhere.example`: the admin's table, not the client.
    ['local address forwarded by the MTA (virtusertable)', '<friend@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'elsewhere.example', rcptAddr: 'friend@elsewhere.example' }, UNTRUSTED, 'pass'],
    ['catch-all forward keeping the local part', '<anyone@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'elsewhere.example', rcptAddr: 'anyone@elsewhere.example' }, UNTRUSTED, 'pass'],
    ['relay domain forwarded by the MTA', '<friend@relayed.test>', { rcptMailer: 'esmtp', rcptHost: 'elsewhere.example', rcptAddr: 'friend@elsewhere.example' }, UNTRUSTED, 'pass'],
    ['local address routed out unchanged', '<u@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: 'u@ours.test' }, UNTRUSTED, 'mta-routes-out'],
    ['unchanged but for case and a trailing dot', '<User@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: '<user@OURS.test.>' }, UNTRUSTED, 'mta-routes-out'],
    ['routed out, no {rcpt_addr}', '<u@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test' }, UNTRUSTED, 'mta-routes-out'],
    ['routed out, malformed {rcpt_addr}', '<u@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: '<u@ext.test' }, UNTRUSTED, 'mta-routes-out'],
    // Forms the MTA may route on that are not plain: the rewritten {rcpt_addr} does not excuse them.
    ['DECnet node::user the MTA routes out', '<ext::u@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext', rcptAddr: 'u@ext' }, UNTRUSTED, 'mta-routes-out'],
    ['quoted local part the MTA routes out', '<"u ext"@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: 'u@ext.test' }, UNTRUSTED, 'mta-routes-out'],
    ['our IP literal the MTA rewrites', '<u@[192.0.2.1]>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: 'u@ext.test' }, UNTRUSTED, 'mta-routes-out'],
    // Relay tricks are refused before the MTA's routing is looked at, whatever it reports.
    ['percent hack the MTA resolves', '<u%ext.test@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: 'u@ext.test' }, UNTRUSTED, 'percent-hack'],
    ['bang path the MTA resolves', '<ext.test!u@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: 'u@ext.test' }, UNTRUSTED, 'bang-path'],
    ['quoted @ the MTA resolves', '<"u@ext.test"@ours.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: 'u@ext.test' }, UNTRUSTED, 'quoted-routing'],
    ['source route the MTA resolves', '<@ours.test:u@ext.test>', { rcptMailer: 'esmtp', rcptHost: 'ext.test', rcptAddr: 'u@ext.test' }, UNTRUSTED, 'source-route'],
  ];
  for (const [name, address, extra, client, expected] of cases) {
    test(`${name} → ${expected}`, () => {
      assert.equal(outcome(policy.checkRecipient(client, address, { ...FIRST, ...extra })), expected);
    });
  }
});

describe('trusted networks and authentication', () => {
  const cases: readonly [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.255.3.4', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['10.200.0.1', true],
    ['11.0.0.1', false],
    ['2001:db8:aaaa:1::5', true],
    ['2001:db8:aaab::1', false],
    ['198.51.100.7', false],
    ['fe80::1', false],
    ['', false],
    ['not-an-address', false],
  ];
  for (const [address, trusted] of cases) {
    test(`${JSON.stringify(address)} trusted: ${trusted}`, () => {
      assert.equal(policy.isTrusted({ address, hostname: '', authUser: undefined }), trusted);
    });
  }

  test('default trusted networks are loopback only', () => {
    const defaults = new RelayPolicy(relaySchema.parse({}));
    assert.equal(defaults.isTrusted({ address: '127.0.0.1', hostname: '', authUser: undefined }), true);
    assert.equal(defaults.isTrusted({ address: '::1', hostname: '', authUser: undefined }), true);
    assert.equal(defaults.isTrusted({ address: '10.0.0.1', hostname: '', authUser: undefined }), false);
    assert.equal(defaults.isTrusted({ address: '::2', hostname: '', authUser: undefined }), false);
    assert.equal(outcome(defaults.checkRecipient(UNTRUSTED, '<u@ext.test>', FIRST)), 'relay-denied');
  });

  test('a client address only in the forms an MTA writes: loopback shorthand and zones are not trusted', () => {
    const defaults = new RelayPolicy(relaySchema.parse({}));
    for (const address of ['2130706433', '127.1', '0x7f.1', '017700000001', '127.000.000.001', '::1%lo', '::1]:25/x?[', '/var/run/sock']) {
      assert.equal(defaults.isTrusted({ address, hostname: '', authUser: undefined }), false, address);
    }
    assert.equal(defaults.isTrusted({ address: '::ffff:127.0.0.1', hostname: '', authUser: undefined }), true, 'IPv4-mapped');
  });

  test('an IPv4-mapped IPv6 network entry trusts the IPv4 network', () => {
    const mapped = new RelayPolicy(relaySchema.parse({ trustedNetworks: ['::ffff:192.0.2.0/120', '203.0.113.9'] }));
    assert.equal(mapped.isTrusted({ address: '192.0.2.200', hostname: '', authUser: undefined }), true);
    assert.equal(mapped.isTrusted({ address: '192.0.3.1', hostname: '', authUser: undefined }), false);
    assert.equal(mapped.isTrusted({ address: '203.0.113.9', hostname: '', authUser: undefined }), true);
    assert.equal(mapped.isTrusted({ address: '203.0.113.10', hostname: '', authUser: undefined }), false);
  });

  test('an unknown client address is untrusted unless configured', () => {
    const trusting = new RelayPolicy(relaySchema.parse({ trustUnknownClientAddress: true }));
    assert.equal(trusting.isTrusted({ address: '', hostname: 'localhost', authUser: undefined }), true);
  });

  test('an empty login name is not authentication', () => {
    assert.equal(policy.mayRelay({ ...UNTRUSTED, authUser: '' }), false);
    assert.equal(policy.mayRelay(AUTHENTICATED), true);
  });
});
