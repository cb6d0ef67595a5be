// What attachment inspection reports. Findings are facts about one part or archive member; the verdict
// (reject, tempfail, tag…) is decided elsewhere from the kind and rule.

export const FINDING_KINDS = [
  'banned-extension',
  'double-extension',
  'clsid-extension',
  'dangerous-content',
  'type-mismatch',
  'archive-banned-member',
  'archive-limit',
  'encrypted-archive',
  'malformed-mime',
] as const;

export type FindingKind = (typeof FINDING_KINDS)[number];

export interface Finding {
  readonly kind: FindingKind;
  /** Label-safe ([a-z0-9-]) name of the rule that fired, e.g. `banned-extension`, `pe`, `archive-depth`. */
  readonly rule: string;
  /** The offending file name exactly as the sender wrote it (attacker-controlled: escape before echoing). */
  readonly name: string;
  /** Normalised lower-case extension, only when it comes from the configured banned list (safe as a metric label). */
  readonly extension?: string;
  /** Where it was found, e.g. `part 2 > archive.zip > inner.exe`; holds raw names, escape before echoing. */
  readonly path: string;
}

/** What was seen of one leaf MIME part (or uuencoded or yEnc block), for logs and the `scan` command. */
export interface PartSummary {
  /** e.g. `part 1.2`, `part 2 > fwd.eml > part 1`, `part 1 > uuencoded`, `part 1 > yencoded 2`. */
  readonly path: string;
  /** Declared Content-Type, lower-case, without parameters. */
  readonly contentType: string;
  /** Every name the part's headers carry (Content-Type `name`, Content-Disposition `filename`, all forms), raw. */
  readonly names: readonly string[];
  /** Decoded content length in bytes. */
  readonly size: number;
  /** Real type from the first bytes (see magic.ts), `unknown` when nothing matched. */
  readonly detectedType: string;
  /** Number of archive members listed (zip), when the part was an archive. */
  readonly archiveMembers?: number;
}

export interface InspectionResult {
  readonly findings: Finding[];
  readonly parts: PartSummary[];
  /** Set when inspection itself failed (a bug or resource problem, not the message's fault): treat as a failure, not clean. */
  readonly error?: string;
}
