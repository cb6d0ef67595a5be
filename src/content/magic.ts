// Real-type detection from content (magic bytes), and whether that type is dangerous or contradicts what
// the sender declared. Like amavisd's file(1) types and rspamd's lua_magic, but only the formats that matter
// for a verdict, and tuned against false positives on office files, PDFs, images and calendar invites.

/** Types refused by default when found, whatever the name: code that runs when opened, or containers that bypass Mark-of-the-Web. */
export const DANGEROUS_TYPE_LABELS = [
  'pe', // Windows executable/DLL (MZ…PE)
  'elf',
  'macho',
  'java-class',
  'shebang', // #! script
  'lnk', // Windows shortcut
  'chm', // compiled HTML help
  'reg', // registry import file
  'iso', // ISO 9660 / UDF image (Windows mounts it with a double click)
  'vhd',
  'vhdx',
  'dmg',
  'wim',
  'hta', // HTML application
  'svg-script', // SVG with script or event handlers
  'html-smuggling', // HTML that builds a download from script (Blob, atob, msSaveOrOpenBlob)
] as const;
export type DangerousType = (typeof DANGEROUS_TYPE_LABELS)[number];
/**
 * Dangerous types judged even in an unnamed text body: content no text can be, and HTML that hands the browser a
 * file to save or runs as an application (Outlook shows an HTML body after an attachment as ATT00001.htm, which
 * opens in a browser). A `#!` line or an ordinary script is not judged there.
 */
export const BODY_DANGEROUS_TYPES: ReadonlySet<RealType> = new Set<RealType>(['pe', 'elf', 'macho', 'java-class', 'lnk', 'chm', 'iso', 'vhd', 'vhdx', 'dmg', 'wim', 'hta', 'html-smuggling']);
/**
 * All but `shebang`: a `#!` script runs on no double click (Windows opens it in an editor, Unix mail clients do
 * not execute attachments), and developers mail shell scripts and source archives every day.
 */
export const DEFAULT_DANGEROUS_TYPES: readonly DangerousType[] = DANGEROUS_TYPE_LABELS.filter((t) => t !== 'shebang');

export const ARCHIVE_TYPES = ['zip', 'rar', '7z', 'gzip', 'bzip2', 'xz', 'zstd', 'cab', 'ace', 'arj', 'tar', 'lzh'] as const;
export type ArchiveType = (typeof ARCHIVE_TYPES)[number];

export type RealType =
  | DangerousType
  | ArchiveType
  | 'ole'
  | 'pdf'
  | 'rtf'
  | 'png'
  | 'jpeg'
  | 'gif'
  | 'bmp'
  | 'webp'
  | 'tiff'
  | 'ico'
  | 'html'
  | 'svg'
  | 'calendar'
  | 'tnef' // Outlook's winmail.dat: holds attachments of its own (tnef-reader.ts), not dangerous by itself
  | 'text'
  | 'unknown';

/** Bytes of the start of content needed by detectType (ISO 9660 descriptors sit at 32 KiB + 1). */
export const MAGIC_HEAD_BYTES = 40 * 1024;
/** Bytes of the end of content used by detectType (DMG "koly" and fixed-VHD footers are in the last 512). */
export const MAGIC_TAIL_BYTES = 512;
/** Bytes after the head kept of markup (wantsMarkupTail) for detectType: smuggling code sits after its payload. */
export const MARKUP_TAIL_BYTES = 64 * 1024;

function at(buf: Uint8Array, offset: number, sig: readonly number[]): boolean {
  if (offset + sig.length > buf.length) return false;
  for (let i = 0; i < sig.length; i++) if (buf[offset + i] !== sig[i]) return false;
  return true;
}
// Signatures written as text are turned into byte lists once, not on every detection.
const asciiSignatures = new Map<string, readonly number[]>();
function ascii(s: string): readonly number[] {
  let bytes = asciiSignatures.get(s);
  if (bytes === undefined) {
    bytes = Array.from(s, (c) => c.charCodeAt(0));
    asciiSignatures.set(s, bytes);
  }
  return bytes;
}
function u32le(buf: Uint8Array, offset: number): number | undefined {
  if (offset + 4 > buf.length) return undefined;
  return ((buf[offset] ?? 0) | ((buf[offset + 1] ?? 0) << 8) | ((buf[offset + 2] ?? 0) << 16)) + (buf[offset + 3] ?? 0) * 0x1000000;
}
function u32be(buf: Uint8Array, offset: number): number | undefined {
  if (offset + 4 > buf.length) return undefined;
  return (buf[offset] ?? 0) * 0x1000000 + (((buf[offset + 1] ?? 0) << 16) | ((buf[offset + 2] ?? 0) << 8) | (buf[offset + 3] ?? 0));
}

