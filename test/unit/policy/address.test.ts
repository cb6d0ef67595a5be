// Address normalisation: every form classic open-relay testers use (peers.md §4.1) resolves to the domain
// the mail would really reach, with the tricks it used named.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseEnvelopeAddress, type AddressTrick } from 'postfix-milter-ts/policy/address.js';

interface MailboxCase {
  readonly id: string;
  readonly input: string;
  readonly domain: string | undefined;
  readonly localPart: string;
  readonly hops: readonly string[];
  readonly tricks: readonly AddressTrick[];
  readonly routed: boolean;
}

/** What the milter protocol delivers for a UTF-8 argument: one character per byte. */
const wire = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

// OURS = ours.test, [OURIP] = [192.0.2.1], EXT = ext.test
const MAILBOXES: readonly MailboxCase[] = [
  { id: 'R1', input: '<u@ext.test>', domain: 'ext.test', localPart: 'u', hops: ['ext.test'], tricks: [], routed: false },
  { id: 'R2', input: '<u%ext.test@[192.0.2.1]>', domain: 'ext.test', localPart: 'u', hops: ['[192.0.2.1]', 'ext.test'], tricks: ['domain-literal', 'percent-hack'], routed: true },
  { id: 'R3', input: '<u%ext.test@ours.test>', domain: 'ext.test', localPart: 'u', hops: ['ours.test', 'ext.test'], tricks: ['percent-hack'], routed: true },
  { id: 'R4', input: '<"u@ext.test">', domain: 'ext.test', localPart: 'u', hops: ['ext.test'], tricks: ['quoted-local-part', 'quoted-routing', 'missing-domain'], routed: true },
  { id: 'R5', input: '<"u%ext.test">', domain: 'ext.test', localPart: 'u', hops: ['ext.test'], tricks: ['quoted-local-part', 'quoted-routing', 'missing-domain', 'percent-hack'], routed: true },
  { id: 'R6', input: '<u@ext.test@[192.0.2.1]>', domain: 'ext.test', localPart: 'u', hops: ['[192.0.2.1]', 'ext.test'], tricks: ['multiple-at', 'domain-literal'], routed: true },
  { id: 'R7', input: '<"u@ext.test"@[192.0.2.1]>', domain: 'ext.test', localPart: 'u', hops: ['[192.0.2.1]', 'ext.test'], tricks: ['quoted-local-part', 'quoted-routing', 'domain-literal'], routed: true },
  { id: 'R8', input: '<u@ext.test@ours.test>', domain: 'ext.test', localPart: 'u', hops: ['ours.test', 'ext.test'], tricks: ['multiple-at'], routed: true },
  { id: 'R9', input: '<@[192.0.2.1]:u@ext.test>', domain: 'ext.test', localPart: 'u', hops: ['[192.0.2.1]', 'ext.test'], tricks: ['source-route', 'domain-literal'], routed: true },
  { id: 'R10', input: '<@ours.test:u@ext.test>', domain: 'ext.test', localPart: 'u', hops: ['ours.test', 'ext.test'], tricks: ['source-route'], routed: true },
  { id: 'R11', input: '<ext.test!u>', domain: 'ext.test', localPart: 'u', hops: ['ext.test'], tricks: ['missing-domain', 'bang-path'], routed: true },
  { id: 'R12', input: '<ext.test!u@[192.0.2.1]>', domain: 'ext.test', localPart: 'u', hops: ['[192.0.2.1]', 'ext.test'], tricks: ['domain-literal', 'bang-path'], routed: true },
  { id: 'R13', input: '<ext.test!u@ours.test>', domain: 'ext.test', localPart: 'u', hops: ['ours.test', 'ext.test'], tricks: ['bang-path'], routed: true },
  { id: 'R14', input: '<u@[192.0.2.1]>', domain: '[192.0.2.1]', localPart: 'u', hops: ['[192.0.2.1]'], tricks: ['domain-literal'], routed: false },
  { id: 'S2', input: '<s@ext.test>', domain: 'ext.test', localPart: 's', hops: ['ext.test'], tricks: [], routed: false },
  { id: 'S5', input: '<s@localhost>', domain: 'localhost', localPart: 's', hops: ['localhost'], tricks: [], routed: false },
  { id: 'S6', input: '<s>', domain: undefined, localPart: 's', hops: [], tricks: ['missing-domain'], routed: false },
  { id: 'multi-hop source route', input: '<@a.test,@b.test:u@ext.test>', domain: 'ext.test', localPart: 'u', hops: ['a.test', 'b.test', 'ext.test'], tricks: ['source-route'], routed: true },
  { id: 'percent route with local hop', input: '<u%ext.test%ours.test@ours.test>', domain: 'ext.test', localPart: 'u', hops: ['ours.test', 'ours.test', 'ext.test'], tricks: ['percent-hack'], routed: true },
  { id: 'quoted with escaped @', input: '<"u\\@ext.test"@ours.test>', domain: 'ext.test', localPart: 'u', hops: ['ours.test', 'ext.test'], tricks: ['quoted-local-part', 'escaped-character', 'quoted-routing'], routed: true },
  { id: 'backslash-escaped @', input: '<u\\@ext.test@ours.test>', domain: 'ext.test', localPart: 'u', hops: ['ours.test', 'ext.test'], tricks: ['escaped-character', 'quoted-routing'], routed: true },
  { id: 'multi-hop bang path', input: '<a.test!b.test!u>', domain: 'b.test', localPart: 'u', hops: ['a.test', 'b.test'], tricks: ['missing-domain', 'bang-path'], routed: true },
  { id: 'trailing dot and case', input: '<u@EXT.Test.>', domain: 'ext.test', localPart: 'u', hops: ['ext.test'], tricks: ['trailing-dot', 'mixed-case-domain'], routed: false },
  { id: 'local part case kept', input: '<John.Doe@ours.test>', domain: 'ours.test', localPart: 'John.Doe', hops: ['ours.test'], tricks: [], routed: false },
  { id: 'external IPv4 literal', input: '<u@[203.0.113.5]>', domain: '[203.0.113.5]', localPart: 'u', hops: ['[203.0.113.5]'], tricks: ['domain-literal'], routed: false },
  { id: 'IPv6 literal canonical', input: '<u@[IPv6:2001:DB8:0::25]>', domain: '[IPv6:2001:db8::25]', localPart: 'u', hops: ['[IPv6:2001:db8::25]'], tricks: ['domain-literal'], routed: false },
  { id: 'unbracketed IP', input: '<u@192.0.2.1>', domain: '192.0.2.1', localPart: 'u', hops: ['192.0.2.1'], tricks: ['numeric-domain'], routed: false },
  { id: 'unqualified postmaster', input: '<Postmaster>', domain: undefined, localPart: 'Postmaster', hops: [], tricks: ['missing-domain'], routed: false },
  { id: 'quoted local part with space', input: '<"john smith"@ours.test>', domain: 'ours.test', localPart: 'john smith', hops: ['ours.test'], tricks: ['quoted-local-part'], routed: false },
  { id: 'no angle brackets', input: 'u@ours.test', domain: 'ours.test', localPart: 'u', hops: ['ours.test'], tricks: ['no-angle-brackets'], routed: false },
  { id: 'X.400 gateway encoding', input: '<"/c=us/admd=x/s=u(a)ext.test/"@gw.test>', domain: 'gw.test', localPart: '/c=us/admd=x/s=u(a)ext.test/', hops: ['gw.test'], tricks: ['quoted-local-part'], routed: false },
  { id: 'DECnet gateway encoding', input: '<"gw::smtp%\\"u@ext.test\\""@gw.test>', domain: '"u', localPart: 'gw::smtp', hops: ['gw.test', 'ext.test"', '"u'], tricks: ['quoted-local-part', 'quoted-routing', 'escaped-character', 'percent-hack'], routed: true },
  { id: 'IDN (SMTPUTF8 bytes) to A-label', input: wire('<u@bücher.test>'), domain: 'xn--bcher-kva.test', localPart: 'u', hops: ['xn--bcher-kva.test'], tricks: [], routed: false },
  { id: 'IDN with a soft hyphen is the plain name', input: wire('<ceo@exam\u00ADple.test>'), domain: 'example.test', localPart: 'ceo', hops: ['example.test'], tricks: [], routed: false },
  { id: 'UTF-8 local part', input: wire('<élève@ext.test>'), domain: 'ext.test', localPart: 'élève', hops: ['ext.test'], tricks: [], routed: false },
];

