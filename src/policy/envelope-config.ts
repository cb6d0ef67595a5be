// The `relay` and `rateLimit` sections of the config file. Defaults make a fresh install safe: only loopback
// is trusted, nothing but `localhost` is ours (so an unconfigured gateway relays for nobody), and rate limits
// are on with generous numbers that still stop one client from filling the queue.
import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { duration } from '../config/units.js';

// ipaddr.isValid also takes inet_aton shorthand (`192.168.1`, `10.1/8`): a typo would silently mean another
// network. IPv4 must be written as four decimal parts.
function isAddress(v: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(v) || ipaddr.IPv6.isValid(v);
}

function isNetwork(v: string): boolean {
  return ipaddr.IPv4.isValidCIDRFourPartDecimal(v) || ipaddr.IPv6.isValidCIDR(v) || isAddress(v);
}

const network = z.string().superRefine((v, ctx) => {
  if (isNetwork(v)) return;
  ctx.addIssue({ code: 'custom', message: `'${v}' is not an IPv4 or IPv6 address or CIDR (e.g. 192.0.2.0/24, 2001:db8::/32)` });
});

/**
 * The address family an entry trusts every client of, if any: a /0, or an IPv4-mapped prefix of /96 or shorter
 * (taken as the IPv4 network it maps, so `::ffff:0:0/96` is 0.0.0.0/0; Postfix's mynetworks matches no IPv4 client
 * with it, so it is an easy mistake to copy).
 */
function wholeFamily(v: string): 'IPv4' | 'IPv6' | undefined {
  if (!v.includes('/')) return undefined;
  const [address, bits] = ipaddr.parseCIDR(v);
  const mapped = address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress();
  if (mapped && bits <= 96) return 'IPv4';
  if (bits === 0) return address.kind() === 'ipv4' ? 'IPv4' : 'IPv6';
  return undefined;
}

/** A network allowed to relay: a valid one, and never a whole address family (an open relay). */
const trustedNetwork = network.superRefine((v, ctx) => {
  if (!isNetwork(v)) return;
  const family = wholeFamily(v);
  if (family === undefined) return;
  ctx.addIssue({ code: 'custom', message: `'${v}' covers every ${family} address: trusting it makes an open relay; list the networks that may relay` });
});

const ipAddress = z.string().superRefine((v, ctx) => {
  if (!isAddress(v)) ctx.addIssue({ code: 'custom', message: `'${v}' is not an IPv4 or IPv6 address (IPv4 is written as four decimal parts)` });
});

const DOMAIN_ENTRY = /^\.?(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** An internationalised name as the address parser compares it: A-labels (`bücher.example` → `xn--bcher-kva.example`). */
function toALabels(v: string): string {
  if (!/[^\x00-\x7f]/.test(v)) return v;
  const dot = v.startsWith('.') ? '.' : '';
  const ascii = domainToASCII(v.slice(dot.length));
  return ascii === '' ? v : dot + ascii;
}

/** `example.com` (exactly that domain) or `.example.com` (any subdomain, not the domain itself); IDNs in either form. */
const domainEntry = z
  .string()
  .transform((v) => toALabels(v.trim().toLowerCase().replace(/\.$/, '')))
  .refine((v) => DOMAIN_ENTRY.test(v), { message: 'a domain such as example.com, or .example.com for its subdomains' });

/** A host name or address as the MTA reports a next hop (`{rcpt_host}`), brackets and port removed. */
const hostEntry = z
  .string()
  .transform((v) => normaliseHost(v))
  .refine((v) => v !== '', { message: 'a host name or address' });

/** `[inner.example.com]:25` → `inner.example.com`; `[IPv6:2001:db8::1]` → `2001:db8::1`. */
export function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  const bracketed = /^\[(?:ipv6:)?([^\]]*)\](?::\d+)?$/.exec(h);
  if (bracketed) h = bracketed[1] as string;
  else if (!h.includes('::') && /:\d+$/.test(h)) h = h.replace(/:\d+$/, '');
  h = h.replace(/\.$/, '');
  if (ipaddr.isValid(h)) h = ipaddr.process(h).toString();
  return h;
}