function isPe(head: Uint8Array): boolean {
  if (!at(head, 0, [0x4d, 0x5a])) return false;
  // e_lfanew points at "PE\0\0" (or "NE" for 16-bit). A text that happens to start with "MZ" has an absurd
  // offset there; a head too short to reach the offset still counts unless it is plain text.
  const lfanew = u32le(head, 0x3c);
  if (lfanew === undefined) return !looksLikeText(head);
  if (lfanew + 4 <= head.length) return at(head, lfanew, [0x50, 0x45, 0, 0]) || at(head, lfanew, [0x4e, 0x45]);
  return lfanew >= 0x40 && lfanew < 0x100000 && !looksLikeText(head.subarray(0, 0x40));
}

const MACHO_MAGICS: readonly (readonly number[])[] = [
  [0xfe, 0xed, 0xfa, 0xce], // 32-bit big-endian
  [0xce, 0xfa, 0xed, 0xfe], // 32-bit little-endian
  [0xfe, 0xed, 0xfa, 0xcf], // 64-bit big-endian
  [0xcf, 0xfa, 0xed, 0xfe], // 64-bit little-endian
  [0xbe, 0xba, 0xfe, 0xca], // fat, little-endian (rare)
  [0xca, 0xfe, 0xba, 0xbf], // fat 64
];

/** Skips a UTF-8/UTF-16 BOM and leading whitespace; returns the text start offset. */
function textStart(head: Uint8Array): number {
  let i = at(head, 0, [0xef, 0xbb, 0xbf]) ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  return i;
}

function looksLikeText(head: Uint8Array): boolean {
  const n = Math.min(head.length, 8192);
  if (n === 0) return true;
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const b = head[i] ?? 0;
    if (b === 0) return false;
    if (b < 0x09 || (b > 0x0d && b < 0x20 && b !== 0x1b)) bad++;
  }
  return bad / n < 0.01;
}

// HTML smuggling needs both halves: a file built in script (Blob, File, atob, an object URL) and a way to hand
// it to the user (`download` set from script, or in the markup on a link with no real target of its own;
// navigation to an object URL of data embedded in the page; msSave(OrOpen)Blob, which takes a Blob and so is
// both). Either alone is ordinary: saved pages decode base64, bundles mint object URLs for workers, download
// links point at real files. Script is what a browser runs: <script> bodies, data: script sources, event-handler
// attributes and javascript: URLs; code shown in documentation (escaped) is not taken for the page's own.
// Property access is matched as templates obfuscate it. No regex here puts two unbounded quantifiers that can
// match the same characters next to each other: a run of blanks would be split every way (seconds on 40 KiB).

/**
 * `.name` or `["name"]`, with the whitespace and newlines templates put inside. Starts with a literal, not `\s*`:
 * a regex starting with `\s*` retries every position of a run of blanks (seconds on 40 KiB of them).
 */
