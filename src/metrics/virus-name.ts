// ClamAV signature names follow `Platform.Category.Name-SigId-Revision`, with `.UNOFFICIAL` appended for
// signatures from third-party databases (docs.clamav.net, "Signature Names"). Only the platform and the
// category are kept for metrics, each checked against the documented lists: the full name is free text
// chosen by whoever wrote the signature and belongs in the log, never in a label.
import { BoundedLabel, OTHER } from './bounded-labels.js';

/** Platforms of the official naming scheme, plus the `Heuristics` pseudo-platform clamd uses for its own findings. */
export const VIRUS_PLATFORMS = [
  'Andr', 'Archive', 'Asp', 'Clamav', 'Doc', 'Email', 'Emf', 'Heuristics', 'Html', 'Hwp', 'Img', 'Ios', 'Java',
  'Js', 'Legacy', 'Lnk', 'Multios', 'Ole2', 'Osx', 'Pdf', 'Php', 'Ppt', 'Py', 'Rtf', 'Swf', 'Txt', 'Unix', 'Vba',
  'Vbs', 'Win', 'Xls', 'Xml',
] as const;

/**
 * Categories of the official scheme; `Broken`, `Encrypted`, `Limits` and `Structured` are the second part of
 * clamd's heuristic findings (e.g. `Heuristics.Encrypted.Zip`); `PUA` marks potentially unwanted applications.
 */
export const VIRUS_CATEGORIES = [
  'Adware', 'Backdoor', 'Broken', 'Coinminer', 'Countermeasure', 'Downloader', 'Dropper', 'Encrypted', 'Exploit',
  'File', 'Filetype', 'Infostealer', 'Ircbot', 'Joke', 'Keylogger', 'Limits', 'Loader', 'Macro', 'Malware',
  'Packed', 'Packer', 'Phishing', 'Proxy', 'PUA', 'Ransomware', 'Revoked', 'Rootkit', 'Spyware', 'Structured',
  'Test', 'Tool', 'Trojan', 'Virus', 'Worm',
] as const;

export const virusPlatformLabel = new BoundedLabel(VIRUS_PLATFORMS);
export const virusCategoryLabel = new BoundedLabel(VIRUS_CATEGORIES);

export interface VirusNameParts {
  /** One of VIRUS_PLATFORMS or `other`. */
  readonly platform: string;
  /** One of VIRUS_CATEGORIES or `other`. */
  readonly category: string;
  /** Third-party databases mark their signatures with a `.UNOFFICIAL` suffix. */
  readonly official: boolean;
}

/**
 * Splits a signature name as clamd reports it (`Win.Worm.Mydoom-1`, `Doc.Trojan.Agent-123.UNOFFICIAL`) into
 * bounded parts. `PUA.Win.Packer.Upx-1` counts as platform `Win`, category `PUA`. Anything that does not follow
 * the scheme (`Eicar-Test-Signature`, `Sanesecurity.Junk.1234.UNOFFICIAL`) yields `other` where it does not fit.
 */
export function parseVirusName(signatureName: string): VirusNameParts {
  let name = signatureName.trim();
  const official = !/\.UNOFFICIAL$/i.test(name);
  if (!official) name = name.slice(0, -'.UNOFFICIAL'.length);
  const parts = name.split('.');
  if (parts.length < 3) return { platform: OTHER, category: OTHER, official };
  if (parts[0]?.toUpperCase() === 'PUA') {
    return { platform: virusPlatformLabel.valueOf(parts[1]), category: 'PUA', official };
  }
  return { platform: virusPlatformLabel.valueOf(parts[0]), category: virusCategoryLabel.valueOf(parts[1]), official };
}
