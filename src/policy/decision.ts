// What policies answer. Policies never touch the milter protocol: the gateway filter turns these into
// verdicts and reply texts (src/verdict.ts).

/** A refusal at an envelope stage (CONNECT, HELO, MAIL, RCPT). */
export interface EnvelopeRefusal {
  /** reject = 5xx (do not retry), tempfail = 4xx (retry later). */
  readonly class: 'reject' | 'tempfail';
  /** SMTP reply code and enhanced status code, e.g. 554 / 5.7.1, 451 / 4.7.1. */
  readonly code: number;
  readonly xcode: string;
  /** Reply text for the SMTP client; never holds secrets; may hold attacker-controlled text (it is escaped later). */
  readonly text: string;
  /** Label-safe rule name for metrics and logs, e.g. `relay-denied`, `percent-hack`, `rate-recipients`. */
  readonly rule: string;
}

export type EnvelopeDecision = { readonly type: 'pass' } | ({ readonly type: 'refuse' } & EnvelopeRefusal);

export const PASS: EnvelopeDecision = { type: 'pass' };

/** Who is talking to us, as the policies see it. */
export interface ClientIdentity {
  /** Client IP without any `IPv6:` prefix; '' when the MTA does not know it. */
  readonly address: string;
  readonly hostname: string;
  /** SASL login name ({auth_authen}) once the client authenticated. */
  readonly authUser: string | undefined;
}
