// The milter side of the codec: typed responses → packets.
import { MAX_OUTGOING_DATA, ResponseCode } from './constants.js';
import { MilterProtocolError } from './errors.js';
import { encodeFrame } from './frame-decoder.js';
import { cstr, uint32 } from './payload-writer.js';
import type { MacroRequests, MilterResponse } from './messages.js';
import { validateReplyText } from './reply-code.js';


// Data-less replies are the hot path (one per command): build them once.
const FIXED = {
  continue: encodeFrame(ResponseCode.CONTINUE),
  accept: encodeFrame(ResponseCode.ACCEPT),
  reject: encodeFrame(ResponseCode.REJECT),
  tempfail: encodeFrame(ResponseCode.TEMPFAIL),
  discard: encodeFrame(ResponseCode.DISCARD),
  skip: encodeFrame(ResponseCode.SKIP),
  shutdown: encodeFrame(ResponseCode.SHUTDOWN),
  progress: encodeFrame(ResponseCode.PROGRESS),
} as const;

/** Header names are non-empty and hold no NUL, colon or line break; values fold with LF only. */
function checkHeader(name: string, value: string): string {
  if (name === '' || /[\0:\r\n]/.test(name)) {
    throw new MilterProtocolError('invalid-reply', `header name ${JSON.stringify(name)} is empty or holds ':', NUL or a line break`);
  }
  if (value.includes('\0')) throw new MilterProtocolError('invalid-reply', `value of header ${name} holds a NUL byte`);
  // CRLF inside a value lands as a stray CR in Postfix's queue file; LF + whitespace is the fold.
  return value.replace(/\r\n/g, '\n').replace(/\r/g, '\n');
}

function checkIndex(index: number, what: string): Buffer {
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) {
    throw new MilterProtocolError('invalid-reply', `${what} index ${index} is not an unsigned 32-bit integer`);
  }
  return uint32(index);
}

function checkAddress(address: string, what: string): string {
  if (address === '' || /[\0\r\n]/.test(address)) {
    throw new MilterProtocolError('invalid-reply', `${what} address ${JSON.stringify(address)} is empty or holds NUL or a line break`);
  }
  return address;
}

function withArgs(code: number, address: string, what: string, args: string | undefined): Buffer {
  const parts = cstr(checkAddress(address, what));
  if (args !== undefined && args !== '') {
    if (/[\0\r\n]/.test(args)) throw new MilterProtocolError('invalid-reply', `${what} ESMTP arguments hold NUL or a line break`);
    parts.push(...cstr(args));
  }
  return encodeFrame(code, parts);
}

function encodeMacroRequests(requests: MacroRequests | undefined): Buffer[] {
  if (!requests) return [];
  const parts: Buffer[] = [];
  for (const [stage, names] of requests) {
    if (names.length === 0) continue; // an empty list means "global default" to Postfix: say nothing instead
    parts.push(uint32(stage), ...cstr(names.join(' ')));
  }
  return parts;
}

/** Encodes one response. REPLBODY larger than 65535 bytes becomes several consecutive packets. */
export function encodeResponse(response: MilterResponse): Buffer {
  switch (response.type) {
    case 'continue':
    case 'accept':
    case 'reject':
    case 'tempfail':
    case 'discard':
    case 'skip':
    case 'shutdown':
    case 'progress':
      return FIXED[response.type];
    case 'optneg':
      return encodeFrame(ResponseCode.OPTNEG, [
        uint32(response.version),
        uint32(response.actions),
        uint32(response.protocol),
        ...encodeMacroRequests(response.macroRequests),
      ]);
    case 'replycode':
      validateReplyText(response.text);
      return encodeFrame(ResponseCode.REPLYCODE, cstr(response.text));
    case 'add-header':
      return encodeFrame(ResponseCode.ADDHEADER, [...cstr(response.name), ...cstr(checkHeader(response.name, response.value))]);
    case 'insert-header':
      return encodeFrame(ResponseCode.INSHEADER, [
        checkIndex(response.index, 'insert-header'),
        ...cstr(response.name),
        ...cstr(checkHeader(response.name, response.value)),
      ]);
    case 'change-header':
      return encodeFrame(ResponseCode.CHGHEADER, [
        checkIndex(response.index, 'change-header'),
        ...cstr(response.name),
        ...cstr(checkHeader(response.name, response.value)),
      ]);
    case 'change-from':
      return withArgs(ResponseCode.CHGFROM, response.sender, 'change-from', response.esmtpArgs);
    case 'add-rcpt':
      return encodeFrame(ResponseCode.ADDRCPT, cstr(checkAddress(response.recipient, 'add-rcpt')));
    case 'add-rcpt-par':
      return withArgs(ResponseCode.ADDRCPT_PAR, response.recipient, 'add-rcpt', response.esmtpArgs);
    case 'delete-rcpt':
      return encodeFrame(ResponseCode.DELRCPT, cstr(checkAddress(response.recipient, 'delete-rcpt')));
    case 'replace-body': {
      const { chunk } = response;
      if (chunk.length <= MAX_OUTGOING_DATA) return encodeFrame(ResponseCode.REPLBODY, chunk);
      const frames: Buffer[] = [];
      for (let off = 0; off < chunk.length; off += MAX_OUTGOING_DATA) {
        frames.push(encodeFrame(ResponseCode.REPLBODY, chunk.subarray(off, off + MAX_OUTGOING_DATA)));
      }
      return Buffer.concat(frames);
    }
    case 'quarantine':
      if (response.reason === '' || response.reason.includes('\0')) {
        throw new MilterProtocolError('invalid-reply', 'quarantine reason must be non-empty and hold no NUL');
      }
      return encodeFrame(ResponseCode.QUARANTINE, cstr(response.reason));
  }
}
