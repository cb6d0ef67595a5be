// File names from raw MIME header lines: every `name` (Content-Type) and `filename` (Content-Disposition)
// parameter of every occurrence of those headers, and the older `Content-Name` and `X-Sun-Data-Name` headers, in plain, RFC 2047 encoded-word and RFC 2231
// (charset'lang'%XX, continued `*0*`, `*1`…) forms. mailsplit (and mailparser on it) keeps one value per parameter from the first
// header only, so a sender could show one name to us and another to a mail client that reads the other
// form (or the duplicate header); checking all forms closes that gap.

import iconv from 'iconv-lite';

export interface RawHeaderLine {
  /** Lower-case header name. */
  readonly key: string;
  /** The whole header line as received, folding included (bytes as latin1 code units). */
  readonly line: string;
}

const NAME_PARAM = /^(name|filename)(?:\*(\d+))?(\*)?$/;

function decodeBytes(bytes: Uint8Array, charset: string): string {
  const label = charset.trim().toLowerCase() || 'utf-8';
  try {
    return new TextDecoder(label === 'us-ascii' ? 'utf-8' : label, { fatal: false }).decode(bytes);
  } catch {
    // Charsets the WHATWG decoder lacks but mail clients decode, UTF-7 above all (`invoice+AC4-js`).
    if (iconv.encodingExists(label)) return iconv.decode(Buffer.from(bytes), label);
    // An unknown charset: keep the bytes readable rather than drop the name.
    return Buffer.from(bytes).toString('latin1');
  }
}

/** Header text arrives as latin1 code units of the raw bytes; 8-bit names are usually UTF-8. */
function rawToText(s: string): string {
  if (!/[\x80-\xff]/.test(s)) return s;
  const bytes = Buffer.from(s, 'latin1');
  const utf8 = bytes.toString('utf8');
  return utf8.includes('\uFFFD') ? s : utf8;
}

function percentDecode(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(c & 0xff);
  }
  return Uint8Array.from(out);
}

/** Decodes RFC 2047 encoded words (`=?charset?B|Q?…?=`); whitespace between adjacent words is dropped. */
export function decodeEncodedWords(text: string): string {
  const word = /=\?([^?\s]+?)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=/g;
  return text.replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?)/g, '$1').replace(word, (_m, charset: string, enc: string, data: string) => {
    let bytes: Uint8Array;
    if (enc.toLowerCase() === 'b') bytes = Buffer.from(data, 'base64');
    else bytes = percentDecode(data.replace(/_/g, ' ').replace(/=([0-9a-fA-F]{2})/g, '%$1'));
    return decodeBytes(bytes, charset);
  });
}

interface Param {
  readonly attribute: string;
  readonly value: string;
}

/** Removes RFC 5322 comments `( … )` outside quoted strings (they may hold `;` and look-alike parameters). */
function stripComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] ?? '';
    if (c === '\\' && (quoted || depth > 0)) {
      if (depth === 0) out += c + (value[i + 1] ?? '');
      i++;
    } else if (quoted) {
      out += c;
      if (c === '"') quoted = false;
    } else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) {
      out += c;
      if (c === '"') quoted = true;
    }
  }
  return out;
}

/**
 * Splits `type/sub; a=b; c="d;e" (comment)` into parameters; comments and malformed pieces are skipped. Read the
 * way Thunderbird's parser reads them: parameters start after the first `;` or `,` (`attachment, filename=…`),
 * or at the start when the value has neither but has a parameter (`filename=…` without a type), and `,`
 * separates them as `;` does. An unquoted value holding a comma gives both readings.
 */