describe('parseEnvelopeAddress: mailboxes', () => {
  for (const c of MAILBOXES) {
    test(`${c.id}: ${c.input}`, () => {
      const parsed = parseEnvelopeAddress(c.input);
      assert.equal(parsed.kind, 'mailbox', JSON.stringify(parsed));
      if (parsed.kind !== 'mailbox') return;
      assert.equal(parsed.domain, c.domain);
      assert.equal(parsed.localPart, c.localPart);
      assert.deepEqual(parsed.hops, c.hops);
      assert.deepEqual([...parsed.tricks].sort(), [...c.tricks].sort());
      assert.equal(parsed.routed, c.routed);
    });
  }
});

describe('parseEnvelopeAddress: null and malformed', () => {
  const cases: readonly [string, 'null' | 'malformed', RegExp | undefined][] = [
    ['<>', 'null', undefined],
    ['< >', 'null', undefined],
    ['<u@>', 'malformed', /empty domain/],
    ['<u@ext.test@>', 'malformed', /empty domain/],
    ['<u@ext..test>', 'malformed', /invalid domain/],
    ['<u@ext.test..>', 'malformed', /invalid domain/],
    ['<"u@ext.test>', 'malformed', /unterminated quoted/],
    ['<u@ext.test', 'malformed', /closing >/],
    ['u@ext.test>', 'malformed', /opening </],
    ['<u@[300.1.1.1]>', 'malformed', /domain literal/],
    ['<u@[IPv6:zz::1]>', 'malformed', /IPv6 literal/],
    ['<u@[192.0.2.1>', 'malformed', /unterminated domain literal/],
    ['<@ours.test>', 'malformed', /source route without a colon/],
    ['<@ours.test,ext.test:u@ext.test>', 'malformed', /hop 'ext.test' without @/],
    ['<@ext.test:@ours.test>', 'malformed', /empty local part/],
    ['<u v@ext.test>', 'malformed', /white space/],
    ['<u\r\n@ext.test>', 'malformed', /control characters/],
    ['<u\\>', 'malformed', /trailing backslash/],
    ['<u@"ext".test>', 'malformed', /quotes or backslashes in the domain/],
    [`<${'a'.repeat(2000)}@ext.test>`, 'malformed', /longer than 1024/],
    ['<"">', 'malformed', /empty local part/],
    // Latin-1 bytes (0xFC for ü) are not UTF-8: never guessed at.
    ['<u@b\xfccher.test>', 'malformed', /not valid UTF-8/],
    ['<u@\xc3\x28.test>', 'malformed', /not valid UTF-8/],
    ['<u@\xc0\xae.test>', 'malformed', /not valid UTF-8/], // overlong '.'
    ['<u@b\u00fccher.test>', 'malformed', /not valid UTF-8/], // a JS string is not what the protocol delivers
    [wire('<u\u0085@ext.test>'), 'malformed', /control characters/], // C1 NEL
  ];
  for (const [input, kind, reason] of cases) {
    test(`${JSON.stringify(input.slice(0, 40))} is ${kind}`, () => {
      const parsed = parseEnvelopeAddress(input);
      assert.equal(parsed.kind, kind, JSON.stringify(parsed));
      if (parsed.kind === 'malformed' && reason) assert.match(parsed.reason, reason);
    });
  }

  test('a null domain is named as a trick of the malformed address', () => {
    const parsed = parseEnvelopeAddress('<u@>');
    assert.equal(parsed.kind, 'malformed');
    if (parsed.kind === 'malformed') assert.deepEqual(parsed.tricks, ['null-domain']);
  });
});

describe('parseEnvelopeAddress: normalized form', () => {
  const cases: readonly [string, string][] = [
    ['<U%EXT.test@Ours.Test.>', 'U@ext.test'],
    ['<"john smith"@ours.test>', '"john smith"@ours.test'],
    ['<"a\\"b"@ours.test>', '"a\\"b"@ours.test'],
    ['<s>', 's'],
  ];
  for (const [input, normalized] of cases) {
    test(`${input} → ${normalized}`, () => {
      const parsed = parseEnvelopeAddress(input);
      assert.equal(parsed.kind, 'mailbox');
      if (parsed.kind === 'mailbox') assert.equal(parsed.normalized, normalized);
    });
  }
});
