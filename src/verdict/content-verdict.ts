// End-of-message findings → one verdict. A definite finding (virus, banned file) decides even when another
// check failed; otherwise any failure tempfails: mail that could not be checked is never accepted.
import type { SmtpReply } from '@postfix-milter-ts/protocol';
import type { ActionsConfig, FindingAction } from './actions-config.js';
import { replySafe } from './reply-text.js';

export interface AttachmentFindingLike {
  readonly kind: string;
  readonly rule: string;
  readonly name: string;
  readonly extension?: string;
}

export interface ContentChecks {
  /** Signature name when clamd found something. */
  readonly virus?: string | undefined;
  readonly attachments: readonly AttachmentFindingLike[];
  /** Why a check could not be completed (scanner down, timeout, parse error…). */
  readonly failures: readonly { readonly check: 'virus' | 'attachments'; readonly reason: string; readonly detail: string }[];
  /** The message was larger than the scan limit, so it was not scanned. */
  readonly oversize: boolean;
}

/** Label-safe outcome for metrics and logs. */
export type VerdictLabel = 'accepted' | 'tagged' | 'rejected' | 'tempfailed' | 'discarded' | 'quarantined';

export interface ContentVerdict {
  readonly action: 'accept' | 'reject' | 'tempfail' | 'discard' | 'quarantine';
  readonly label: VerdictLabel;
  readonly reply?: SmtpReply;
  /** Headers to add to a message that is delivered or held. */
  readonly addHeaders: readonly (readonly [name: string, value: string])[];
  readonly quarantineReason?: string;
  /** Human-readable reasons for the log line (virus names, file names, rules, failures). */
  readonly reasons: readonly string[];
}

// Tag headers added for attachments; past these, one more header counts the rest (a zip of 1,500 .exe files).
const MAX_TAG_ATTACHMENT_HEADERS = 10;
// Which of two actions wins when findings disagree: the one that keeps the mail out most firmly.
const STRENGTH: Record<FindingAction, number> = { reject: 5, discard: 4, quarantine: 3, tempfail: 2, tag: 1 };

interface Decided {
  readonly action: FindingAction;
  readonly what: string;
  /** What the finding is about (a file name, or the virus): one file with two findings is one thing. */
  readonly subject: string;
}

export function decideContentVerdict(checks: ContentChecks, actions: ActionsConfig): ContentVerdict {
  const definite: Decided[] = [];
  if (checks.virus !== undefined) definite.push({ action: actions.virus, what: `virus ${replySafe(checks.virus)}`, subject: `virus ${checks.virus}` });
  for (const f of checks.attachments) {
    definite.push({ action: actions.byRule[f.rule] ?? actions.attachment, what: describeAttachment(f), subject: `file ${f.name}` });
  }
  const reasons = [
    ...(checks.virus !== undefined ? [`virus: ${checks.virus}`] : []),
    ...checks.attachments.map((f) => `${f.rule}: ${f.name}`),
    ...checks.failures.map((f) => `${f.check} check failed (${f.reason}): ${f.detail}`),
    ...(checks.oversize ? ['oversize: not scanned'] : []),
  ];
  const strongest = definite.reduce<Decided | undefined>((a, b) => (a === undefined || STRENGTH[b.action] > STRENGTH[a.action] ? b : a), undefined);

  // A refusal that keeps the message out stands whatever else failed.
  if (strongest && (strongest.action === 'reject' || strongest.action === 'discard' || strongest.action === 'quarantine')) {
    return refuse(strongest, definite, reasons);
  }
  if (checks.failures.length > 0) {
    return {
      action: 'tempfail',
      label: 'tempfailed',
      reply: { code: 451, xcode: '4.7.1', text: 'Message could not be checked for viruses and dangerous content, try again later' },
      addHeaders: [],
      reasons,
    };
  }
  if (checks.oversize) {
    if (actions.oversize === 'reject') {
      return { action: 'reject', label: 'rejected', reply: { code: 552, xcode: '5.3.4', text: 'Message too large to be checked for viruses' }, addHeaders: [], reasons };
    }
    if (actions.oversize === 'tempfail') {
      return { action: 'tempfail', label: 'tempfailed', reply: { code: 452, xcode: '4.3.4', text: 'Message too large to be checked now, try again later' }, addHeaders: [], reasons };
    }
  }
  if (strongest?.action === 'tempfail') return refuse(strongest, definite, reasons);
  if (strongest?.action === 'tag') {
    const headers: (readonly [string, string])[] = [];
    if (checks.virus !== undefined) headers.push([`${actions.tagHeaderPrefix}-Virus`, replySafe(checks.virus)]);
    // One header per finding up to a bound: a zip of 1,500 executables must not add 1,500 headers.
    const shown = checks.attachments.slice(0, MAX_TAG_ATTACHMENT_HEADERS);
    for (const f of shown) headers.push([`${actions.tagHeaderPrefix}-Attachment`, `${f.rule}: ${replySafe(f.name)}`]);
    const more = checks.attachments.length - shown.length;
    if (more > 0) headers.push([`${actions.tagHeaderPrefix}-Attachment`, `and ${more} more`]);
    return { action: 'accept', label: 'tagged', addHeaders: headers, reasons };
  }
  const headers: (readonly [string, string])[] = [];
  if (checks.oversize) headers.push([actions.scannedHeader.name, 'not scanned: message larger than the scan limit']);
  else if (actions.scannedHeader.enabled) headers.push([actions.scannedHeader.name, actions.scannedHeader.value]);
  return { action: 'accept', label: 'accepted', addHeaders: headers, reasons };
}

