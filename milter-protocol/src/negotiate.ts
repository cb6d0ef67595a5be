import { ActionFlag, MILTER_VERSION } from './constants.js';
import { MilterProtocolError } from './errors.js';
import type { MacroRequests, OptionNegotiation } from './messages.js';

/** What the milter would like; negotiation grants the part the MTA offered. */
export interface OptionRequest {
  readonly actions: number;
  readonly protocol: number;
  readonly macroRequests?: MacroRequests;
}

export interface NegotiatedOptions extends OptionNegotiation {
  /** Macro lists sent with the reply (only when the MTA offered SETSYMLIST). */
  readonly macroRequests?: MacroRequests;
  /** Actions wanted but not offered: modifications needing them will be refused locally. */
  readonly missingActions: number;
  /** Protocol steps/features wanted but not offered. */
  readonly missingProtocol: number;
}

// libmilter reads a zero word as "what version 1 offered".
const V1_ACTIONS = 0x0f;
const V1_PROTOCOL = 0x3f;
// Reserved for large-packet negotiation (MDS) and an FFR test bit: never echoed back.
const RESERVED_PROTOCOL = 0xf0000000;

/**
 * Answers an OPTNEG offer. The reply never holds an action or protocol bit the MTA did not offer (both MTAs
 * fail the milter otherwise) and its version is min(offered, 6): Postfix refuses a higher one.
 */
export function negotiate(offer: OptionNegotiation, request: OptionRequest): NegotiatedOptions {
  if (offer.version < 2) {
    throw new MilterProtocolError('negotiation', `MTA offered milter protocol version ${offer.version}; version 2 or later is required`);
  }
  const version = Math.min(offer.version, MILTER_VERSION);
  const offeredActions = offer.actions === 0 ? V1_ACTIONS : offer.actions;
  const offeredProtocol = (offer.protocol === 0 ? V1_PROTOCOL : offer.protocol) & ~RESERVED_PROTOCOL;

  let wantedActions = request.actions & ~ActionFlag.SETSYMLIST;
  const macroRequests = request.macroRequests && [...request.macroRequests.values()].some((l) => l.length > 0) ? request.macroRequests : undefined;
  const canAskMacros = macroRequests !== undefined && (offeredActions & ActionFlag.SETSYMLIST) !== 0;
  if (canAskMacros) wantedActions |= ActionFlag.SETSYMLIST;

  const actions = (wantedActions & offeredActions) >>> 0;
  const protocol = (request.protocol & offeredProtocol) >>> 0;
  const missingActions = (request.actions & ~ActionFlag.SETSYMLIST & ~offeredActions) >>> 0;
  const missingProtocol = (request.protocol & ~offeredProtocol) >>> 0;
  const base = { version, actions, protocol, missingActions, missingProtocol };
  return canAskMacros ? { ...base, macroRequests } : base;
}
