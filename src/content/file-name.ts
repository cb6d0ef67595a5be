// File-name normalisation and extension analysis. Names are attacker-controlled: the sender picks them to
// look harmless to the reader and to filters while the recipient's OS still treats them as executable.
// Normalisation mimics what Windows does with a name (it drops trailing dots and spaces) and removes what a
// reader cannot see (bidi controls, zero-width and other invisible characters) before matching.

export interface NormalisedName {
  /** Lower-case, NFC, invisible characters removed, whitespace around dots removed, no trailing dots/spaces. */
  readonly name: string;
  /** The raw name held Unicode bidi controls (the U+202E "RLO" trick that shows `exe.png` as `gnp.exe`). */
  readonly hadBidiControls: boolean;
  /** The raw name held other invisible or control characters. */
  readonly hadInvisible: boolean;
  /** The raw name held a run of 10 or more whitespace characters (MailScanner's hidden-extension rule). */
  readonly hadWhitespaceRun: boolean;
}

// Bidi embedding/override/isolate controls and marks.
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;
// Format characters (zero-width space/joiners, BOM, soft hyphen, word joiner…), C0/C1 controls, combining
// grapheme joiner, variation selectors, Hangul and Mongolian fillers: all render as nothing.
const INVISIBLE = /[\p{Cf}\p{Cc}\u034F\u115F\u1160\u180E\u3164\uFFA0\uFE00-\uFE0F]/gu;
// Any Unicode space, including NBSP, ideographic space, line/paragraph separators.
const SPACE = /[\s\p{Zs}\u2028\u2029]/gu;

/** Normalises a raw file name for matching (see NormalisedName). Path components are dropped. */
export function normaliseFileName(raw: string): NormalisedName {
  const hadBidiControls = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u.test(raw);
  let name = raw.normalize('NFC').replace(BIDI, '');
  const hadInvisible = /[\p{Cf}\p{Cc}\u034F\u115F\u1160\u180E\u3164\uFFA0\uFE00-\uFE0F]/u.test(name.replace(/[\t\r\n]/g, ''));
  name = name.replace(INVISIBLE, (c) => (/[\t\r\n\v\f]/.test(c) ? ' ' : ''));
  const hadWhitespaceRun = /[\s\p{Zs}]{10,}/u.test(name);
  name = name.replace(SPACE, ' ');
  // Only the last path component is the file's name (clients strip directories; zip members carry paths). A
  // trailing separator does not make the name empty: `invoice.js/` is saved as invoice.js or invoice.js_.
  name = withoutTrailing(name, '\\/').replace(/^.*[\\/]/su, '');
  // NTFS alternate data stream suffix: `x.exe::$DATA` is x.exe.
  name = name.replace(/::\$data$/iu, '');
  // Windows ignores trailing dots and spaces, and so does the user's eye for spaces around a dot.
  name = withoutTrailing(tightenDots(name).replace(/ {2,}/gu, ' '), '. ').trim();
  return { name: name.toLowerCase(), hadBidiControls, hadInvisible, hadWhitespaceRun };
}

// Trims and dot-tightening by hand, not by regex: a regex ending in `[. ]+$` or starting with ` *` retries each
// position of a long run (a name of 200,000 spaces then `x` took 14 s); names come from the sender, and TNEF's
// or a header's can be that long.

/** `s` without the characters of `chars` at its end. */
function withoutTrailing(s: string, chars: string): string {
  let end = s.length;
  while (end > 0 && chars.includes(s.charAt(end - 1))) end--;
  return s.slice(0, end);
}

/** Spaces around each dot removed: `invoice .pdf . exe` → `invoice.pdf.exe`. */
function tightenDots(s: string): string {
  if (!s.includes('.')) return s;
  const segments = s.split('.');
  return segments.map((seg, i) => (i > 0 ? seg.replace(/^ +/u, '') : seg)).map((seg, i) => (i < segments.length - 1 ? withoutTrailing(seg, ' ') : seg)).join('.');
}

/** The extensions of a normalised name, last first: `a.tar.gz` → ['gz', 'tar']; a leading dot (`.bashrc`) is not one. */
export function extensionsOf(normalisedName: string): string[] {
  const segments = normalisedName.split('.');
  if (segments.length < 2) return [];
  // The first segment is the base name even when empty (`.exe` alone is a hidden file named exe on Unix but
  // Windows still runs it as an .exe: count it as an extension when it is the only segment after the dot).
  const exts = segments.slice(1).reverse();
  return exts.filter((e) => e !== '');
}

/** The last extension, or '' when there is none. */
export function lastExtension(normalisedName: string): string {
  return extensionsOf(normalisedName)[0] ?? '';
}

// A next-to-last segment that is a real-looking extension (1–5 characters with a letter), not a number,
// a version or a date token (`report.2024.exe` is still caught as banned-extension, just not as double).
const PLAUSIBLE_INNER_EXTENSION = /^(?=.*[a-z])[a-z0-9_-]{1,5}$/u;
const DATE_LIKE = /^(?:\d+|\d+[a-z]?\)|jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun)$/u;

/**
 * `invoice.pdf.exe` → { inner: 'pdf', outer: 'exe' } when the outer extension is banned and the inner one
 * looks like a document extension meant to mislead. Undefined otherwise.
 */
export function doubleExtension(
  normalisedName: string,
  isBanned: (ext: string) => boolean,
): { inner: string; outer: string } | undefined {
  const segments = normalisedName.split('.');
  if (segments.length < 3) return undefined;
  const outer = segments[segments.length - 1] ?? '';
  const inner = segments[segments.length - 2] ?? '';
  if (outer === '' || !isBanned(outer)) return undefined;
  if (inner === outer || !PLAUSIBLE_INNER_EXTENSION.test(inner) || DATE_LIKE.test(inner)) return undefined;
  return { inner, outer };
}

// A class-id in braces, which makes Windows pick the handler by CLSID rather than by extension:
// amavisd's strict GUID form and MailScanner's loose form (25+ characters of hex digits and dashes).
const CLSID = /\{(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-h-]{25,})\}/u;

/** True when a normalised name carries a `{CLSID}` (as its extension or anywhere: Explorer honours both). */
export function hasClsid(normalisedName: string): boolean {
  return CLSID.test(normalisedName);
}
