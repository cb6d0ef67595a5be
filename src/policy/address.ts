// Parses an SMTP envelope address (MAIL FROM / RCPT TO argument) and resolves it the way an MTA's resolver
// would (Postfix trivial-rewrite with its defaults: percent hack, bang paths and dequoted addresses all
// honoured), so relay decisions rest on where the mail would really go, not on how the address looks.
// Nothing here knows which domains are ours: the result lists every destination the address names, in the
// order the mail would travel, and the relay policy decides.
import ipaddr from 'ipaddr.js';
import { domainToASCII } from 'node:url';
import { utf8FromByteString } from '../byte-string.js';

/** What the address does besides naming one mailbox at one domain. */
export type AddressTrick =
  // Sender-specified routing: the address names more than one destination.
  | 'source-route' // `<@a,@b:u@c>` (RFC 821 route)
  | 'percent-hack' // `u%ext@ours`
  | 'bang-path' // `ext!u`, `ext!u@ours`
  | 'multiple-at' // `u@ext@ours` (unquoted)
  | 'quoted-routing' // `"u@ext"@ours`, `"u%ext"`, `u\@ext@ours`: @ % ! hidden by quotes or escapes
  // Destination forms.
  | 'domain-literal' // `u@[192.0.2.1]`, `u@[IPv6:2001:db8::1]`
  | 'numeric-domain' // `u@192.0.2.1` without brackets (Postfix refuses: resolve_numeric_domain = no)
  | 'missing-domain' // `<u>`: the MTA would append its own domain
  | 'null-domain' // `<u@>` or an empty hop (Postfix refuses: resolve_null_domain = no)
  // Cosmetic: normalised away, reported for logs.
  | 'quoted-local-part'
  | 'escaped-character'
  | 'trailing-dot'
  | 'mixed-case-domain'
  | 'no-angle-brackets';

/** Tricks that make the address routed: it passes through one destination on its way to another. */
export const ROUTING_TRICKS: ReadonlySet<AddressTrick> = new Set<AddressTrick>([
  'source-route',
  'percent-hack',
  'bang-path',
  'multiple-at',
  'quoted-routing',
]);

export type DomainForm =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'ipv4-literal'; readonly address: string }
  | { readonly kind: 'ipv6-literal'; readonly address: string };

export type EnvelopeAddress =
  /** `<>`: the null reverse path (bounces). */
  | { readonly kind: 'null'; readonly raw: string }
  | { readonly kind: 'malformed'; readonly raw: string; readonly reason: string; readonly tricks: readonly AddressTrick[] }
  | {
      readonly kind: 'mailbox';
      readonly raw: string;
      /** Final local part, dequoted and unescaped; case kept (local parts are case-sensitive). */
      readonly localPart: string;
      /** Effective final domain, normalised (`example.com`, `[192.0.2.1]`, `[IPv6:2001:db8::1]`); undefined when missing. */
      readonly domain: string | undefined;
      readonly domainForm: DomainForm | undefined;
      /** The domain after the last unquoted `@`, the one a reader sees (`ours` in `u%ext@ours`); undefined when missing. */
      readonly shownDomainForm: DomainForm | undefined;
      /** Every destination named, first hop first; the last one is `domain`. Empty when the domain is missing. */
      readonly hops: readonly string[];
      readonly tricks: readonly AddressTrick[];
      /** True when any routing trick was found. */
      readonly routed: boolean;
      /** `local@domain` after resolution, for logs. */
      readonly normalized: string;
    };

const MAX_ADDRESS_LENGTH = 1024;
// Atom characters of RFC 5322 plus `.`; anything else in a local part needs quoting.
const DOT_ATOM_LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
// Letters, digits, hyphen and underscore (seen in real DNS names even if not in hostnames).
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const DOTTED_QUAD = /^\d+\.\d+\.\d+\.\d+$/;
// C0, DEL and C1: C1 only exists once the bytes are read as UTF-8 (U+0080–U+009F).
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

class Malformed extends Error {}

type Normalised = { readonly text: string; readonly form: DomainForm };

class TrickSet {
  readonly list: AddressTrick[] = [];
  add(trick: AddressTrick): void {
    if (!this.list.includes(trick)) this.list.push(trick);
  }
  has(trick: AddressTrick): boolean {
    return this.list.includes(trick);
  }
}

