// Judges a RAR, 7z, CAB, ARJ, LZH, tar or gzip archive by the member names 7-Zip lists, and the tar in a .tgz
// by the names walked in it (gzipped-tar.ts): the same name rules as attachments and zip members, the
// member-count and expanded-size limits, password protection, and what cannot be listed. Names only: members
// are not extracted (clamd scans inside these formats itself). One message's archives are listed one at a
// time (ArchiveContext.listingTurns).
import { type ArchiveContext, type ArchiveReport, unlistable } from './archive-context.js';
import type { Finding } from './finding.js';
import type { RealType } from './magic.js';
import { startsLikeGzip, walkGzippedTar } from './gzipped-tar.js';
import { checkName } from './name-rules.js';
import type { SevenZipListing } from './seven-zip-listing.js';

// gzip is here for the original file name its header may carry (`invoice.exe` inside `invoice.pdf.gz`), and
// for the tar it may hold.
const LISTED_BY_SEVEN_ZIP: ReadonlySet<RealType> = new Set<RealType>(['rar', '7z', 'cab', 'arj', 'lzh', 'tar', 'gzip']);

export function isListedBySevenZip(type: RealType): boolean {
  return LISTED_BY_SEVEN_ZIP.has(type);
}

/**
 * Lists `buf` with 7-Zip, and the tar inside when `buf` is a gzip holding one. `name` is the archive's own (raw)
 * name, `path` where it sits; members are reported at `${path} > ${member}`. Rejects only when the lister is
 * too busy to start (the message is then tempfailed).
 */
export function inspectWithSevenZip(buf: Buffer, name: string, path: string, ctx: ArchiveContext): Promise<ArchiveReport> {
  return ctx.listingTurns.run(async () => {
    if (ctx.cancelled()) return report({ findings: [], names: [] });
    const { limits } = ctx;
    const listing = await ctx.lister.list(buf, limits.maxMembers, limits.listTimeout);
    if (ctx.cancelled()) return report({ findings: [], names: [] });
    const outer = judgeListing(listing, name, path, ctx);
    // Bounded by the budget, not archives.maxBytes: that limit is for archives held in memory, and the tar is
    // walked as a stream, never held.
    const content = startsLikeGzip(buf)
      ? await walkGzippedTar(buf, { maxMembers: limits.maxMembers, maxBytes: Math.max(0, ctx.budget.expandedLeft), timeoutMs: limits.listTimeout, cancelled: ctx.cancelled })
      : undefined;
    if (content?.kind === 'cancelled') return report({ findings: [], names: [] });
    if (content?.kind !== 'tar') {
      outer.findings.push(...spend(ctx, listing.expandedBytes, name, path));
      return report(outer);
    }
    // The tar's members are the gzip's content: its size is spent once, as decompressed (the trailer may lie).
    outer.findings.push(...spend(ctx, content.listing.expandedBytes, name, path));
    // tar has no encryption of its own.
    const tar = judgeListing({ ...content.listing, encrypted: false }, name, path, ctx);
    // Damage 7-Zip already saw in the gzip is reported once.
    const tarFindings = listing.complete ? tar.findings : tar.findings.filter((f) => f.rule !== 'archive-unreadable');
    return report({ findings: [...outer.findings, ...tarFindings], names: [...outer.names, ...tar.names] });
  });
}

/** The findings for one listing's names, count, password protection and completeness (not its size). */
function judgeListing(listing: Pick<SevenZipListing, 'names' | 'encrypted' | 'complete'>, name: string, path: string, ctx: ArchiveContext): { findings: Finding[]; names: string[] } {
  const { limits } = ctx;
  const findings: Finding[] = [];
  const names = listing.names.slice(0, limits.maxMembers);
  if (listing.names.length > limits.maxMembers) findings.push({ kind: 'archive-limit', rule: 'archive-members', name, path });
  for (const member of names) findings.push(...checkName(member, ctx.names, `${path} > ${member}`, true));
  if (!listing.complete) findings.push(...unlistable(ctx, 'archive-unreadable', name, path));
  if (listing.encrypted && limits.encrypted === 'reject') findings.push({ kind: 'encrypted-archive', rule: 'encrypted-archive', name, path });
  return { findings, names };
}

/** Takes `bytes` from the message's expanded-size budget; a finding when it runs out. */
function spend(ctx: ArchiveContext, bytes: number, name: string, path: string): Finding[] {
  ctx.budget.expandedLeft -= bytes;
  return ctx.budget.expandedLeft < 0 ? [{ kind: 'archive-limit', rule: 'archive-expanded-size', name, path }] : [];
}

function report(judged: { findings: Finding[]; names: string[] }): ArchiveReport {
  return { findings: judged.findings, members: judged.names.length, listed: new Set(judged.names) };
}
