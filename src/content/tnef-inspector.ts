// Judges the attachments inside TNEF (winmail.dat) as Outlook shows them: as attachments of the message, so
// their names go through the attachment name rules (not the archive-member ones), their content through magic
// detection, and an archive among them is listed like any attached archive. TNEF's own limits are the archive
// ones: attachments per stream, expanded bytes per message, and what cannot be read.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { type ArchiveContext, type ContainerReport, unlistable } from './archive-context.js';
import { checkContent } from './content-rules.js';
import type { Finding } from './finding.js';
import { MAGIC_HEAD_BYTES, MAGIC_TAIL_BYTES, type RealType, detectType } from './magic.js';
import { checkName } from './name-rules.js';
import { readTnef } from './tnef-reader.js';

// Judging thousands of files in one go would hold the event loop (and every other connection) for too long.
const YIELD_EVERY_ATTACHMENTS = 32;

/**
 * Lists the archive (or TNEF) `content` is, as for an attached file named `names` sitting at `path`: its
 * members are reported at `${path} > ${names[0]} > …`, its findings pushed to `findings`. Returns the member
 * count, or undefined when it is no container.
 */
export type ListContent = (content: Buffer, detected: RealType, names: readonly string[], path: string, findings: Finding[]) => Promise<number | undefined>;

/**
 * Judges the TNEF stream `buf`. `name` is its own (raw) name, `path` where it sits as a container (`part 2 >
 * winmail.dat`); attachments are reported at `${path} > ${attachment}`.
 */
export async function inspectTnef(buf: Buffer, name: string, path: string, ctx: ArchiveContext, listContent: ListContent): Promise<ContainerReport> {
  const listing = readTnef(buf, ctx.limits.maxMembers);
  const findings: Finding[] = [];
  let members = 0;
  if (listing.tooMany) findings.push({ kind: 'archive-limit', rule: 'archive-members', name, path });
  for (const [i, attachment] of listing.attachments.entries()) {
    if (ctx.cancelled()) break;
    if (i % YIELD_EVERY_ATTACHMENTS === YIELD_EVERY_ATTACHMENTS - 1) await yieldToEventLoop();
    members++;
    // An embedded message's display name is its subject (`Order at shop.com`), a name no file gets.
    const names = attachment.displayName === undefined || attachment.embeddedMessage ? attachment.fileNames : [...attachment.fileNames, attachment.displayName];
    const shown = names[0] ?? `attachment ${i + 1}`;
    const at = `${path} > ${shown}`;
    for (const n of names) findings.push(...checkName(n, ctx.names, at, false));
    for (const content of attachment.contents) {
      ctx.budget.expandedLeft -= content.length;
      if (ctx.budget.expandedLeft < 0) {
        findings.push({ kind: 'archive-limit', rule: 'archive-expanded-size', name, path });
        return { findings, members };
      }
      const detected = detectType(content.subarray(0, MAGIC_HEAD_BYTES), content.subarray(-MAGIC_TAIL_BYTES));
      findings.push(...checkContent(detected, names, '', ctx.content, at));
      members += (await listContent(content, detected, names.length > 0 ? names : [shown], path, findings)) ?? 0;
    }
  }
  if (listing.unreadable !== undefined) findings.push(...unlistable(ctx, 'archive-unreadable', name, path));
  return { findings, members };
}
