// Typed forms of every packet, in both directions. Strings hold the wire bytes as latin1, which maps each
// byte to one UTF-16 unit and back without loss (header and address bytes are not guaranteed UTF-8).
import type { AddressFamily } from './constants.js';

/** A raw packet: the command/response byte and its payload (the bytes after the code). */
export interface Frame {
  readonly code: number;
  readonly payload: Buffer;
}

export interface OptionNegotiation {
  readonly version: number;
  readonly actions: number;
  readonly protocol: number;
}

export type ConnectCommand =
  | {
      readonly type: 'connect';
      readonly hostname: string;
      readonly family: typeof AddressFamily.INET | typeof AddressFamily.INET6 | typeof AddressFamily.UNIX;
      readonly port: number;
      readonly address: string;
    }
  | { readonly type: 'connect'; readonly hostname: string; readonly family: typeof AddressFamily.UNKNOWN };

/** One macro name/value pair; names as the MTA spells them (`j`, `{daemon_name}`). */
export type MacroPair = readonly [name: string, value: string];

/** Every command the MTA sends. */
export type MilterCommand =
  | ({ readonly type: 'optneg' } & OptionNegotiation)
  | { readonly type: 'macro'; readonly stage: number; readonly macros: readonly MacroPair[] }
  | ConnectCommand
  | { readonly type: 'helo'; readonly name: string }
  | { readonly type: 'mail'; readonly sender: string; readonly esmtpArgs: readonly string[] }
  | { readonly type: 'rcpt'; readonly recipient: string; readonly esmtpArgs: readonly string[] }
  | { readonly type: 'data' }
  | { readonly type: 'header'; readonly name: string; readonly value: string }
  | { readonly type: 'eoh' }
  | { readonly type: 'body'; readonly chunk: Buffer }
  | { readonly type: 'eom'; readonly chunk: Buffer }
  | { readonly type: 'unknown'; readonly line: string }
  | { readonly type: 'abort' }
  | { readonly type: 'quit' }
  | { readonly type: 'quit-nc' };

export type CommandType = MilterCommand['type'];

/** Macro names the milter asks for, per SMFIM_* stage number. */
export type MacroRequests = ReadonlyMap<number, readonly string[]>;

/** Responses that end the MTA's wait for a command. */
export type FinalResponse =
  | { readonly type: 'continue' }
  | { readonly type: 'accept' }
  | { readonly type: 'reject' }
  | { readonly type: 'tempfail' }
  | { readonly type: 'discard' }
  | { readonly type: 'skip' }
  | { readonly type: 'shutdown' }
  /** `text` is the complete SMTP reply as it goes on the wire (see encodeReplyCode). */
  | { readonly type: 'replycode'; readonly text: string };

/** End-of-message modifications (all non-final). */
export type Modification =
  | { readonly type: 'add-header'; readonly name: string; readonly value: string }
  | { readonly type: 'insert-header'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly type: 'change-header'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly type: 'change-from'; readonly sender: string; readonly esmtpArgs?: string }
  | { readonly type: 'add-rcpt'; readonly recipient: string }
  | { readonly type: 'add-rcpt-par'; readonly recipient: string; readonly esmtpArgs?: string }
  | { readonly type: 'delete-rcpt'; readonly recipient: string }
  | { readonly type: 'replace-body'; readonly chunk: Buffer }
  | { readonly type: 'quarantine'; readonly reason: string };

/** Every response the milter sends. */
export type MilterResponse =
  | ({ readonly type: 'optneg'; readonly macroRequests?: MacroRequests } & OptionNegotiation)
  | FinalResponse
  | { readonly type: 'progress' }
  | Modification;

export type ResponseType = MilterResponse['type'];
