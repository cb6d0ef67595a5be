// The MTA side of the codec: packets from the milter → typed responses. Used by the test/benchmark client.
import { ResponseCode } from './constants.js';
import { MilterProtocolError } from './errors.js';
import type { Frame, MilterResponse } from './messages.js';
import { PayloadReader } from './payload-reader.js';

const DATALESS: ReadonlyMap<number, MilterResponse> = new Map<number, MilterResponse>([
  [ResponseCode.CONTINUE, { type: 'continue' }],
  [ResponseCode.ACCEPT, { type: 'accept' }],
  [ResponseCode.REJECT, { type: 'reject' }],
  [ResponseCode.TEMPFAIL, { type: 'tempfail' }],
  [ResponseCode.DISCARD, { type: 'discard' }],
  [ResponseCode.SKIP, { type: 'skip' }],
  [ResponseCode.SHUTDOWN, { type: 'shutdown' }],
  [ResponseCode.PROGRESS, { type: 'progress' }],
]);

export function decodeResponse(frame: Frame): MilterResponse {
  const { code, payload } = frame;
  const fixed = DATALESS.get(code);
  if (fixed) {
    // Postfix treats data after a data-less reply as a communication error; so do we.
    if (payload.length !== 0) {
      throw new MilterProtocolError('malformed-response', `reply '${String.fromCharCode(code)}' followed by ${payload.length} data bytes`);
    }
    return fixed;
  }
  const r = new PayloadReader(payload, `reply '${String.fromCharCode(code)}'`, 'malformed-response');
  switch (code) {
    case ResponseCode.OPTNEG: {
      const version = r.uint32('version');
      const actions = r.uint32('actions');
      const protocol = r.uint32('protocol');
      if (r.remaining === 0) return { type: 'optneg', version, actions, protocol };
      const macroRequests = new Map<number, string[]>();
      while (r.remaining > 0) {
        const stage = r.uint32('macro stage');
        macroRequests.set(stage, r.cstring('macro list').split(/[ ,]+/).filter((n) => n !== ''));
      }
      return { type: 'optneg', version, actions, protocol, macroRequests };
    }
    case ResponseCode.REPLYCODE: {
      const text = r.cstring('reply text');
      r.end();
      return { type: 'replycode', text };
    }
    case ResponseCode.ADDHEADER:
      return { type: 'add-header', name: r.cstring('name'), value: r.cstring('value') };
    case ResponseCode.INSHEADER:
      return { type: 'insert-header', index: r.uint32('index'), name: r.cstring('name'), value: r.cstring('value') };
    case ResponseCode.CHGHEADER:
      return { type: 'change-header', index: r.uint32('index'), name: r.cstring('name'), value: r.cstring('value') };
    case ResponseCode.CHGFROM: {
      const sender = r.cstring('sender');
      return r.remaining > 0 ? { type: 'change-from', sender, esmtpArgs: r.cstring('ESMTP arguments') } : { type: 'change-from', sender };
    }
    case ResponseCode.ADDRCPT:
      return { type: 'add-rcpt', recipient: r.cstring('recipient') };
    case ResponseCode.ADDRCPT_PAR: {
      const recipient = r.cstring('recipient');
      return r.remaining > 0
        ? { type: 'add-rcpt-par', recipient, esmtpArgs: r.cstring('ESMTP arguments') }
        : { type: 'add-rcpt-par', recipient };
    }
    case ResponseCode.DELRCPT:
      return { type: 'delete-rcpt', recipient: r.cstring('recipient') };
    case ResponseCode.REPLBODY:
      return { type: 'replace-body', chunk: r.rest() };
    case ResponseCode.QUARANTINE:
      return { type: 'quarantine', reason: r.cstring('reason') };
    default:
      throw new MilterProtocolError('malformed-response', `unknown reply byte 0x${code.toString(16).padStart(2, '0')}`);
  }
}

/** Whether a response ends the MTA's wait for the current command. */
export function isFinalResponse(response: MilterResponse): boolean {
  switch (response.type) {
    case 'continue':
    case 'accept':
    case 'reject':
    case 'tempfail':
    case 'discard':
    case 'skip':
    case 'shutdown':
    case 'replycode':
    case 'optneg':
      return true;
    default:
      return false;
  }
}
