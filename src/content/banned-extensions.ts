// The default banned-extension list. Source: ../shared/peers.md §3.4, the union of
//   - amavisd-new 2.9.1 sample amavisd.conf: active rules and the commented "long" list,
//   - MailScanner v5 filename.rules.conf / archives.filename.rules.conf deny rules,
//   - rspamd mime_types bad_extensions (which itself merges Gmail's and Outlook's blocked lists),
// minus the entries below (EXCLUDED_FROM_UNION) that no peer bans outright by name or that are ordinary
// business files where peers report false positives. Keep the list sorted; the test checks it against
// the union table.

/** Every extension of the peers' union table (peers.md §3.4), 169 entries, lower-case, no dot. */
export const PEER_UNION_EXTENSIONS: readonly string[] = [
  'ace', 'ade', 'adp', 'ani', 'app', 'arj', 'asd', 'asf', 'asp', 'aspx', 'asx',
  'b64', 'bas', 'bat', 'bhx',
  'cab', 'ceo', 'cer', 'chm', 'cmd', 'cnf', 'cnt', 'com', 'cpl', 'crt', 'csh', 'cue', 'cur',
  'diagcab', 'dll', 'docx', 'dqy',
  'emf', 'exe',
  'fdf', 'fxp',
  'gadget', 'grp',
  'hlp', 'hpj', 'hqx', 'hta', 'htc', 'htm', 'html',
  'ico', 'inf', 'ini', 'ins', 'iqy', 'iso', 'isp', 'its',
  'jar', 'jnlp', 'job', 'js', 'jse',
  'ksh',
  'lib', 'library-ms', 'lnk',
  'mad', 'maf', 'mag', 'mam', 'maq', 'mar', 'mas', 'mat', 'mau', 'mav', 'maw', 'mcf', 'mda', 'mdb', 'mde',
  'mdt', 'mdw', 'mdz', 'mht', 'mhtml', 'mim', 'msc', 'msh', 'msh1', 'msh1xml', 'msh2', 'msh2xml', 'mshxml',
  'msi', 'msp', 'mst', 'msu',
  'nsh',
  'ocx', 'ops', 'oqy', 'osd',
  'pcd', 'pdf', 'pif', 'pl', 'plg', 'pptx', 'prf', 'prg', 'printerexport', 'ps1', 'ps1xml', 'ps2', 'ps2xml',
  'psc1', 'psc2', 'psd1', 'psdm1', 'pst', 'pyc', 'pyo', 'pyw', 'pyz', 'pyzw',
  'rdp', 'reg', 'rqy',
  'scf', 'scr', 'sct', 'search-ms', 'sfx', 'shb', 'shs', 'shtm', 'shtml', 'slk', 'sys',
  'theme', 'txz',
  'url', 'uu', 'uue',
  'vb', 'vbe', 'vbp', 'vbs', 'vcs', 'vhd', 'vhdx', 'vsmacros', 'vss', 'vst', 'vsw', 'vxd',
  'webpnp', 'website', 'wim', 'wmd', 'wmf', 'wmz', 'ws', 'wsc', 'wsf', 'wsh',
  'xbap', 'xll', 'xlsx', 'xnk', 'xxe',
  'zpaq',
];