const prop = (name: string): string => `(?:\\.\\s*${name}(?![\\w$])|\\[\\s*["'\`]${name}["'\`]\\s*\\])`;
// `[^<>]*` not `[^>]*`: a `<script` that never closes its tag must not scan to the end once per occurrence.
const SCRIPT = /<script\b([^<>]*)>([\s\S]*?)(?:<\/script|$)/g;
const BUILDS = /createobjecturl|\bnew\s+(?:blob|file)\s*\(|\batob\s*\(/;
// The data is in the page (base64, bytes, char codes), not fetched: what a print preview or a worker lacks.
const EMBEDS_DATA = /\batob\s*\(|base64|uint8array|fromcharcode|charcodeat/;
// Assigning false, null, 0 and the like turns an option off (`player.options.download = false`); a name is a string.
const SETS_DOWNLOAD = new RegExp(
  `${prop('download')}\\s*=(?![=>])(?!\\s*(?:false|true|null|undefined|void|!?[01])(?![\\w$.]))|setattribute["'\`\\]\\s]*\\(\\s*["'\`]download["'\`]`,
);
const SAVES_BLOB = /mssave(?:oropen)?blob/;
const LOCATION = `\\blocation(?:["'\`]\\s*\\])?`;
// Where an object URL is handed to the browser to open: location (= / assign / replace) or open(…).
const NAVIGATE = `(?:${LOCATION}(?:\\s*${prop('href')})?\\s*=(?![=>])|${LOCATION}\\s*(?:${prop('assign')}|${prop('replace')})\\s*\\(|(?:\\bopen|\\[\\s*["'\`]open["'\`]\\s*\\])\\s*\\()`;
// Where a link gets its target from script, for a download link in the markup.
const SETS_HREF = `(?:${prop('href')}\\s*=(?![=>])|setattribute["'\`\\]\\s]*\\(\\s*["'\`]href["'\`]\\s*,)`;
// The sink's value: an expression mentioning createObjectURL within 40 characters, or a bare name. After the
// blanks comes a non-blank, so they are split one way only.
const sinkTaking = (sink: string): RegExp => new RegExp(`${sink}\\s*(?:(?:[^\\s;][^;\\n]{0,40}?)?(createobjecturl)|([\\w$]+)(?![\\w$]))`, 'g');
const NAVIGATES = sinkTaking(NAVIGATE);
const SETS_HREF_TO = sinkTaking(SETS_HREF);
const ASSIGNS_OBJECT_URL = /(?<![\w$.])([\w$]+)\s*=(?![=>])\s*(?:[^\s;=][^;=\n]{0,80}?)?createobjecturl/g;
// A name bound again as a parameter or declaration between assignment and use is another variable (minified
// bundles reuse `e` in every function).
const BINDS = /\bfunction\b[^(){};]{0,40}\(([^()]{0,200})\)|\(([^()]{0,200})\)\s*=>|(?<![\w$.])([\w$]+)\s*=>|\b(?:var|let|const)\s+([\w$]+)/g;
// A tag and its attributes; a quoted value is stepped over whole (it may hold `>`), as the browser reads it.
// Name and attribute loop both take name characters, but nothing follows the loop, so it never backtracks.
const TAG = /<([a-z][^\s/<>]*)((?:[^<>"']|"[^"]*"|'[^']*')*)/g;
const ATTRIBUTE = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
/** Encoded bytes of a data: script source decoded at most (templates inline a loader, not the payload). */
const MAX_DATA_SCRIPT_CHARS = 64 * 1024;

/** The text of data:…[;base64],… or undefined for another URL. */
function dataUrlText(url: string): string | undefined {
  const m = /^\s*data:([^,]*),/i.exec(url);
  if (!m) return undefined;
  const body = url.slice(m[0].length, m[0].length + MAX_DATA_SCRIPT_CHARS);
  if (/;\s*base64\s*$/i.test(m[1] ?? '')) return Buffer.from(body, 'base64').toString('latin1');
  return body.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

const ENTITIES: Readonly<Record<string, string>> = { quot: '"', apos: "'", amp: '&', lt: '<', gt: '>' };
/** An attribute value as the browser hands it to script: the character references templates use decoded. */
function attributeText(value: string): string {
  return value.replace(/&(?:(quot|apos|amp|lt|gt)|#(\d{1,7})|#x([0-9a-f]{1,6}));?/g, (all, name?: string, dec?: string, hex?: string) => {
    if (name !== undefined) return ENTITIES[name] ?? all;
    const code = dec !== undefined ? parseInt(dec, 10) : parseInt(hex ?? '', 16);
    return code < 0x110000 ? String.fromCodePoint(code) : all;
  });
}

interface PageScript {
  /** Everything read as script, lower case, pieces separated by `\n;`. */
  readonly js: string;
  /** An <a>/<area> with a download attribute and no real target: its href is absent, empty, `#`, javascript:, blob: or data:. */
  readonly blankDownloadLink: boolean;
  /** Any <a>/<area> with a download attribute. */
  readonly downloadLink: boolean;
}

/** What a browser would run of a page (`text` in its own case, `lower` the same lower-cased), and its download links. */
function pageScript(text: string, lower: string): PageScript {
  const pieces: string[] = [];
  for (const m of lower.matchAll(SCRIPT)) {
    pieces.push(m[2] ?? '');
    const attrs = m[1] ?? '';
    // data: payloads are case-sensitive base64: read from the original text at the same offsets (latin1 lower-casing keeps lengths).
    if (attrs.includes('data:')) {
      const from = m.index + '<script'.length;
      const src = attribute(text.slice(from, from + attrs.length), 'src');
      const code = src !== undefined ? dataUrlText(src) : undefined;
      if (code !== undefined) pieces.push(code.toLowerCase());
    }
  }
  let blankDownloadLink = false;
  let downloadLink = false;
  for (const m of lower.matchAll(TAG)) {
    const attrs = m[2] ?? '';
    if (!attrs.includes('=') && !attrs.includes('download')) continue;
    const isLink = m[1] === 'a' || m[1] === 'area';
    let download = false;
    let href: string | undefined;
    for (const a of attrs.matchAll(ATTRIBUTE)) {
      const name = a[1] ?? '';
      const value = a[2] ?? a[3] ?? a[4];
      // Character references may spell upper case (`&#X41;`): lower-cased again after decoding.
      if (/^on[a-z]+$/.test(name) && value !== undefined) pieces.push(attributeText(value).toLowerCase());
      else if (value !== undefined && /^\s*javascript:/.test(value)) pieces.push(attributeText(value).toLowerCase().replace(/^\s*javascript:/, ''));
      if (isLink && name === 'download') download = true;
      if (isLink && name === 'href') href ??= attributeText(value ?? '').trim();
    }
    if (download) {
      downloadLink = true;
      if (href === undefined || href === '' || href.startsWith('#') || /^(?:javascript|blob|data):/.test(href)) blankDownloadLink = true;
    }
  }
  return { js: pieces.join('\n;'), blankDownloadLink, downloadLink };
}

/** The value of attribute `name` in a tag's attribute text, as written. */
function attribute(attrs: string, name: string): string | undefined {
  for (const a of attrs.matchAll(ATTRIBUTE)) if ((a[1] ?? '').toLowerCase() === name) return a[2] ?? a[3] ?? a[4] ?? '';
  return undefined;
}

/**
 * Whether `js` hands an object URL to `sink`: directly (`location.href = URL.createObjectURL(b)`), or through a
 * name assigned one shortly before (`u = URL.createObjectURL(b); … location.assign(u)`) and not bound again
 * in between; the distance keeps a minified bundle's reused one-letter names apart.
 */
function objectUrlReaches(js: string, sink: RegExp): boolean {
  for (const m of js.matchAll(sink)) if (m[1] !== undefined) return true;
  for (const m of js.matchAll(ASSIGNS_OBJECT_URL)) {
    const name = m[1] ?? '';
    const from = m.index + m[0].length;
    const window = js.slice(from, from + 400);
    for (const use of window.matchAll(sink)) {
      if (use.index > 300) break;
      if (use[2] === name && !bindsAgain(window.slice(0, use.index), name)) return true;
    }
  }
  return false;
}

function bindsAgain(code: string, name: string): boolean {
  const word = new RegExp(`(?<![\\w$])${name.replace(/\$/g, '\\$')}(?![\\w$])`);
  for (const b of code.matchAll(BINDS)) if ([b[1], b[2], b[3], b[4]].some((s) => s !== undefined && word.test(s))) return true;
  return false;
}

/** `text`: the page in its own case (latin1). */
function smuggles(text: string): boolean {
  const page = pageScript(text, text.toLowerCase());
  const js = page.js;
  if (SAVES_BLOB.test(js)) return true;
  if (!BUILDS.test(js)) return false;
  if (SETS_DOWNLOAD.test(js)) return true;
  if (!js.includes('createobjecturl')) return false;
  if (page.blankDownloadLink || (page.downloadLink && objectUrlReaches(js, SETS_HREF_TO))) return true;
  // Opening an object URL, in this tab or a new one, is how kits deliver a built file (a PDF or HTML blob is
  // shown, anything else saved), so window.open counts like location; a print preview or worker of fetched or
  // generated data embeds none.
  return EMBEDS_DATA.test(js) && objectUrlReaches(js, NAVIGATES);
}

const HTML_TAG = /<(?:!doctype html|html|head|body|script|iframe|meta|hta:application)[\s>]/;
const SVG_TAG = /<svg[\s>]/;

/**
 * Whether a head (MAGIC_HEAD_BYTES) is markup whose later bytes detectType reads: HTML or SVG, or text that
 * starts with a tag or comment. Only such parts need a MARKUP_TAIL_BYTES tail kept.
 */
export function wantsMarkupTail(head: Uint8Array): boolean {
  if (!looksLikeText(head)) return false;
  const start = textStart(head);
  const lower = Buffer.from(head.buffer, head.byteOffset + start, head.length - start).toString('latin1').toLowerCase();
  return lower.startsWith('<') || HTML_TAG.test(lower) || SVG_TAG.test(lower);
}

/**
 * Head and tail as one text for the script rules, or the head alone when there is no separate tail. Kits put
 * a large base64 payload first and the code after it, past the head. The bytes between are not seen: code
 * entirely there is missed, and a statement cut at the seam is read as two halves.
 */
function joinTail(head: string, tail: string | undefined): string {
  if (tail === undefined || tail === '') return head;
  const lowerHead = head.toLowerCase();
  const lowerTail = tail.toLowerCase();
  const headInScript = lowerHead.lastIndexOf('<script') > lowerHead.lastIndexOf('</script');
  const open = lowerTail.indexOf('<script');
  const close = lowerTail.indexOf('</script');
  // A tail that closes a script before opening one starts inside a script, whether or not the head ends in one.
  const tailInScript = close === -1 ? open === -1 && headInScript : open === -1 || close < open;
  const seam = headInScript ? (tailInScript ? '\n' : '\n</script>\n') : tailInScript ? '\n<script>\n' : '\n';
  return head + seam + tail;
}

function classifyMarkup(text: string, tail: string | undefined): RealType | undefined {
  const lower = text.toLowerCase();
  const lowerTail = tail?.toLowerCase();
  const isSvg = SVG_TAG.test(lower) && !/<html[\s>]/.test(lower);
  // Tags only past the head still make markup of text that starts like it (a 40 KiB comment, then the page).
  const isHtml = HTML_TAG.test(lower) || (lowerTail !== undefined && lower.startsWith('<') && HTML_TAG.test(lowerTail));
  if (!isSvg && !isHtml) return undefined;
  if (/<hta:application[\s>]/.test(lower)) return 'hta';
  if (isSvg) {
    const hasScript = (s: string): boolean => /<script[\s>]/.test(s) || /\son[a-z]+\s*=/.test(s) || /javascript:/.test(s);
    return hasScript(lower) || (lowerTail !== undefined && hasScript(lowerTail)) ? 'svg-script' : 'svg';
  }
  return smuggles(joinTail(text, tail)) ? 'html-smuggling' : 'html';
}

// TNEF's signature is the 32-bit little-endian 0x223E9F78.
const TNEF_SIGNATURE: readonly number[] = [0x78, 0x9f, 0x3e, 0x22];

/** Whether `head` starts with TNEF's signature (winmail.dat, application/ms-tnef). */
export function startsLikeTnef(head: Uint8Array): boolean {
  return at(head, 0, TNEF_SIGNATURE);
}

/** The archive format `head` starts with, from signatures in its first 512 bytes; undefined for none. */
export function archiveType(head: Uint8Array): ArchiveType | undefined {
  if (at(head, 0, [0x50, 0x4b, 0x03, 0x04]) || at(head, 0, [0x50, 0x4b, 0x05, 0x06]) || at(head, 0, [0x50, 0x4b, 0x07, 0x08])) return 'zip';
  if (at(head, 0, ascii('Rar!\x1a\x07'))) return 'rar';
  if (at(head, 0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return '7z';
  if (at(head, 0, [0x1f, 0x8b])) return 'gzip';
  if (at(head, 0, ascii('BZh')) && head.length > 3 && (head[3] ?? 0) >= 0x31 && (head[3] ?? 0) <= 0x39) return 'bzip2';
  if (at(head, 0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (at(head, 0, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (at(head, 0, ascii('MSCF\0\0\0\0'))) return 'cab';
  if (at(head, 7, ascii('**ACE**'))) return 'ace';
  if (at(head, 0, [0x60, 0xea])) return 'arj';
  if (at(head, 257, ascii('ustar'))) return 'tar';
  if (at(head, 2, ascii('-lh')) && head[6] === 0x2d) return 'lzh';
  return undefined;
}

/**
 * The real type of content from its first bytes (`head`, up to MAGIC_HEAD_BYTES) and optionally its last
 * bytes (`tail`: up to MAGIC_TAIL_BYTES for formats identified by a footer, up to MARKUP_TAIL_BYTES for markup,
 * whose script is read there too when the head is full; it should not overlap the head, or the overlap is read twice).
 */
export function detectType(head: Uint8Array, tail?: Uint8Array): RealType {
  if (isPe(head)) return 'pe';
  if (at(head, 0, [0x7f, 0x45, 0x4c, 0x46])) return 'elf';
  for (const m of MACHO_MAGICS) if (at(head, 0, m)) return 'macho';
  if (at(head, 0, [0xca, 0xfe, 0xba, 0xbe])) {
    // Mach-O universal binaries and Java classes share CAFEBABE: a fat header counts a few architectures,
    // a class file has minor/major versions there (major >= 45).
    const next = u32be(head, 4) ?? 0;
    return next > 0 && next < 40 ? 'macho' : 'java-class';
  }
  if (at(head, 0, [0x4c, 0, 0, 0, 0x01, 0x14, 0x02, 0])) return 'lnk';
  if (at(head, 0, ascii('ITSF'))) return 'chm';
  if (at(head, 0, ascii('#!')) && head.length > 2 && (head[2] === 0x2f || head[2] === 0x20)) return 'shebang';
  if (at(head, 0, ascii('REGEDIT4')) || at(head, 0, ascii('Windows Registry Editor'))) return 'reg';
  if (at(head, 0, [0xff, 0xfe, 0x57, 0, 0x69, 0, 0x6e, 0, 0x64, 0])) return 'reg'; // UTF-16 "Windows Registry…"
  if (at(head, 0, ascii('vhdxfile'))) return 'vhdx';
  if (at(head, 0, ascii('conectix'))) return 'vhd';
  if (at(head, 0, ascii('MSWIM\0\0\0'))) return 'wim';
  for (const off of [0x8001, 0x8801, 0x9001]) {
    if (at(head, off, ascii('CD001')) || at(head, off, ascii('BEA01')) || at(head, off, ascii('NSR02')) || at(head, off, ascii('NSR03'))) return 'iso';
  }
  if (tail && tail.length >= 512) {
    if (at(tail, tail.length - 512, ascii('koly'))) return 'dmg';
    if (at(tail, tail.length - 512, ascii('conectix'))) return 'vhd';
  }

  const archive = archiveType(head);
  if (archive !== undefined) return archive;
  if (startsLikeTnef(head)) return 'tnef';

  if (at(head, 0, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return 'ole';
  if (at(head, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (at(head, 0, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (at(head, 0, ascii('GIF87a')) || at(head, 0, ascii('GIF89a'))) return 'gif';
  if (at(head, 0, ascii('RIFF')) && at(head, 8, ascii('WEBP'))) return 'webp';
  if (at(head, 0, [0x49, 0x49, 0x2a, 0x00]) || at(head, 0, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  if (at(head, 0, ascii('BM')) && head.length >= 14 && u32le(head, 2) !== undefined && head[6] === 0 && head[7] === 0) return 'bmp';
  if (at(head, 0, [0, 0, 1, 0]) && head.length > 6 && (head[4] ?? 0) > 0 && head[5] === 0) return 'ico';
  // PDF readers accept "%PDF-" anywhere in the first KiB.
  const first1k = Buffer.from(head.buffer, head.byteOffset, Math.min(head.length, 1024));
  if (first1k.indexOf('%PDF-') !== -1) return 'pdf';
  if (at(head, 0, ascii('{\\rt'))) return 'rtf';

  if (!looksLikeText(head)) return 'unknown';
  const start = textStart(head);
  const text = Buffer.from(head.buffer, head.byteOffset + start, head.length - start).toString('latin1');
  if (text.slice(0, 15).toLowerCase() === 'begin:vcalendar') return 'calendar';
  const markupTail = tail !== undefined && head.length >= MAGIC_HEAD_BYTES ? Buffer.from(tail.buffer, tail.byteOffset, tail.length).toString('latin1') : undefined;
  return classifyMarkup(text, markupTail) ?? 'text';
}

export function isArchiveType(t: RealType): t is ArchiveType {
  return (ARCHIVE_TYPES as readonly string[]).includes(t);
}

const IMAGE: readonly RealType[] = ['png', 'jpeg', 'gif', 'bmp', 'webp', 'tiff', 'ico'];
const OFFICE_LEGACY: readonly RealType[] = ['ole', 'rtf', 'zip', 'html', 'text', 'unknown'];
const ZIP_BASED: readonly RealType[] = ['zip'];
const TEXT: readonly RealType[] = ['text', 'calendar', 'html', 'svg', 'shebang'];

/** What content an extension promises. Only formats we can verify; anything else makes no claim. */
const EXTENSION_CLAIMS: Readonly<Record<string, readonly RealType[]>> = {
  pdf: ['pdf'],
  jpg: IMAGE, jpeg: IMAGE, jpe: IMAGE, png: IMAGE, gif: IMAGE, bmp: IMAGE, webp: IMAGE, tif: IMAGE, tiff: IMAGE,
  txt: TEXT, csv: TEXT, log: TEXT, ics: TEXT, vcf: TEXT, md: TEXT, xml: TEXT, json: TEXT,
  doc: OFFICE_LEGACY, dot: OFFICE_LEGACY, xls: OFFICE_LEGACY, xlt: OFFICE_LEGACY, ppt: OFFICE_LEGACY, msg: ['ole'],
  docx: ZIP_BASED, docm: ZIP_BASED, dotx: ZIP_BASED, xlsx: ZIP_BASED, xlsm: ZIP_BASED, pptx: ZIP_BASED, pptm: ZIP_BASED,
  odt: ZIP_BASED, ods: ZIP_BASED, odp: ZIP_BASED, epub: ZIP_BASED, zip: ZIP_BASED,
  rtf: ['rtf'],
};

/** What content a declared MIME type promises (application/octet-stream promises nothing). */
function mimeClaim(mime: string): readonly RealType[] | undefined {
  if (mime === 'application/pdf') return ['pdf'];
  if (mime.startsWith('image/') && mime !== 'image/svg+xml') return IMAGE;
  if (mime === 'text/plain' || mime === 'text/csv' || mime === 'text/calendar') return TEXT;
  if (mime === 'application/zip' || mime === 'application/x-zip-compressed') return ZIP_BASED;
  if (mime.startsWith('application/vnd.openxmlformats-officedocument.') || mime.startsWith('application/vnd.oasis.opendocument.')) return ZIP_BASED;
  if (mime === 'application/msword' || mime === 'application/vnd.ms-excel' || mime === 'application/vnd.ms-powerpoint') return OFFICE_LEGACY;
  return undefined;
}

/** Detected types worth calling a contradiction: running code, containers that hide members, active markup. */
function isRisky(t: RealType): boolean {
  return (DANGEROUS_TYPE_LABELS as readonly string[]).includes(t) || isArchiveType(t) || t === 'html' || t === 'svg' || t === 'ole';
}

/**
 * Whether detected content contradicts the extension or declared MIME type in a way that matters: only a
 * risky real type (see isRisky) under a name or type that promises something verifiable and different.
 * Returns which claim was contradicted, for the finding's rule.
 */
export function typeContradiction(detected: RealType, extension: string, declaredMime: string): 'extension' | 'declared-type' | undefined {
  if (!isRisky(detected)) return undefined;
  const byExt = EXTENSION_CLAIMS[extension];
  if (byExt && !byExt.includes(detected)) return 'extension';
  const byMime = mimeClaim(declaredMime);
  if (byMime && !byMime.includes(detected)) return 'declared-type';
  return undefined;
}
