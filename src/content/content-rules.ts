// Findings from a piece of content's real type: dangerous types, banned declared MIME types, and risky
// contradictions between the real type and the name or declared type.
import type { AttachmentsConfig } from './attachment-config.js';
import type { Finding } from './finding.js';
import { lastExtension, normaliseFileName } from './file-name.js';
import { type RealType, typeContradiction } from './magic.js';

export interface ContentRules {
  readonly dangerous: ReadonlySet<string>;
  readonly bannedContentTypes: ReadonlySet<string>;
  readonly checkTypeMismatch: boolean;
}

export function compileContentRules(config: AttachmentsConfig): ContentRules {
  return {
    dangerous: new Set(config.dangerousTypes),
    bannedContentTypes: new Set(config.bannedContentTypes),
    checkTypeMismatch: config.checkTypeMismatch,
  };
}

/**
 * `names` are the raw names of the content (may be empty), `declaredType` its Content-Type ('' for archive
 * members, which have none). The first name is reported; contradictions are checked against every name.
 */
export function checkContent(detected: RealType, names: readonly string[], declaredType: string, rules: ContentRules, path: string): Finding[] {
  const findings: Finding[] = [];
  const shownName = names[0] ?? '';
  if (rules.dangerous.has(detected)) findings.push({ kind: 'dangerous-content', rule: detected, name: shownName, path });
  if (declaredType !== '' && rules.bannedContentTypes.has(declaredType)) {
    findings.push({ kind: 'dangerous-content', rule: 'declared-type', name: shownName, path });
  }
  if (rules.checkTypeMismatch) {
    const exts = names.length > 0 ? names.map((n) => lastExtension(normaliseFileName(n).name)) : [''];
    for (const [i, ext] of exts.entries()) {
      const contradiction = typeContradiction(detected, ext, declaredType);
      if (contradiction) {
        findings.push({ kind: 'type-mismatch', rule: `${detected}-as-${contradiction}`, name: names[i] ?? '', path });
        break;
      }
    }
  }
  return findings;
}
