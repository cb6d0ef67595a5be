// @postfix-milter-ts/protocol: the milter wire protocol v6 (codec, session, server). Knows nothing of mail policy.
export * from './constants.js';
export { MilterProtocolError, type ProtocolErrorKind } from './errors.js';
export type * from './messages.js';
export { FrameDecoder, encodeFrame } from './frame-decoder.js';
export { decodeCommand } from './command-decoder.js';
export { encodeCommand } from './command-encoder.js';
export { encodeResponse } from './response-encoder.js';
export { decodeResponse, isFinalResponse } from './response-decoder.js';
export { encodeReplyCode, validateReplyText, type SmtpReply } from './reply-code.js';
export { negotiate, type NegotiatedOptions, type OptionRequest } from './negotiate.js';
export { MacroStore } from './macros.js';
export {
  Verdict,
  type ConnectInfo,
  type HookResult,
  type MacroStageName,
  type MessageModifier,
  type MilterFilter,
  type MtaKind,
  type NoReplyStage,
  type SessionContext,
} from './filter.js';
export { MilterSession, optionRequestFor, type SessionObserver, type SessionOptions, type SessionTransport } from './session.js';
export { MilterServer, type CloseOutcome, type MilterServerOptions, type ServerObserver } from './server.js';
export { parseListenAddress, formatListenAddress, ListenAddressError, type ListenAddress } from './listen-address.js';
