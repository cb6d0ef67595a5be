// Names in reply texts come from the attacker (virus names echo file contents, file names are chosen by the
// sender). Keep printable ASCII only and bound the length; encodeReplyCode then escapes `%`.
const MAX_NAME = 120;

export function replySafe(name: string): string {
  // NFKD splits accents off letters so "Rechnung-März.exe" still reads sensibly as "Rechnung-Marz.exe".
  const ascii = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]/g, '?')
    .replace(/"/g, "'");
  return ascii.length > MAX_NAME ? `${ascii.slice(0, MAX_NAME - 3)}...` : ascii;
}
