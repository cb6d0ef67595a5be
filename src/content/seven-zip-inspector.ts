// Judges a RAR, 7z, CAB, ARJ, LZH, tar or gzip archive by the member names 7-Zip lists: the same name rules as
// attachments and zip members, the member-count and expanded-size limits, password protection, and what
// cannot be listed. Names only: members are not extracted (clamd scans inside these formats itself).
import { type ArchiveContext, type ArchiveReport, unlistable } from './archive-context.js';
import type { Finding } from './finding.js';
import type { RealType } from './magic.js';
import { checkName } from './name-rules.js';

// gzip is here for the original file name its header may carry (`invoice.exe` inside `invoice.pdf.gz`).
const LISTED_BY_SEVEN_ZIP: ReadonlySet<RealType> = new Set<RealType>(['rar', '7z', 'cab', 'arj', 'lzh', 'tar', 'gzip']);

export function isListedBySevenZip(type: RealType): boolean {
  return LISTED_BY_SEVEN_ZIP.has(type);
}

/**
 * Lists `buf` with 7-Zip. `name` is the archive's own (raw) name, `path` where it sits; members are reported at
 * `${path} > ${member}`. Rejects only when the lister is too busy to start (the message is then tempfailed).
 */
export async function inspectWithSevenZip(buf: Buffer, name: string, path: string, ctx: ArchiveContext): Promise<ArchiveReport> {
  const { limits } = ctx;
  const listing = await ctx.lister.list(buf, limits.maxMembers, limits.listTimeout);
  const findings: Finding[] = [];
  const names = listing.names.slice(0, limits.maxMembers);
  if (listing.names.length > limits.maxMembers) findings.push({ kind: 'archive-limit', rule: 'archive-members', name, path });
  for (const member of names) findings.push(...checkName(member, ctx.names, `${path} > ${member}`, true));
  ctx.budget.expandedLeft -= listing.expandedBytes;
  if (ctx.budget.expandedLeft < 0) findings.push({ kind: 'archive-limit', rule: 'archive-expanded-size', name, path });
  if (!listing.complete) findings.push(...unlistable(ctx, 'archive-unreadable', name, path));
  if (listing.encrypted && limits.encrypted === 'reject') findings.push({ kind: 'encrypted-archive', rule: 'encrypted-archive', name, path });
  return { findings, members: names.length, listed: new Set(names) };
}