function parseParams(raw: string): Param[] {
  const params: Param[] = [];
  const value = stripComments(raw);
  let i = value.search(/[;,]/);
  if (i === -1) {
    if (!value.includes('=')) return params;
    i = 0;
  }
  const n = value.length;
  while (i < n) {
    if (value[i] === ';' || value[i] === ',' || value[i] === ' ' || value[i] === '\t') {
      i++;
      continue;
    }
    if (value[i] === '(') {
      let depth = 0;
      for (; i < n; i++) {
        if (value[i] === '\\') i++;
        else if (value[i] === '(') depth++;
        else if (value[i] === ')' && --depth === 0) {
          i++;
          break;
        }
      }
      continue;
    }
    const eq = value.indexOf('=', i);
    const rest = value.slice(i).search(/[;,]/);
    const semi = rest === -1 ? -1 : i + rest;
    if (eq === -1 || (semi !== -1 && semi < eq)) {
      i = semi === -1 ? n : semi + 1;
      continue;
    }
    const attribute = value.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i++;
    let v = '';
    if (value[i] === '"') {
      i++;
      for (; i < n && value[i] !== '"'; i++) {
        if (value[i] === '\\' && i + 1 < n) i++;
        v += value[i];
      }
      i++;
    } else {
      const end = value.slice(i).search(/[;\s(]/);
      v = end === -1 ? value.slice(i) : value.slice(i, i + end);
      i = end === -1 ? n : i + end;
      const comma = v.indexOf(',');
      if (comma !== -1) params.push({ attribute, value: v.slice(0, comma) });
    }
    params.push({ attribute, value: v });
  }
  return params;
}

/** Every file name in the Content-Type and Content-Disposition lines among `lines`, decoded, deduplicated. */
export function namesFromHeaderLines(lines: readonly RawHeaderLine[]): string[] {
  const names: string[] = [];
  const add = (n: string): void => {
    if (n !== '' && !names.includes(n)) names.push(n);
  };
  for (const { key, line } of lines) {
    const unfolded = line.replace(/\r?\n(?=[ \t])/g, '');
    const value = unfolded.slice(unfolded.indexOf(':') + 1);
    // Older headers whose whole value is a name; Thunderbird falls back to them when no parameter names the part.
    if (key === 'content-name' || key === 'x-sun-data-name') {
      add(decodeEncodedWords(rawToText(value.trim())));
      continue;
    }
    if (key !== 'content-type' && key !== 'content-disposition') continue;
    // Sections of continued parameters, by base name: [section number, extended?, text].
    const sections = new Map<string, { nr: number; extended: boolean; text: string }[]>();
    for (const p of parseParams(value)) {
      const m = NAME_PARAM.exec(p.attribute);
      if (!m) continue;
      const base = m[1] ?? '';
      const nr = m[2];
      const extended = m[3] === '*';
      if (nr === undefined && !extended) {
        // Plain form; mail clients also decode encoded words here even though RFC 2047 forbids them in quotes.
        add(decodeEncodedWords(rawToText(p.value)));
      } else if (nr === undefined) {
        const parts = /^([^']*)'[^']*'(.*)$/s.exec(p.value);
        add(parts ? decodeBytes(percentDecode(parts[2] ?? ''), parts[1] ?? '') : decodeBytes(percentDecode(p.value), 'utf-8'));
      } else {
        const list = sections.get(base) ?? [];
        list.push({ nr: Number(nr), extended, text: p.value });
        sections.set(base, list);
      }
    }
    for (const list of sections.values()) {
      list.sort((a, b) => a.nr - b.nr);
      let charset = 'utf-8';
      const bytes: number[] = [];
      for (const [idx, s] of list.entries()) {
        let text = s.text;
        if (idx === 0 && s.extended) {
          const parts = /^([^']*)'[^']*'(.*)$/s.exec(text);
          if (parts) {
            charset = parts[1] || 'utf-8';
            text = parts[2] ?? '';
          }
        }
        const chunk = s.extended ? percentDecode(text) : Buffer.from(text, 'latin1');
        for (const b of chunk) bytes.push(b);
      }
      add(decodeBytes(Uint8Array.from(bytes), charset));
    }
  }
  return names;
}
