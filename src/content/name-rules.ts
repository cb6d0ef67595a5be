// Applies the configured name rules (banned extension, double extension, CLSID) to one raw file name.
// The same rules serve MIME part names and archive member names; only the finding kind differs.
import type { AttachmentsConfig } from './attachment-config.js';
import type { Finding } from './finding.js';
import { doubleExtension, hasClsid, lastExtension, normaliseFileName } from './file-name.js';

export interface NameRules {
  readonly banned: ReadonlySet<string>;
  readonly checkDoubleExtension: boolean;
  readonly checkClsid: boolean;
}

export function compileNameRules(config: AttachmentsConfig): NameRules {
  const allowed = new Set(config.allowedExtensions);
  return {
    banned: new Set(config.bannedExtensions.filter((e) => !allowed.has(e))),
    checkDoubleExtension: config.checkDoubleExtension,
    checkClsid: config.checkClsid,
  };
}

/**
 * Findings for one name. `inArchive` turns banned and double extensions into `archive-banned-member`
 * (with the original kind as the rule) so a policy can treat members differently from attachments.
 */
export function checkName(rawName: string, rules: NameRules, path: string, inArchive: boolean): Finding[] {
  // A NUL ends the name for whatever reads it as a C string (unzip, many mail clients: `a.exe\0.txt` is saved
  // as a.exe), while normalising drops it as invisible: both readings are checked.
  const nul = rawName.indexOf('\0');
  if (nul === -1) return checkOneName(rawName, rawName, rules, path, inArchive);
  const findings = checkOneName(rawName.slice(0, nul), rawName, rules, path, inArchive);
  for (const f of checkOneName(rawName, rawName, rules, path, inArchive)) {
    if (!findings.some((g) => g.rule === f.rule && g.kind === f.kind)) findings.push(f);
  }
  return findings;
}

/** Findings for one reading `candidate` of the name; findings report the raw name. */
function checkOneName(candidate: string, rawName: string, rules: NameRules, path: string, inArchive: boolean): Finding[] {
  const findings: Finding[] = [];
  const { name } = normaliseFileName(candidate);
  if (name === '') return findings;
  const ext = lastExtension(name);
  const isBanned = (e: string): boolean => rules.banned.has(e);
  if (ext !== '' && isBanned(ext)) {
    findings.push(
      inArchive
        ? { kind: 'archive-banned-member', rule: 'banned-extension', name: rawName, extension: ext, path }
        : { kind: 'banned-extension', rule: 'banned-extension', name: rawName, extension: ext, path },
    );
  }
  if (rules.checkDoubleExtension) {
    const dbl = doubleExtension(name, isBanned);
    if (dbl) {
      findings.push(
        inArchive
          ? { kind: 'archive-banned-member', rule: 'double-extension', name: rawName, extension: dbl.outer, path }
          : { kind: 'double-extension', rule: 'double-extension', name: rawName, extension: dbl.outer, path },
      );
    }
  }
  if (rules.checkClsid && hasClsid(name)) {
    findings.push(
      inArchive
        ? { kind: 'archive-banned-member', rule: 'clsid-extension', name: rawName, path }
        : { kind: 'clsid-extension', rule: 'clsid-extension', name: rawName, path },
    );
  }
  return findings;
}
