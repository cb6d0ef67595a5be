import { MilterProtocolError } from './errors.js';

/** An SMTP reply the milter wants the MTA to give instead of its default text. */
export interface SmtpReply {
  /** 4xx or 5xx. */
  readonly code: number;
  /** Enhanced status code `x.y.z`; its class must match the reply class. Defaults to `4.0.0` / `5.0.0`. */
  readonly xcode?: string;
  /** One line, or several (a string with line breaks, or an array): sent as a multi-line reply. */
  readonly text: string | readonly string[];
}

const MAX_LINES = 32;
const MAX_LINE_TEXT = 980;
const XCODE = /^([245])\.\d{1,3}\.\d{1,3}$/;

/**
 * Builds the text of an SMFIR_REPLYCODE packet the way both MTAs accept it: `DDD-x.y.z text` lines joined by
 * CRLF, the last with `DDD `; `%` doubled (Sendmail reads the text as a format string and Postfix drops a
 * lone `%`); control characters removed; at most 32 lines of 980 characters (libmilter's limits).
 * Throws 'invalid-reply' for a code outside 4xx/5xx or an enhanced code of another class: Postfix turns
 * such a reply into a configuration error for the whole session.
 */
export function encodeReplyCode(reply: SmtpReply): string {
  const { code } = reply;
  if (!Number.isInteger(code) || code < 400 || code > 599) {
    throw new MilterProtocolError('invalid-reply', `reply code ${code} is not 4xx or 5xx`);
  }
  const cls = String(code)[0] as string;
  const xcode = reply.xcode ?? `${cls}.0.0`;
  const m = XCODE.exec(xcode);
  if (!m) throw new MilterProtocolError('invalid-reply', `enhanced status code '${xcode}' is not of the form x.y.z`);
  if (m[1] !== cls) {
    throw new MilterProtocolError('invalid-reply', `enhanced status code ${xcode} does not match the class of reply ${code}`);
  }
  const raw = typeof reply.text === 'string' ? reply.text.split(/\r\n|\r|\n/) : reply.text.flatMap((l) => l.split(/\r\n|\r|\n/));
  const lines = raw.slice(0, MAX_LINES).map(cleanLine);
  if (lines.length === 0) lines.push('');
  return lines
    .map((text, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${xcode}${text === '' ? '' : ' '}${text}`)
    .join('\r\n');
}

// Strips C0/C1 controls and DEL (they cannot appear in an SMTP reply), escapes `%`, bounds the length
// without cutting an escape in half.
function cleanLine(line: string): string {
  // eslint-disable-next-line no-control-regex
  let out = line.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').replace(/%/g, '%%');
  if (out.length > MAX_LINE_TEXT) {
    out = out.slice(0, MAX_LINE_TEXT);
    const trailing = /%+$/.exec(out)?.[0].length ?? 0;
    if (trailing % 2 === 1) out = out.slice(0, -1);
  }
  return out;
}

/**
 * Checks a complete reply text (as sent in SMFIR_REPLYCODE) line by line the way current Postfix does:
 * `[45]DD` then `-` or ` ` on every line, the last with ` `, same code on every line, enhanced code class
 * equal to the reply class, no lone `%`, no NUL.
 */
export function validateReplyText(text: string): void {
  const fail = (why: string): never => {
    throw new MilterProtocolError('invalid-reply', `reply text ${JSON.stringify(text.slice(0, 80))}: ${why}`);
  };
  if (text.includes('\0')) fail('contains a NUL byte');
  const lines = text.split('\r\n');
  const code = text.slice(0, 3);
  if (!/^[45]\d\d$/.test(code)) fail('must start with a 4xx or 5xx code');
  lines.forEach((line, i) => {
    if (line.slice(0, 3) !== code) fail(`line ${i + 1} does not start with ${code}`);
    const sep = line[3];
    const last = i === lines.length - 1;
    if (line.length > 3 && sep !== (last ? ' ' : '-')) fail(`line ${i + 1} must continue with '${last ? ' ' : '-'}'`);
    if (!last && line.length === 3) fail(`line ${i + 1} must continue with '-'`);
    if (/[\r\n]/.test(line)) fail('lines must be separated by CRLF only');
    const x = /^\d\d\d[ -](\d)\.\d+\.\d+(?: |$)/.exec(line);
    if (x && x[1] !== code[0]) fail(`enhanced status code class ${x[1]} does not match reply class ${code[0]}`);
    if (/%(?!%)/.test(line.replace(/%%/g, ''))) fail("a lone '%' (write '%%')");
  });
}
