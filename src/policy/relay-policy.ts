// Who may relay, decided per recipient at RCPT (RFC 2505 §2.1: on the recipient's domain and the client,
// never on HELO or MAIL FROM): trusted networks and authenticated clients may send anywhere; everyone else
// only to our domains, by plain addresses. Addresses are resolved first (address.ts), so routing tricks
// cannot hide a foreign destination, and the MTA's own routing ({rcpt_mailer}, {rcpt_host}) is cross-checked.
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { isPlainMailbox, parseEnvelopeAddress, type AddressTrick, type DomainForm, type EnvelopeAddress } from './address.js';
import { PASS, type ClientIdentity, type EnvelopeDecision } from './decision.js';
import { DomainSet } from './domain-set.js';
import { normaliseHost, type RelayConfig } from './envelope-config.js';

/** What the milter knows at RCPT besides the address. Macro values may be passed as the MTA gave them. */
export interface RecipientContext {
  /** Recipients of this message accepted so far; refused ones do not count (a bounce to a refused address had none). */
  readonly acceptedRecipients: number;
  /** The message's MAIL FROM was `<>`. */
  readonly nullSender: boolean;
  /** `{rcpt_mailer}`: the MTA's transport for this recipient (Postfix: smtp, relay, local, virtual, lmtp, error…). */
  readonly rcptMailer?: string | undefined;
  /** `{rcpt_host}`: the MTA's next hop for this recipient. */
  readonly rcptHost?: string | undefined;
  /** `{rcpt_addr}`: the recipient as the MTA resolved it (Sendmail: after virtusertable; Postfix: trivial-rewrite). */
  readonly rcptAddr?: string | undefined;
  /** `{daemon_addr}` / `{if_addr}`: the address the client connected to; `u@[that]` counts as ours. */
  readonly serverAddress?: string | undefined;
}

export interface SenderContext {
  readonly serverAddress?: string | undefined;
}

type Ownership = 'local' | 'relay' | undefined;

function refuse(code: number, xcode: string, rule: string, text: string): EnvelopeDecision {
  return { type: 'refuse', class: code >= 500 ? 'reject' : 'tempfail', code, xcode, rule, text };
}

const relayDenied = (rule: string, why: string): EnvelopeDecision => refuse(554, '5.7.1', rule, `Relay access denied: ${why}`);

// Routing tricks, most telling first: the rule name reports the first one found.
const TRICK_REFUSALS: readonly [AddressTrick, string][] = [
  ['source-route', 'source-routed addresses (@host:user@domain) are not accepted from this client'],
  ['quoted-routing', 'quoted or escaped @, % or ! in the local part are not accepted from this client'],
  ['percent-hack', '%-routed addresses (user%domain@host) are not accepted from this client'],
  ['bang-path', 'UUCP bang paths (host!user) are not accepted from this client'],
  ['multiple-at', 'addresses with more than one @ are not accepted from this client'],
];

function ipKey(address: string): string | undefined {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return undefined;
  }
}

export class RelayPolicy {
  private readonly config: RelayConfig;
  private readonly trustedV4: [ipaddr.IPv4, number][] = [];
  private readonly trustedV6: [ipaddr.IPv6, number][] = [];
  private readonly localDomains: DomainSet;
  private readonly relayDomains: DomainSet;
  private readonly relayNextHops: ReadonlySet<string>;
  private readonly ownAddresses: ReadonlySet<string>;
  private readonly outboundMailers: ReadonlySet<string>;