/** Normalises one destination: case, trailing dot, IDN to A-labels, canonical IP literals. */
function normaliseDomain(input: string, tricks: TrickSet): Normalised {
  let text = input;
  if (text === '') {
    tricks.add('null-domain');
    throw new Malformed('an empty domain');
  }
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) throw new Malformed(`an unterminated domain literal '${text}'`);
    tricks.add('domain-literal');
    const inner = text.slice(1, -1);
    if (/^ipv6:/i.test(inner)) {
      const v6 = inner.slice(5);
      if (!ipaddr.IPv6.isValid(v6) || v6.includes('%')) throw new Malformed(`an invalid IPv6 literal '${text}'`);
      const address = ipaddr.IPv6.parse(v6).toString();
      return { text: `[IPv6:${address}]`, form: { kind: 'ipv6-literal', address } };
    }
    if (!ipaddr.IPv4.isValidFourPartDecimal(inner)) throw new Malformed(`an unsupported domain literal '${text}'`);
    const address = ipaddr.IPv4.parse(inner).toString();
    return { text: `[${address}]`, form: { kind: 'ipv4-literal', address } };
  }
  if (text.endsWith('.')) {
    tricks.add('trailing-dot');
    text = text.slice(0, -1);
  }
  let ascii = text;
  // Non-ASCII (SMTPUTF8) names compare by their A-label form.
  if (/[^\x00-\x7f]/.test(text)) {
    ascii = domainToASCII(text);
    if (ascii === '') throw new Malformed(`an invalid internationalised domain '${text}'`);
  }
  const lower = ascii.toLowerCase();
  if (lower !== ascii) tricks.add('mixed-case-domain');
  if (lower.length > 253) throw new Malformed('a domain longer than 253 characters');
  for (const label of lower.split('.')) {
    if (!LABEL.test(label)) throw new Malformed(`an invalid domain '${text}'`);
  }
  if (DOTTED_QUAD.test(lower)) tricks.add('numeric-domain');
  return { text: lower, form: { kind: 'name', name: lower } };
}

/** Splits a source route `@a,@b:rest` into its domains and the rest. */
function splitSourceRoute(text: string): { route: string[]; rest: string } {
  const colon = text.indexOf(':');
  if (colon < 0) throw new Malformed('a source route without a colon');
  const route = text
    .slice(0, colon)
    .split(',')
    .map((hop) => {
      if (!hop.startsWith('@')) throw new Malformed(`a source route hop '${hop}' without @`);
      return hop.slice(1);
    });
  return { route, rest: text.slice(colon + 1) };
}

interface Scanned {
  /** Local part with quotes and escapes removed. */
  readonly local: string;
  readonly domain: string | undefined;
  readonly unquotedAts: number;
}

/** Lexical pass: quotes and backslash escapes, the last unquoted `@` separates the domain. */
function scanMailbox(text: string, tricks: TrickSet): Scanned {
  let inQuote = false;
  let lastAt = -1;
  let localEnd = -1;
  let unquotedAts = 0;
  const localChars: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) throw new Malformed('a trailing backslash');
      tricks.add('escaped-character');
      if (next === '@' || next === '%' || next === '!') tricks.add('quoted-routing');
      localChars.push(next);
      i++;
      continue;
    }
    if (c === '"') {
      tricks.add('quoted-local-part');
      inQuote = !inQuote;
      continue;
    }
    if (inQuote) {
      if (c === '@' || c === '%' || c === '!') tricks.add('quoted-routing');
      localChars.push(c);
      continue;
    }
    if (c === ' ' || c === '\t') throw new Malformed('white space outside quotes');
    if (c === '@') {
      unquotedAts++;
      lastAt = i;
      localEnd = localChars.length;
    }
    localChars.push(c);
  }
  if (inQuote) throw new Malformed('an unterminated quoted string');
  if (lastAt < 0) return { local: localChars.join(''), domain: undefined, unquotedAts };
  const local = localChars.slice(0, localEnd).join('');
  const domain = text.slice(lastAt + 1);
  if (domain.includes('"') || domain.includes('\\')) throw new Malformed('quotes or backslashes in the domain');
  return { local, domain, unquotedAts };
}

function quoteLocal(local: string): string {
  return DOT_ATOM_LOCAL.test(local) ? local : `"${local.replace(/(["\\])/g, '\\$1')}"`;
}

