// Reading clamd's answer to INSTREAM. Only `stream: OK` is clean and only `stream: NAME FOUND` is a virus;
// every `... ERROR` (including the size-limit reply) is a failure, and anything else is a protocol failure.
// Where clamav-milter and clamdjs guess (`includes('OK')`), a reply we do not recognise must never pass.
import { scanFailure, type ScanResult } from './scan-result.js';

/** Longest reply we accept: clamd's replies are one short line; more is garbage, not a reply to wait for. */
export const MAX_REPLY_BYTES = 4096;

const FOUND = /^stream: (.+) FOUND$/;
const SIZE_LIMIT = 'INSTREAM size limit exceeded. ERROR';
// ClamAV's limit heuristics (with AlertExceedsMax) come back as FOUND names: the content was only partly
// scanned, so they are failures, not viruses (rspamd treats them the same way).
const LIMIT_HEURISTIC = /^Heuristics\.Limits\.Exceeded\.(\S+)/;

/** Strips the reply terminator (NUL for z-commands, newline for n-commands) and surrounding blanks. */
export function replyText(raw: Buffer | string): string {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  return text.replace(/[\0\r\n]+$/, '').trim();
}

/** Shows a reply in a log line or failure detail: control characters escaped, length bounded. */
export function printableReply(text: string, max = 200): string {
  const shown = JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
  return shown;
}

export function parseScanReply(raw: Buffer | string): ScanResult {
  const text = replyText(raw);
  if (text === 'stream: OK') return { type: 'clean' };
  const found = FOUND.exec(text);
  if (found !== null) {
    const signature = found[1] as string;
    const limit = LIMIT_HEURISTIC.exec(signature);
    if (limit !== null) {
      const which = limit[1] as string;
      return scanFailure(
        which.startsWith('MaxScanTime') ? 'timeout' : 'size-limit',
        `clamd stopped scanning at one of its limits (${signature}); the message was not fully scanned`,
      );
    }
    return { type: 'infected', signature };
  }
  if (text === SIZE_LIMIT || text.endsWith(`: ${SIZE_LIMIT}`)) {
    return scanFailure('size-limit', "the message is larger than clamd's StreamMaxLength (clamd: INSTREAM size limit exceeded)");
  }
  if (text.endsWith(' ERROR')) return scanFailure('error', `clamd reported an error: ${printableReply(text)}`);
  if (text === '') return scanFailure('protocol', 'clamd sent an empty reply');
  return scanFailure('protocol', `clamd sent a reply that is not a scan result: ${printableReply(text)}`);
}

/** `<id>: ` in front of every reply on an IDSESSION connection. */
const SESSION_PREFIX = /^(\d{1,10}): /;

/**
 * Reads clamd's answer to request `expectedId` of an IDSESSION connection (`1: stream: OK`): the `<id>: ` prefix
 * must name exactly that request and is taken off before `parseScanReply`. A reply for another request is a
 * 'protocol' failure: the connection is out of step and nothing on it can be believed. A reply without any
 * prefix is a 'protocol' failure too, unless it is itself a failure (an error clamd sent for the connection
 * rather than the request), which stays that failure.
 */
export function parseSessionScanReply(raw: Buffer | string, expectedId: number): ScanResult {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const prefix = SESSION_PREFIX.exec(text);
  if (prefix === null) {
    const result = parseScanReply(text);
    if (result.type === 'failed') return result;
    return scanFailure('protocol', `clamd answered ${printableReply(replyText(text))} on a session without a request id (expected "${expectedId}: …")`);
  }
  const id = Number(prefix[1]);
  if (id !== expectedId) {
    return scanFailure('protocol', `clamd answered request ${id} on a session where request ${expectedId} was pending: ${printableReply(replyText(text))}`);
  }
  return parseScanReply(text.slice(prefix[0].length));
}