/**
 * The verdict for a local submission (Postfix's non_smtpd_milters). There is no SMTP client to hear a rejection:
 * Postfix bounces the message instead, to a sender anyone on the host can forge with `sendmail -f`, and the
 * bounce carries the refused content. So a rejection is held in Postfix's hold queue; nothing is mailed.
 */
export function holdInsteadOfBounce(verdict: ContentVerdict): ContentVerdict {
  if (verdict.action !== 'reject') return verdict;
  const refusal = verdict.reply ? `${verdict.reply.code} ${verdict.reply.text}` : 'refused';
  return {
    action: 'quarantine',
    label: 'quarantined',
    addHeaders: [],
    quarantineReason: `local submission held, not bounced: ${refusal}`,
    reasons: [...verdict.reasons, 'local submission: held instead of bounced'],
  };
}

function describeAttachment(f: AttachmentFindingLike): string {
  const ext = f.extension ? ` (${f.rule} .${f.extension})` : ` (${f.rule})`;
  // Findings about the message's structure (too many parts, nesting) or an unnamed part have no file name to show.
  if (f.kind === 'malformed-mime') return `message structure${ext}`;
  if (f.name === '') return `unnamed attachment${ext}`;
  return `attachment "${replySafe(f.name)}"${ext}`;
}

function refuse(strongest: Decided, definite: readonly Decided[], reasons: readonly string[]): ContentVerdict {
  // One phrase per offending file or virus, the first finding about it naming it.
  const bySubject = new Map<string, string>();
  for (const d of definite) if (d.action === strongest.action && !bySubject.has(d.subject)) bySubject.set(d.subject, d.what);
  const what = [...bySubject.values()];
  const summary = what.length > 1 ? `${what[0]} and ${what.length - 1} more` : (what[0] ?? 'dangerous content');
  switch (strongest.action) {
    case 'reject':
      return { action: 'reject', label: 'rejected', reply: { code: 554, xcode: '5.7.0', text: `Message refused: ${summary}` }, addHeaders: [], reasons };
    case 'tempfail':
      return { action: 'tempfail', label: 'tempfailed', reply: { code: 451, xcode: '4.7.0', text: `Message held back: ${summary}, try again later` }, addHeaders: [], reasons };
    case 'discard':
      return { action: 'discard', label: 'discarded', addHeaders: [], reasons };
    case 'quarantine':
      return { action: 'quarantine', label: 'quarantined', addHeaders: [], quarantineReason: summary, reasons };
    case 'tag':
      throw new Error('unreachable: tag is not a refusal');
  }
}
