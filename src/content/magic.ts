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
// it to the user (`download` set from script, or in the markup with an object URL minted; navigation to an
// object URL; msSave(OrOpen)Blob, which takes a Blob and so is both). Either alone is ordinary: saved pages
// decode base64, bundles mint object URLs for workers, download links point at real files. Only <script>
// bodies are read as script, so code shown in documentation is not taken for the page's own; property access
// is matched as templates obfuscate it.

/**
 * `.name` or `["name"]`, with the whitespace and newlines templates put inside. Starts with a literal, not `\s*`:
 * a regex starting with `\s*` retries every position of a run of blanks (seconds on 40 KiB of them).
 */
const prop = (name: string): string => `(?:\\.\\s*${name}(?![\\w$])|\\[\\s*["'\`]${name}["'\`]\\s*\\])`;
const SCRIPT_BODY = /<script\b[^>]*>([\s\S]*?)(?:<\/script|$)/g;
const BUILDS = /createobjecturl|\bnew\s+(?:blob|file)\s*\(|\batob\s*\(/;
const SETS_DOWNLOAD = new RegExp(`${prop('download')}\\s*=(?!=)|setattribute["'\`\\]\\s]*\\(\\s*["'\`]download["'\`]`);
const SAVES_BLOB = /mssave(?:oropen)?blob/;
// Quoted values are stepped over whole, so "free download" in a title is no attribute; neither reaches past a
// `<`, so each tag is scanned once even when it never closes.
const DOWNLOAD_ATTRIBUTE = /<(?:a|area)\b(?:[^<>"']|"[^<>"]*"|'[^<>']*')*?\sdownload(?=[\s=>/])/;
const LOCATION = `\\blocation(?:["'\`]\\s*\\])?\\s*`;
const NAVIGATE = `(?:${LOCATION}(?:${prop('href')})?\\s*=(?!=)|${LOCATION}(?:${prop('assign')}|${prop('replace')})\\s*\\(|(?:\\bopen|\\[\\s*["'\`]open["'\`]\\s*\\])\\s*\\()\\s*`;
// Navigation to an object URL, directly or through a variable assigned one shortly before (`u = URL.createObjectURL(b); …
// location.href = u`); the distance keeps a minified bundle's reused one-letter names apart.
const NAVIGATES_TO_OBJECT_URL = new RegExp(
  `${NAVIGATE}[^;\\n]{0,40}?createobjecturl|(?<![\\w$.])([\\w$]+)\\s*=(?!=)\\s*[^;=\\n]{0,80}?createobjecturl[\\s\\S]{0,300}?${NAVIGATE}\\1(?![\\w$])`,
);

function smuggles(lower: string): boolean {
  let js = '';
  for (const m of lower.matchAll(SCRIPT_BODY)) js += `${m[1] ?? ''}\n;`;
  if (SAVES_BLOB.test(js)) return true;
  if (!BUILDS.test(js)) return false;
  if (SETS_DOWNLOAD.test(js)) return true;
  if (!js.includes('createobjecturl')) return false;
  return DOWNLOAD_ATTRIBUTE.test(lower) || NAVIGATES_TO_OBJECT_URL.test(js);
}

function classifyMarkup(lower: string): RealType | undefined {
  const isSvg = /<svg[\s>]/.test(lower) && !/<html[\s>]/.test(lower);
  const isHtml = /<(?:!doctype html|html|head|body|script|iframe|meta|hta:application)[\s>]/.test(lower);
  if (!isSvg && !isHtml) return undefined;
  if (/<hta:application[\s>]/.test(lower)) return 'hta';
  const hasScript = /<script[\s>]/.test(lower) || /\son[a-z]+\s*=/.test(lower) || /javascript:/.test(lower);
  if (isSvg) return hasScript ? 'svg-script' : 'svg';
  if (/<script[\s>]/.test(lower) && smuggles(lower)) return 'html-smuggling';
  return 'html';
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
 * bytes (`tail`, up to MAGIC_TAIL_BYTES, for formats identified by a footer).
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
  const lower = Buffer.from(head.buffer, head.byteOffset + start, head.length - start).toString('latin1').toLowerCase();
  if (lower.startsWith('begin:vcalendar')) return 'calendar';
  return classifyMarkup(lower) ?? 'text';
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