  constructor(config: RelayConfig) {
    this.config = config;
    for (const entry of config.trustedNetworks) {
      const [address, bits] = entry.includes('/') ? ipaddr.parseCIDR(entry) : [ipaddr.parse(entry), -1];
      // An IPv4-mapped IPv6 network is the IPv4 network it maps.
      const ip = address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && (bits < 0 || bits >= 96)
        ? (address as ipaddr.IPv6).toIPv4Address()
        : address;
      const prefix = bits < 0 ? (ip.kind() === 'ipv4' ? 32 : 128) : ip === address ? bits : bits - 96;
      if (ip.kind() === 'ipv4') this.trustedV4.push([ip as ipaddr.IPv4, prefix]);
      else this.trustedV6.push([ip as ipaddr.IPv6, prefix]);
    }
    this.localDomains = new DomainSet(config.localDomains);
    this.relayDomains = new DomainSet(config.relayDomains);
    this.relayNextHops = new Set(config.relayNextHops);
    this.ownAddresses = new Set(config.ownAddresses.map((a) => ipKey(a) ?? a));
    this.outboundMailers = new Set(config.outboundMailers);
  }

  /** The client address is in a trusted network. */
  isTrusted(client: ClientIdentity): boolean {
    if (client.address === '') return this.config.trustUnknownClientAddress;
    // Only the forms an MTA writes: a dotted quad or an IPv6 address without a zone. Shorthand such as `127.1`
    // or `2130706433` (inet_aton) is no client address of ours, as in the config.
    if (!isIPv4(client.address) && !(isIPv6(client.address) && !client.address.includes('%'))) return false;
    let ip: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      ip = ipaddr.process(client.address);
    } catch {
      return false;
    }
    if (ip.kind() === 'ipv4') return this.trustedV4.some((net) => ip.match(net));
    return this.trustedV6.some((net) => ip.match(net));
  }

  /** Trusted or authenticated: may send to any domain. */
  mayRelay(client: ClientIdentity): boolean {
    return (client.authUser !== undefined && client.authUser !== '') || this.isTrusted(client);
  }

  /** Which of our lists a resolved domain is in (local wins), or undefined when foreign. */
  ownership(form: DomainForm, serverAddress?: string): Ownership {
    if (form.kind === 'name') {
      if (this.localDomains.has(form.name)) return 'local';
      return this.relayDomains.has(form.name) ? 'relay' : undefined;
    }
    const key = ipKey(form.address);
    if (key === undefined) return undefined;
    if (this.ownAddresses.has(key)) return 'local';
    if (serverAddress !== undefined && serverAddress !== '' && ipKey(serverAddress) === key) return 'local';
    return undefined;
  }

  /** MAIL FROM. `sender` as the MTA passed it (`<u@example.com>`, `<>`). */
  checkSender(client: ClientIdentity, sender: string, context: SenderContext = {}): EnvelopeDecision {
    const parsed = parseEnvelopeAddress(sender);
    if (parsed.kind === 'null') return PASS;
    if (parsed.kind === 'malformed') return refuse(553, '5.1.7', 'bad-sender-syntax', `Bad sender address syntax: ${parsed.reason}`);
    if (!this.config.refuseOwnDomainSenderFromUntrusted || this.mayRelay(client)) return PASS;
    if (parsed.domainForm === undefined) {
      // The MTA would complete it with its own domain: the same as claiming one of ours.
      return refuse(554, '5.7.1', 'unqualified-sender', 'Sender address rejected: a domain is required from this client');
    }
    // Where the address resolves to (`u%ours@ext`) and the domain it shows (`u%ext@ours`) both count; a source
    // route's hops do not (RFC 5321 §3.3: they are ignored).
    const ours = (form: DomainForm | undefined): boolean => form !== undefined && this.ownership(form, context.serverAddress) !== undefined;
    if (ours(parsed.domainForm) || ours(parsed.shownDomainForm)) {
      return refuse(554, '5.7.1', 'spoofed-sender', 'Sender address rejected: our own domain is not accepted as sender from this client; authenticate first');
    }
    return PASS;
  }

  /** RCPT TO, per recipient: a refusal concerns this recipient only. */
  checkRecipient(client: ClientIdentity, recipient: string, context: RecipientContext): EnvelopeDecision {
    const parsed = parseEnvelopeAddress(recipient);
    if (parsed.kind === 'null') return refuse(553, '5.1.3', 'bad-recipient-syntax', 'Bad recipient address syntax: the null address is not a recipient');
    if (parsed.kind === 'malformed') {
      const rule = parsed.tricks.includes('null-domain') ? 'null-domain' : 'bad-recipient-syntax';
      return refuse(553, '5.1.3', rule, `Bad recipient address syntax: ${parsed.reason}`);
    }
    const nullLimit = this.config.nullSenderMaxRecipients;
    if (context.nullSender && nullLimit !== null && context.acceptedRecipients >= nullLimit) {
      return refuse(554, '5.7.1', 'null-sender-recipients', `A message with the null sender (a bounce) may have at most ${nullLimit} recipient${nullLimit === 1 ? '' : 's'}`);
    }
    if (this.mayRelay(client)) return PASS;

    for (const [trick, why] of TRICK_REFUSALS) {
      if (parsed.tricks.includes(trick)) return relayDenied(trick, why);
    }
    if (parsed.tricks.includes('numeric-domain')) return relayDenied('numeric-domain', 'an IP address as domain must be written as a [literal]');
    const form = parsed.domainForm;
    if (form === undefined) {
      // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted.
      if (parsed.localPart.toLowerCase() === 'postmaster' && !parsed.routed) return PASS;
      return relayDenied('missing-domain', 'a recipient domain is required from this client');
    }
    const ours = this.ownership(form, context.serverAddress);
    if (ours === undefined) {
      return form.kind === 'name'
        ? relayDenied('relay-denied', 'this gateway does not accept mail for that domain from this client')
        : relayDenied('domain-literal', 'that address literal is not this gateway');
    }
    return this.crossCheckMtaRouting(parsed, ours, context);
  }

  /**
   * A recipient we consider ours must be routed by the MTA accordingly: local domains never leave over SMTP;
   * relay domains go to the domain itself, one of ours, or a configured next hop. Anything else means the
   * MTA resolved the address to somewhere we did not see (a form we do not know), so it counts as foreign —
   * unless the MTA's own table rewrote a plain address (below).
   */
  private crossCheckMtaRouting(parsed: Extract<EnvelopeAddress, { kind: 'mailbox' }>, ours: 'local' | 'relay', context: RecipientContext): EnvelopeDecision {
    const mailer = context.rcptMailer?.trim().toLowerCase();
    if (mailer === undefined || mailer === '' || !this.outboundMailers.has(mailer)) return PASS;
    // A forward the admin configured (Sendmail virtusertable `friend@ours  friend@elsewhere`): the MTA reports
    // another address than the one sent. The client cannot cause that: it chose only a plain address in our
    // domain (no @ % ! : quotes or escapes for the MTA to route on, routed forms were refused above), and only
    // the MTA's tables, which clients cannot write, map it to a different address. A catch-all substituting the
    // local part (`@ours  %1@elsewhere`) still sends to the host the admin named. A routing trick the MTA
    // understands and we do not leaves the address as sent, or arrives here not plain: still refused.
    if (isPlainMailbox(parsed) && this.rewrittenByMta(parsed, context.rcptAddr)) return PASS;
    const outDenied = relayDenied('mta-routes-out', 'the mail system routes that recipient to another host');
    if (ours === 'local') return outDenied;
    const host = context.rcptHost === undefined ? '' : normaliseHost(context.rcptHost);
    if (host === '' || host === parsed.domain) return PASS;
    if (this.relayNextHops.has(host) || this.localDomains.has(host) || this.relayDomains.has(host)) return PASS;
    return outDenied;
  }

  /** `{rcpt_addr}` names another mailbox than the RCPT argument (case aside: some MTAs fold it). */
  private rewrittenByMta(sent: Extract<EnvelopeAddress, { kind: 'mailbox' }>, rcptAddr: string | undefined): boolean {
    if (rcptAddr === undefined || rcptAddr.trim() === '') return false;
    const resolved = parseEnvelopeAddress(rcptAddr);
    if (resolved.kind !== 'mailbox') return false;
    return resolved.normalized.toLowerCase() !== sent.normalized.toLowerCase();
  }
}