export const relaySchema = z.strictObject({
  /** Clients that may relay to any domain (like Postfix mynetworks). Loopback only by default. */
  trustedNetworks: z.array(trustedNetwork).default(['127.0.0.0/8', '::1/128']),
  /** Trust a client whose address the MTA did not give (UNIX socket, local submission). Off: unknown is untrusted. */
  trustUnknownClientAddress: z.boolean().default(false),
  /** Domains delivered on this side (the MTA routes them to local/virtual/lmtp). `.example.com` = subdomains. */
  localDomains: z.array(domainEntry).default(['localhost']),
  /** Domains we accept and forward over SMTP (backup MX, gateway for an inner server). */
  relayDomains: z.array(domainEntry).default([]),
  /** Next hops (`{rcpt_host}`) the MTA may route relay domains to besides the domain itself, e.g. the inner server. */
  relayNextHops: z.array(hostEntry).default([]),
  /** This gateway's own IP addresses: `u@[address]` counts as ours. The MTA's `{daemon_addr}` may be passed per call too. */
  ownAddresses: z.array(ipAddress).default([]),
  /**
   * Refuse MAIL FROM in one of our domains (or unqualified) from a client neither trusted nor authenticated.
   * RFC 2505 §2.2 warns this breaks forwarders and mailing lists that keep the original sender; on by default
   * because on a gateway such mail is nearly always forged. Turn off when external forwarders send our users' mail back.
   */
  refuseOwnDomainSenderFromUntrusted: z.boolean().default(true),
  /** A bounce (null sender) has one recipient; RCPTs past this many are refused. null = no limit. */
  nullSenderMaxRecipients: z.number().int().positive().nullable().default(1),
  /** `{rcpt_mailer}` values meaning "sent out over SMTP" (Postfix smtp/relay, Sendmail esmtp/smtp8/dsmtp/relay). */
  outboundMailers: z.array(z.string().min(1).transform((v) => v.toLowerCase())).default(['smtp', 'relay', 'esmtp', 'smtp8', 'dsmtp']),
});

export type RelayConfig = z.output<typeof relaySchema>;

const windowLimit = z.strictObject({
  /** Events allowed within any `window`. */
  limit: z.number().int().positive(),
  /** `30s`, `10m`, `1h`, or seconds. */
  window: duration.refine((ms) => ms >= 1, { message: 'a window of at least 1 ms' }),
});

/** null turns the limit off. */
const optionalLimit = windowLimit.nullable();

export type WindowLimitConfig = z.output<typeof windowLimit>;

const MINUTE = 60_000;
const HOUR = 3_600_000;

// The RFC 5321 minimum a server must accept per message is 100 recipients; Postfix allows 1000.
export const rateLimitSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /**
   * Counter keys kept at most (LRU), per process: each client uses up to three (connections, messages,
   * recipients), so the default holds 33,000–50,000 active clients in about 40 MB of heap (measured:
   * bench/envelope-policy.ts). Past it the least recently seen clients start again from zero.
   */
  maxKeys: z.number().int().min(100).default(100_000),
  /** Sub-windows per window: a counted event stops counting between `window` and `window + window/N` after it. */
  bucketsPerWindow: z.number().int().min(1).max(60).default(10),
  /** Clients are grouped by this prefix: one IPv4 address, one IPv6 /64 (a single customer's LAN). */
  ipv4PrefixLength: z.number().int().min(8).max(32).default(32),
  ipv6PrefixLength: z.number().int().min(16).max(128).default(64),
  store: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('memory') }),
      z.strictObject({
        type: z.literal('redis'),
        url: z
          .string()
          .regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL')
          .default('redis://127.0.0.1:6379'),
        keyPrefix: z.string().default('pmt:rate:'),
        /** Per command; past it the decision uses the fallback. Keep it well below the MTA's milter timeout. */
        commandTimeout: duration.default(250),
        connectTimeout: duration.default(2000),
        /** Redis unreachable: `local` counts in this process alone (logged), `tempfail` answers 4xx. */
        fallback: z.enum(['local', 'tempfail']).default('local'),
      }),
    ])
    .default({ type: 'memory' }),
  /** Clients outside the trusted networks, not authenticated; keyed by address prefix. */
  untrusted: z
    .strictObject({
      connections: optionalLimit.default({ limit: 60, window: MINUTE }),
      messages: optionalLimit.default({ limit: 300, window: HOUR }),
      recipients: optionalLimit.default({ limit: 1000, window: HOUR }),
      recipientsPerMessage: z.number().int().positive().nullable().default(100),
    })
    .prefault({}),
  /** Trusted networks: higher limits, still limited (an abused host inside must not fill the queue). */
  trusted: z
    .strictObject({
      connections: optionalLimit.default({ limit: 600, window: MINUTE }),
      messages: optionalLimit.default({ limit: 2000, window: HOUR }),
      recipients: optionalLimit.default({ limit: 5000, window: HOUR }),
      recipientsPerMessage: z.number().int().positive().nullable().default(1000),
    })
    .prefault({}),
  /** SASL users, keyed by login name wherever they connect from (connections are counted before AUTH, by address). */
  authenticated: z
    .strictObject({
      messages: optionalLimit.default({ limit: 200, window: HOUR }),
      recipients: optionalLimit.default({ limit: 1000, window: HOUR }),
      recipientsPerMessage: z.number().int().positive().nullable().default(100),
    })
    .prefault({}),
});

export type RateLimitConfig = z.output<typeof rateLimitSchema>;
