// Rate limits at the envelope stages: connections at CONNECT, messages at MAIL, recipients at RCPT, each per
// client over a sliding window, plus a cap on recipients per message. Clients are keyed by address prefix
// (IPv4 /32, IPv6 /64 by default: one customer's LAN is one client) or, once authenticated, by login name
// wherever they connect from. Trusted networks have their own, higher limits: trusted is not unlimited.
// Over a limit the answer is a tempfail (4xx): a legitimate sender retries later, an abusive one is slowed.
import ipaddr from 'ipaddr.js';
import { CounterStoreUnavailableError, type CounterStore, type SlidingWindow } from './counter-store.js';
import { PASS, type ClientIdentity, type EnvelopeDecision } from './decision.js';
import type { RateLimitConfig, WindowLimitConfig } from './envelope-config.js';

/** The rule of the tempfail given when the counter store cannot be asked: a failure of ours, not the client's doing. */
export const STORE_UNAVAILABLE_RULE = 'rate-store-unavailable';

/** The decision is the store-unavailable tempfail, not a limit the client reached. */
export function isStoreUnavailable(d: EnvelopeDecision): boolean {
  return d.type === 'refuse' && d.rule === STORE_UNAVAILABLE_RULE;
}

export type RateProfile = 'untrusted' | 'trusted' | 'authenticated';
export type RateStage = 'connections' | 'messages' | 'recipients';

export interface RateLimiterOptions {
  /** Whether the client is in a trusted network (RelayPolicy.isTrusted). */
  readonly trusted: (client: ClientIdentity) => boolean;
  /** Milliseconds; Date.now by default. Tests move time by hand. */
  readonly now?: () => number;
}

const STAGE_KEY: Record<RateStage, string> = { connections: 'c', messages: 'm', recipients: 'r' };
const PROFILE_KEY: Record<RateProfile, string> = { untrusted: 'u', trusted: 't', authenticated: 'a' };
const STAGE_NOUN: Record<RateStage, string> = { connections: 'connections', messages: 'messages', recipients: 'recipients' };
// Login names are short; the bound keeps a hostile one from making huge keys.
const MAX_USER_KEY = 256;

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

/** The client's address group: the address itself, or its network at the configured prefix length. */
export function addressKey(address: string, ipv4PrefixLength = 32, ipv6PrefixLength = 64): string {
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.process(address);
  } catch {
    return address === '' ? 'unknown' : `other:${address.slice(0, 64)}`;
  }
  const bits = ip.kind() === 'ipv4' ? ipv4PrefixLength : ipv6PrefixLength;
  const bytes = ip.toByteArray();
  if (bits >= bytes.length * 8) return ip.toString();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = (bytes[i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
  return `${ipaddr.fromByteArray(bytes).toString()}/${bits}`;
}

export class RateLimiter {
  private readonly config: RateLimitConfig;
  private readonly store: CounterStore;
  private readonly isTrusted: (client: ClientIdentity) => boolean;
  private readonly now: () => number;

  constructor(config: RateLimitConfig, store: CounterStore, options: RateLimiterOptions) {
    this.config = config;
    this.store = store;
    this.isTrusted = options.trusted;
    this.now = options.now ?? Date.now;
  }

  /** Which limits apply: authenticated clients by login, others by whether their network is trusted. */
  profileOf(client: ClientIdentity): RateProfile {
    if (client.authUser !== undefined && client.authUser !== '') return 'authenticated';
    return this.isTrusted(client) ? 'trusted' : 'untrusted';
  }

  /** The counter key for a client: `user:NAME` when authenticated, else its address group. */
  clientKey(client: ClientIdentity): string {
    if (client.authUser !== undefined && client.authUser !== '') return `user:${client.authUser.slice(0, MAX_USER_KEY)}`;
    return addressKey(client.address, this.config.ipv4PrefixLength, this.config.ipv6PrefixLength);
  }

  /** At CONNECT (before AUTH, so never the authenticated profile). */
  onConnect(client: ClientIdentity): Promise<EnvelopeDecision> {
    const anonymous: ClientIdentity = { ...client, authUser: undefined };
    return this.count(anonymous, 'connections');
  }

  /** At MAIL FROM: one message attempt. */
  onMessage(client: ClientIdentity): Promise<EnvelopeDecision> {
    return this.count(client, 'messages');
  }

  /**
   * At RCPT TO, after the recipient passed the other checks. `recipientsSoFarInMessage`: recipients already
   * accepted in this message (0 for the first).
   */
  async onRecipient(client: ClientIdentity, recipientsSoFarInMessage: number): Promise<EnvelopeDecision> {
    if (!this.config.enabled) return PASS;
    const cap = this.config[this.profileOf(client)].recipientsPerMessage;
    if (cap !== null && recipientsSoFarInMessage >= cap) {
      // RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in another transaction.
      return {
        type: 'refuse',
        class: 'tempfail',
        code: 452,
        xcode: '4.5.3',
        rule: 'rate-recipients-per-message',
        text: `Too many recipients: at most ${cap} per message; send the rest in another message`,
      };
    }
    return this.count(client, 'recipients');
  }

  private limitFor(profile: RateProfile, stage: RateStage): WindowLimitConfig | null {
    if (profile === 'authenticated') return stage === 'connections' ? null : this.config.authenticated[stage];
    return this.config[profile][stage];
  }

  private async count(client: ClientIdentity, stage: RateStage): Promise<EnvelopeDecision> {
    if (!this.config.enabled) return PASS;
    const profile = this.profileOf(client);
    const limit = this.limitFor(profile, stage);
    if (limit === null) return PASS;
    const window: SlidingWindow = { limit: limit.limit, windowMs: limit.window, buckets: this.config.bucketsPerWindow };
    const who = this.clientKey(client);
    const key = `${STAGE_KEY[stage]}:${PROFILE_KEY[profile]}:${who}`;
    try {
      const result = await this.store.consume(key, window, this.now());
      if (result.allowed) return PASS;
    } catch (error) {
      if (!(error instanceof CounterStoreUnavailableError)) throw error;
      // A support system failing must give 4xx, never 5xx and never an unchecked pass (RFC 2505 §2.11).
      return {
        type: 'refuse',
        class: 'tempfail',
        code: 451,
        xcode: '4.3.0',
        rule: STORE_UNAVAILABLE_RULE,
        text: 'Temporary failure checking rate limits; try again later',
      };
    }
    const subject = profile === 'authenticated' ? 'this user' : 'your address';
    return {
      type: 'refuse',
      class: 'tempfail',
      code: 451,
      xcode: '4.7.1',
      rule: `rate-${stage}`,
      text: `Too many ${STAGE_NOUN[stage]} from ${subject}: at most ${limit.limit} per ${formatWindow(limit.window)}; try again later`,
    };
  }
}
