// The typed API a filter implements: one optional async hook per stage, each returning a verdict.
import type { AddressFamily } from './constants.js';
import type { NegotiatedOptions } from './negotiate.js';
import type { SmtpReply } from './reply-code.js';
import type { CommandType } from './messages.js';

/** What a hook decides. Returning nothing means continue. */
export type Verdict =
  | { readonly type: 'continue' }
  /** Accept the message (or, at CONNECT/HELO, the connection) without further filtering. */
  | { readonly type: 'accept' }
  /** Accept then silently drop the message. Message stages only (MAIL…EOM). */
  | { readonly type: 'discard' }
  /** Stop sending this kind of event (body chunks); only when SKIP was negotiated, else continue. */
  | { readonly type: 'skip' }
  /** 5xx. At RCPT it refuses only that recipient. */
  | { readonly type: 'reject'; readonly reply?: SmtpReply }
  /** 4xx: the sender retries later. */
  | { readonly type: 'tempfail'; readonly reply?: SmtpReply };

export const Verdict = {
  continue: { type: 'continue' } as Verdict,
  accept: { type: 'accept' } as Verdict,
  discard: { type: 'discard' } as Verdict,
  skip: { type: 'skip' } as Verdict,
  reject(reply?: SmtpReply): Verdict {
    return reply ? { type: 'reject', reply } : { type: 'reject' };
  },
  tempfail(reply?: SmtpReply): Verdict {
    return reply ? { type: 'tempfail', reply } : { type: 'tempfail' };
  },
} as const;

export type HookResult = Verdict | void | Promise<Verdict | void>;

export interface ConnectInfo {
  /** Client host name as the MTA verified it, or `[address]`, or `unknown`. */
  readonly hostname: string;
  readonly family: AddressFamily;
  /** IP address with Sendmail's `IPv6:` prefix removed; empty for family U. */
  readonly address: string;
  readonly port: number;
}

/** Which MTA is on the other end, guessed from the `v` macro; Postfix and Sendmail differ (progress, SKIP). */
export type MtaKind = 'postfix' | 'sendmail' | 'unknown';

/** What a hook sees of its session. `S` is the filter's own per-session state. */
export interface SessionContext<S> {
  /** Unique within the process, for logs. */
  readonly id: string;
  readonly state: S;
  readonly negotiated: NegotiatedOptions;
  readonly mta: MtaKind;
  readonly connection: ConnectInfo | undefined;
  readonly helo: string | undefined;
  /** Messages begun on this connection so far (the current one included). */
  readonly messageCount: number;
  /**
   * Set once the server, stopping, answered a command tempfail for the filter (the hook for it may still be
   * running): a verdict returned now is not sent, and what the MTA got was tempfail.
   */
  readonly tempfailedAt: CommandType | undefined;
  /** A macro by name; `i` and `{i}` are the same. */
  macro(name: string): string | undefined;
  /** Every macro in scope now. */
  macros(): Map<string, string>;
}

/** End-of-message changes. Each call checks its action was negotiated and throws MilterProtocolError if not. */
export interface MessageModifier {
  addHeader(name: string, value: string): void;
  /** `index` 0 is the very top, above the MTA's own Received. */
  insertHeader(index: number, name: string, value: string): void;
  /** `index` is the 1-based occurrence among headers of that name; an empty value deletes. */
  changeHeader(name: string, index: number, value: string): void;
  deleteHeader(name: string, index: number): void;
  changeFrom(sender: string, esmtpArgs?: string): void;
  addRecipient(recipient: string, esmtpArgs?: string): void;
  deleteRecipient(recipient: string): void;
  /** May be called repeatedly; the parts are concatenated. */
  replaceBody(chunk: Buffer): void;
  quarantine(reason: string): void;
  /** Sends a progress packet now (the session also sends them on its own interval while a hook runs). */
  progress(): void;
}

/** Stages whose replies a filter can waive (SMFIP_NR_*) for throughput. */
export type NoReplyStage = 'connect' | 'helo' | 'envfrom' | 'envrcpt' | 'data' | 'header' | 'eoh' | 'body' | 'unknown';

/** Macro lists to ask the MTA for, per stage (Postfix sends `{client_addr}`, `{auth_authen}` only when asked). */
export type MacroStageName = 'connect' | 'helo' | 'envfrom' | 'envrcpt' | 'data' | 'eoh' | 'eom';

export interface MilterFilter<S = undefined> {
  /** Actions (ActionFlag bits) the filter may use at end of message. Default: all v6 actions. */
  readonly actions?: number;
  readonly macros?: Partial<Record<MacroStageName, readonly string[]>>;
  /** SMFIP_HDR_LEADSPC: header values keep their leading whitespace, both ways. */
  readonly headerLeadingSpace?: boolean;
  /** SMFIP_RCPT_REJ: also see recipients the MTA rejected (`{rcpt_mailer}` = `error`). */
  readonly rejectedRecipients?: boolean;
  /**
   * Stages whose replies are waived. A non-continue verdict from such a hook is held and given at the next
   * command that is answered (a reply sent anyway would desynchronise the stream): from CONNECT or HELO it
   * concerns the connection and is given at the answered commands of every message of the session; from a
   * message stage, at every later answered command of that message (from MAIL: at each RCPT, since an MTA
   * refuses only that recipient and would take the next).
   */
  readonly noReply?: readonly NoReplyStage[];

  /** Fresh per-session state; called when a connection opens and again after QUIT_NC. */
  createState?(): S;

  connect?(session: SessionContext<S>, info: ConnectInfo): HookResult;
  helo?(session: SessionContext<S>, name: string): HookResult;
  envfrom?(session: SessionContext<S>, sender: string, esmtpArgs: readonly string[]): HookResult;
  envrcpt?(session: SessionContext<S>, recipient: string, esmtpArgs: readonly string[]): HookResult;
  data?(session: SessionContext<S>): HookResult;
  header?(session: SessionContext<S>, name: string, value: string): HookResult;
  eoh?(session: SessionContext<S>): HookResult;
  body?(session: SessionContext<S>, chunk: Buffer): HookResult;
  eom?(session: SessionContext<S>, modifier: MessageModifier): HookResult;
  unknown?(session: SessionContext<S>, line: string): HookResult;
  /** The current message ended without EOM (ABORT, a new MAIL, or the connection going away). */
  abort?(session: SessionContext<S>): void | Promise<void>;
  /** The connection is over (QUIT, QUIT_NC, EOF, error). */
  close?(session: SessionContext<S>): void | Promise<void>;
}