function resolve(raw: string, inner: string, tricks: TrickSet): EnvelopeAddress {
  // Destinations, outermost (first hop) first.
  const hops: string[] = [];
  let forms: DomainForm | undefined;
  let shown: DomainForm | undefined;
  let rest = inner;
  if (rest.startsWith('@')) {
    tricks.add('source-route');
    const split = splitSourceRoute(rest);
    for (const hop of split.route) hops.push(normaliseDomain(hop, tricks).text);
    rest = split.rest;
  }
  const scanned = scanMailbox(rest, tricks);
  if (scanned.unquotedAts > 1) tricks.add('multiple-at');
  let local = scanned.local;
  // Hops found inside the local part are deeper than the outer domain: collect them innermost-last.
  if (scanned.domain !== undefined) {
    const outer = normaliseDomain(scanned.domain, tricks);
    hops.push(outer.text);
    forms = outer.form;
    shown = outer.form;
  } else {
    tricks.add('missing-domain');
  }
  // The resolver's loop (Postfix trivial-rewrite): `u@b` → b; then `u%b` → b (rightmost %); then `a!u` → a
  // (leftmost !); repeat on what is left.
  for (;;) {
    let hop: string;
    const at = local.lastIndexOf('@');
    const percent = local.lastIndexOf('%');
    const bang = local.indexOf('!');
    if (at >= 0) {
      hop = local.slice(at + 1);
      local = local.slice(0, at);
    } else if (percent >= 0) {
      tricks.add('percent-hack');
      hop = local.slice(percent + 1);
      local = local.slice(0, percent);
    } else if (bang >= 0) {
      tricks.add('bang-path');
      hop = local.slice(0, bang);
      local = local.slice(bang + 1);
    } else {
      break;
    }
    // A hop inside the local part that is no valid domain (gateway encodings such as DECnet's
    // `"gw::smtp%\"u@ext\""@gw`) leaves the address routed to somewhere unknown, not malformed: the
    // routing trick already decides for untrusted clients, and trusted ones may send it.
    let normalised: Normalised;
    try {
      normalised = normaliseDomain(hop, tricks);
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      const text = hop.toLowerCase();
      normalised = { text, form: { kind: 'name', name: text } };
    }
    hops.push(normalised.text);
    forms = normalised.form;
  }
  if (local === '') throw new Malformed('an empty local part');
  const domain = hops.at(-1);
  const routed = tricks.list.some((t) => ROUTING_TRICKS.has(t));
  return {
    kind: 'mailbox',
    raw,
    localPart: local,
    domain,
    domainForm: domain === undefined ? undefined : forms,
    shownDomainForm: shown,
    hops,
    tricks: tricks.list,
    routed,
    normalized: domain === undefined ? quoteLocal(local) : `${quoteLocal(local)}@${domain}`,
  };
}

// Tricks that change only the spelling, never which mailbox is named.
const SPELLING_TRICKS: ReadonlySet<AddressTrick> = new Set<AddressTrick>(['trailing-dot', 'mixed-case-domain', 'no-angle-brackets']);
// A dot-atom local part, with UTF-8 allowed as in RFC 6531: nothing an MTA could read as routing or gateway syntax.
const PLAIN_LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10FFFF}-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\u{10FFFF}-]+)*$/u;

/**
 * `local@domain` and nothing more: a dot-atom local part (no quotes, escapes, `%`, `!`, `:`), a domain name (no
 * literal), no routing. Only the MTA's own tables can make such an address go anywhere but that domain.
 */
export function isPlainMailbox(address: EnvelopeAddress): boolean {
  return (
    address.kind === 'mailbox' &&
    address.domainForm?.kind === 'name' &&
    address.tricks.every((t) => SPELLING_TRICKS.has(t)) &&
    !address.localPart.includes('%') &&
    !address.localPart.includes('!') &&
    PLAIN_LOCAL.test(address.localPart)
  );
}

/** The bytes of a protocol string (one character per byte) read as UTF-8; invalid UTF-8 is refused, not guessed at. */
function decodeUtf8(raw: string): string {
  if (/[^\x00-\xff]/.test(raw)) throw new Malformed('characters that are not bytes (expected the milter protocol\'s byte string)');
  const text = utf8FromByteString(raw);
  if (text === undefined) throw new Malformed('bytes that are not valid UTF-8');
  return text;
}

/**
 * Parses an envelope address as the milter protocol delivered it (each byte one character: `<u@example.com>`,
 * brackets optional) and resolves it. Never throws: unparsable input is `{ kind: 'malformed', reason }`.
 */
export function parseEnvelopeAddress(raw: string): EnvelopeAddress {
  const tricks = new TrickSet();
  try {
    if (raw.length > MAX_ADDRESS_LENGTH) throw new Malformed(`an address longer than ${MAX_ADDRESS_LENGTH} bytes`);
    let text = decodeUtf8(raw).trim();
    if (CONTROL.test(text)) throw new Malformed('control characters');
    if (text.startsWith('<')) {
      if (!text.endsWith('>')) throw new Malformed('a missing closing >');
      text = text.slice(1, -1).trim();
    } else {
      if (text.endsWith('>')) throw new Malformed('a missing opening <');
      tricks.add('no-angle-brackets');
    }
    if (text === '') return { kind: 'null', raw };
    if (text.includes('<') || text.includes('>')) throw new Malformed('nested angle brackets');
    return resolve(raw, text, tricks);
  } catch (e) {
    if (e instanceof Malformed) return { kind: 'malformed', raw, reason: `the address has ${e.message}`, tricks: tricks.list };
    throw e;
  }
}
