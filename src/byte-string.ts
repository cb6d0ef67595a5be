// The milter protocol and raw MIME lines reach us as byte strings: one character per byte (latin1). Names and
// addresses in them are UTF-8 more often than not (SMTPUTF8, modern mail clients), and are shown and matched so.
// ignoreBOM keeps a leading BOM as a character: dropped silently, `\uFEFFadmin` would read as `admin`.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * `raw` (one character per byte) read as UTF-8: itself when it is ASCII, undefined when it holds a character
 * above 0xFF (not a byte string) or bytes that are not valid UTF-8.
 */
export function utf8FromByteString(raw: string): string | undefined {
  if (!/[^\x00-\x7f]/.test(raw)) return raw;
  if (/[^\x00-\xff]/.test(raw)) return undefined;
  try {
    return UTF8.decode(Buffer.from(raw, 'latin1'));
  } catch {
    return undefined;
  }
}
