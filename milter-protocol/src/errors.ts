/**
 * Every way the milter conversation can go wrong, as a label-safe kind (it becomes a metric label
 * and a log field in the application).
 */
export type ProtocolErrorKind =
  | 'frame-length-zero' // a length field of 0
  | 'frame-too-large' // a length field over the configured maximum
  | 'malformed-command' // a packet whose payload does not decode (missing NUL, short integers…)
  | 'unknown-command' // a command byte we do not know
  | 'unexpected-command' // a command that makes no sense in the current state (e.g. BODY before OPTNEG)
  | 'negotiation' // OPTNEG offer we cannot work with
  | 'malformed-response' // client side: a reply packet that does not decode
  | 'invalid-reply' // a verdict or modification the caller asked for that the protocol forbids
  | 'handler-error' // the filter's hook threw
  | 'timeout' // the peer went quiet past the idle timeout
  | 'connection-closed'; // the peer went away mid-exchange

/** A protocol error with a kind for machines and a message for people. */
export class MilterProtocolError extends Error {
  readonly kind: ProtocolErrorKind;

  constructor(kind: ProtocolErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MilterProtocolError';
    this.kind = kind;
  }
}
