// What archive inspection shares across one message's archives, what it reports, and the finding for an
// archive that cannot be listed.
import type { ArchiveLimits } from './attachment-config.js';
import type { ContentRules } from './content-rules.js';
import type { Finding } from './finding.js';
import type { NameRules } from './name-rules.js';
import type { ArchiveLister } from './seven-zip-lister.js';
import type { SerialQueue } from './serial-queue.js';

export interface ArchiveContext {
  readonly limits: ArchiveLimits;
  readonly names: NameRules;
  readonly content: ContentRules;
  /** Expanded bytes still allowed for this message (shared by every archive in it). */
  readonly budget: { expandedLeft: number };
  /** Set by abort(): stop at the next entry. */
  readonly cancelled: () => boolean;
  /** Lists the archive formats other than zip. */
  readonly lister: ArchiveLister;
  /**
   * The message's archives go to the lister one at a time: the lister's waiting limit then counts messages,
   * not archives, and one message's archives cannot crowd out other messages'.
   */
  readonly listingTurns: SerialQueue;
}

/** What listing one container (an archive, or TNEF's attachments) found. */
export interface ContainerReport {
  readonly findings: Finding[];
  /** Members listed, nested ones included. */
  readonly members: number;
}

export interface ArchiveReport extends ContainerReport {
  /** Every member name seen, nested ones included (so the local-header sweep of an outer zip skips them). */
  readonly listed: ReadonlySet<string>;
}

/** An `archive-limit` finding when `archives.unlistable` says to refuse what cannot be listed. */
export function unlistable(ctx: ArchiveContext, rule: string, name: string, path: string): Finding[] {
  return ctx.limits.unlistable === 'reject' ? [{ kind: 'archive-limit', rule, name, path }] : [];
}
