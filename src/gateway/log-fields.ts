// Log fields that carry text a client chose (HELO name, sender, attachment and virus names inside reasons) are
// bounded: one message must not make a log line of megabytes (a syslog datagram is cut at 64 KB, the TCP
// sender's queue holds 1 MiB, and journald splits long lines). What is cut says how much was left out.

import { utf8FromByteString } from '../byte-string.js';

/** Characters kept of one field or reason: a real name fits, an attacker's 30,000-character one does not. */
export const MAX_FIELD_CHARS = 300;
/** Reasons listed in one line; the rest are counted. */
export const MAX_REASONS = 20;

/** Protocol text as a person reads it: UTF-8 when its bytes are valid UTF-8 (an SMTPUTF8 address or HELO), else as received. */
function readable(text: string): string {
  return utf8FromByteString(text) ?? text;
}

export function boundedField(raw: string | undefined): string | undefined {
  if (raw === undefined) return raw;
  const text = readable(raw);
  if (text.length <= MAX_FIELD_CHARS) return text;
  return `${text.slice(0, MAX_FIELD_CHARS)}…(${text.length - MAX_FIELD_CHARS} more characters)`;
}

/** Reasons may quote protocol text (`rcpt <…>`): shown like boundedField. */
export function boundedReasons(reasons: readonly string[]): string[] {
  const shown = reasons.slice(0, MAX_REASONS).map((r) => boundedField(r) as string);
  if (reasons.length > MAX_REASONS) shown.push(`+${reasons.length - MAX_REASONS} more`);
  return shown;
}