/** Left out of the default, with the reason; an operator can add any of them back in `bannedExtensions`. */
export const EXCLUDED_FROM_UNION: Readonly<Record<string, string>> = {
  docx: 'rspamd scores it only as the single member of an archive; an ordinary office file',
  xlsx: 'rspamd scores it only as the single member of an archive; an ordinary office file',
  pptx: 'rspamd scores it only as the single member of an archive; an ordinary office file',
  pdf: 'rspamd scores it only as the single member of an archive; an ordinary document',
  htm: 'rspamd weight x1 only; HTML attachments are common, dangerous HTML is caught by content (magic.ts)',
  html: 'rspamd weight x1 only; HTML attachments are common, dangerous HTML is caught by content (magic.ts)',
  shtm: 'rspamd weight x1 only; dangerous HTML is caught by content',
  shtml: 'rspamd weight x1 only; dangerous HTML is caught by content',
  mat: 'MailScanner leaves it out at top level on purpose (Matlab data files)',
  cer: 'certificates are sent on purpose; only MailScanner bans them',
  crt: 'certificates are sent on purpose; amavisd lists it only as optional',
  ico: 'icons; the old Windows exploit is long patched; not in rspamd',
  cur: 'cursors; the old Windows exploit is long patched; not in rspamd',
  emf: 'Outlook/Office inline images; amavisd optional only',
  wmf: 'Outlook/Office inline images; amavisd optional only',
  vcs: 'vCalendar 1.0: calendar invites must pass; amavisd "consider also" only',
  ini: 'plain configuration text; amavisd optional only',
  hqx: 'MailScanner explicitly allows it; amavisd WinZip-era optional list',
  b64: 'encoding container from the WinZip-era optional list; amavisd optional only',
  bhx: 'encoding container from the WinZip-era optional list; amavisd optional only',
  mim: 'encoding container from the WinZip-era optional list; amavisd optional only',
  uu: 'encoding container from the WinZip-era optional list; amavisd optional only',
  uue: 'encoding container from the WinZip-era optional list; amavisd optional only',
  xxe: 'encoding container from the WinZip-era optional list; amavisd optional only',
  asf: 'media; amavisd "consider also" only',
  asd: 'media; amavisd "consider also" only',
  wmd: 'media; amavisd "consider also" only',
  wmz: 'media; amavisd "consider also" only',
};

/**
 * Added to the peers' union, with the reason: containers and installers that attacks moved to after the peers'
 * lists were written, of the same kind as entries already banned (iso, vhd, msi).
 */
export const ADDED_TO_UNION: Readonly<Record<string, string>> = {
  img: 'a disk image Windows mounts with a double click, like iso and vhd (both banned)',
  one: 'OneNote notebook: embeds files that run on a click (the 2023 malware wave)',
  onepkg: 'OneNote package: a cab of notebooks, as one',
  appx: 'Windows app installer, like msi',
  appxbundle: 'Windows app installer bundle, like msi',
  msix: 'Windows app installer, like msi',
  msixbundle: 'Windows app installer bundle, like msi',
  appinstaller: 'Windows app installer descriptor: installs from a URL it names',
  application: 'ClickOnce deployment manifest: installs and runs an application (Outlook blocks it)',
  'appref-ms': 'ClickOnce application reference: runs an application (Outlook blocks it)',
  'appcontent-ms': 'Windows search content file, abused like settingcontent-ms (Outlook blocks it)',
  'settingcontent-ms': 'Windows settings shortcut that runs a command it names (Outlook blocks it)',
  'searchconnector-ms': 'Windows search connector: shows a remote folder of payloads as local (2024 campaigns)',
  wsb: 'Windows Sandbox configuration: runs the command it names (Outlook blocks it)',
  py: 'Python script: runs on a double click where Python is installed, like pyw (banned; Outlook blocks it)',
  udl: 'Universal Data Link: opens a connection the file names (Outlook blocks it)',
  bgi: 'BGInfo configuration: can run scripts it names (Outlook blocks it)',
};

/** The default: the peers' union minus the exclusions, plus the additions, sorted. */
export const DEFAULT_BANNED_EXTENSIONS: readonly string[] = [
  ...PEER_UNION_EXTENSIONS.filter((ext) => !Object.hasOwn(EXCLUDED_FROM_UNION, ext)),
  ...Object.keys(ADDED_TO_UNION),
].sort();

/**
 * Extensions that, as the last part of a name, make it an archive we may want to look into, and archive
 * extensions that count as "archive" for the double-extension rule. Office Open XML and ODF are zips but
 * documents, so they are not listed (rspamd does the same).
 */
export const ARCHIVE_EXTENSIONS: ReadonlySet<string> = new Set([
  '7z', 'ace', 'alz', 'arj', 'bz2', 'cab', 'egg', 'gz', 'lz', 'lzh', 'rar', 'tar', 'tgz', 'txz', 'xz', 'z', 'zip', 'zpaq', 'zst',
]);
