// Header and envelope matchers of the queue sweep: `--match-header 'Subject:/invoice \d+/i'`,
// `--match-sender REGEX`, `--match-recipient REGEX`, each repeatable. Matchers of one kind are alternatives,
// kinds combine with AND: `--match-sender A --match-recipient B` means "from A and to B", never "from A or
// to anyone at B" (that reading once emptied a queue through `| postsuper -d -`). Header values are unfolded
// and matched both as stored and with RFC 2047 encoded words decoded (outbreak subjects are often encoded).
// A bare regex (without slashes) is case-insensitive, like Postfix's header_checks.

export class MatcherSyntaxError extends Error {
  override readonly name = 'MatcherSyntaxError';
}

export interface HeaderMatcher {
  readonly kind: 'header';
  /** Lower-case field name. */
  readonly field: string;
  readonly regex: RegExp;
  /** As given on the command line, for reasons and the checkpoint fingerprint. */
  readonly spec: string;
}

export interface EnvelopeMatcher {
  readonly kind: 'sender' | 'recipient';
  readonly regex: RegExp;
  readonly spec: string;
}

export type Matcher = HeaderMatcher | EnvelopeMatcher;

function compile(source: string, what: string): RegExp {
  const slashed = /^\/(.*)\/([a-z]*)$/s.exec(source);
  try {
    if (slashed) return new RegExp(slashed[1] ?? '', (slashed[2] ?? '').replace(/[gy]/g, ''));
    return new RegExp(source, 'i');
  } catch (e) {
    throw new MatcherSyntaxError(`${what}: invalid regular expression ${JSON.stringify(source)}: ${(e as Error).message}`);
  }
}

/** `Name:/regex/flags` or `Name: regex` (case-insensitive). */
export function parseHeaderMatcher(spec: string): HeaderMatcher {
  const m = /^([\x21-\x39\x3b-\x7e]+):\s*(.*)$/s.exec(spec);
  if (!m?.[1] || m[2] === undefined || m[2] === '') {
    throw new MatcherSyntaxError(`--match-header ${JSON.stringify(spec)}: expected NAME:/REGEX/ such as 'Subject:/invoice/i'`);
  }
  return { kind: 'header', field: m[1].toLowerCase(), regex: compile(m[2], `--match-header ${m[1]}`), spec };
}

export function parseEnvelopeMatcher(kind: 'sender' | 'recipient', spec: string): EnvelopeMatcher {
  return { kind, regex: compile(spec, `--match-${kind}`), spec };
}

export interface HeaderField {
  readonly name: string;
  /** Unfolded value as stored (leading whitespace removed). */
  readonly value: string;
}

/** Splits a header block ('\n' or '\r\n' line ends) into fields, unfolding continuation lines. */
export function parseHeaderFields(block: Buffer): HeaderField[] {
  // Header bytes are mostly ASCII; UTF-8 (SMTPUTF8) decodes as such, anything else keeps its bytes as latin1.
  const text = isUtf8(block) ? block.toString('utf8') : block.toString('latin1');
  const fields: HeaderField[] = [];
  let current: { name: string; value: string } | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (/^[ \t]/.test(line)) {
      if (current) current.value += line;
      continue;
    }
    if (current) fields.push(current);
    const colon = line.indexOf(':');
    current = colon > 0 ? { name: line.slice(0, colon).trim(), value: line.slice(colon + 1).replace(/^[ \t]+/, '') } : undefined;
  }
  if (current) fields.push(current);
  return fields;
}

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`); unknown charsets are left as they are. */
export function decodeEncodedWords(value: string): string {
  // Whitespace between two adjacent encoded words is not part of the text (RFC 2047 section 6.2).
  return value
    .replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)/g, '$1')
    .replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (word: string, charset: string, enc: string, text: string) => {
      try {
        const bytes =
          enc.toUpperCase() === 'B'
            ? Buffer.from(text, 'base64')
            : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m: string, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
        return new TextDecoder(charset.replace(/\*.*$/, '').toLowerCase()).decode(bytes);
      } catch {
        return word;
      }
    });
}

export interface MatchInput {
  readonly sender: string | undefined;
  readonly recipients: readonly string[];
  readonly headers: readonly HeaderField[];
}

/** The matcher kinds in the order reasons are given. */
const KINDS = ['header', 'sender', 'recipient'] as const;

/** The reason `m` matches `input`, or undefined. */
function matchOne(m: Matcher, input: MatchInput): string | undefined {
  if (m.kind === 'header') {
    for (const f of input.headers) {
      if (f.name.toLowerCase() !== m.field) continue;
      const decoded = decodeEncodedWords(f.value);
      if (m.regex.test(f.value) || (decoded !== f.value && m.regex.test(decoded))) return `header ${f.name}: ${JSON.stringify(decoded.slice(0, 200))} matches ${m.spec}`;
    }
    return undefined;
  }
  if (m.kind === 'sender') {
    return input.sender !== undefined && m.regex.test(input.sender) ? `sender ${JSON.stringify(input.sender)} matches ${m.spec}` : undefined;
  }
  const hit = input.recipients.find((r) => m.regex.test(r));
  return hit !== undefined ? `recipient ${JSON.stringify(hit)} matches ${m.spec}` : undefined;
}

/**
 * Whether the message matches: for every kind of matcher given (header, sender, recipient) at least one
 * of that kind matches. Returns the reasons (every matcher that matched), or [] when it does not match.
 */
export function applyMatchers(matchers: readonly Matcher[], input: MatchInput): string[] {
  const reasons: string[] = [];
  for (const kind of KINDS) {
    const ofKind = matchers.filter((m) => m.kind === kind);
    if (ofKind.length === 0) continue;
    const hits = ofKind.map((m) => matchOne(m, input)).filter((r) => r !== undefined);
    if (hits.length === 0) return [];
    reasons.push(...hits);
  }
  return reasons;
}
