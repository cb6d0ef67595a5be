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
