// Inspects a message's attachments while it streams in: every leaf MIME part (attached messages and
// uuencoded and yEnc blocks in text included) gets its names checked, its real type detected from its first
// bytes, and, when it is an archive, its members listed; the files inside TNEF (winmail.dat) are judged as the
// attachments Outlook shows them as. One inspector per message.
//
//   const inspector = new AttachmentInspector(config.attachments);
//   inspector.push(chunk) …                   // raw message: header lines, blank line, body, in order
//   const { findings, parts, error } = await inspector.finish();
//
// Memory: bytes pushed but not yet parsed wait in the parser's queue (each byte is held once); per part
// only the first 40 KiB and last 512 bytes are kept, plus the whole part when it is an archive or TNEF, up to
// `archives.maxBytes` (beyond it: an `archive-limit` finding when `archives.unlistable` is 'reject').
import type { AttachmentsConfig } from './attachment-config.js';
import { type ArchiveContext, unlistable } from './archive-context.js';
import { inspectZip, zipStartOffset } from './archive-inspector.js';
import { ContentCollector, type HeldContent } from './content-collector.js';
import { type ContentRules, checkContent, compileContentRules } from './content-rules.js';
import type { Finding, InspectionResult, PartSummary } from './finding.js';
import { lastExtension, normaliseFileName } from './file-name.js';
import { BODY_DANGEROUS_TYPES, MAGIC_HEAD_BYTES, type RealType, detectType } from './magic.js';
import { type LeafPart, type LeafSink, MimeLeafSplitter } from './mime-leaf-splitter.js';
import { PlainBodyWatch, plainTextBody } from './plain-text-shortcut.js';
import { namesFromHeaderLines } from './mime-names.js';
import { type NameRules, checkName, compileNameRules } from './name-rules.js';
import { type ArchiveLister, sharedArchiveLister } from './seven-zip-lister.js';
import { inspectWithSevenZip, isListedBySevenZip } from './seven-zip-inspector.js';
import { SerialQueue } from './serial-queue.js';
import { inspectTnef } from './tnef-inspector.js';
import { type DecodedSink, type EncodedBlockKind, UuencodeScanner } from './uuencode.js';

interface Shared {
  readonly config: AttachmentsConfig;
  readonly names: NameRules;
  readonly content: ContentRules;
  readonly archive: ArchiveContext;
  leafParts: number;
  aborted: boolean;
}

/**
 * What one part yielded. A part's checks may finish after later parts' (a zip is listed asynchronously), so
 * each part writes into a report taken when it starts, and the result lists the reports in that order.
 */
interface Report {
  readonly findings: Finding[];
  readonly parts: PartSummary[];
  /** An attached message's own reports: its findings follow this part's, its parts precede this one. */
  nested?: readonly Report[];
}

/** Every finding once (the first in document order), and every part summary. */
function collect(reports: readonly Report[], into: { findings: Finding[]; parts: PartSummary[] } = { findings: [], parts: [] }): { findings: Finding[]; parts: PartSummary[] } {
  for (const r of reports) {
    for (const f of r.findings) {
      if (!into.findings.some((g) => g.kind === f.kind && g.rule === f.rule && g.path === f.path && g.name === f.name)) into.findings.push(f);
    }
    if (r.nested) collect(r.nested, into);
    into.parts.push(...r.parts);
  }
  return into;
}

/** A file encoded in a text part's body (uuencode.ts), judged like an attachment. */
interface EncodedBlock {
  readonly name: string;
  readonly kind: EncodedBlockKind;
  readonly claimed: ClaimedFormat;
  readonly collector: ContentCollector;
}

const IGNORED: LeafSink = { write: () => undefined, end: () => undefined };

// Declared types that say "zip" or "TNEF": such a part is kept whole (within the archive limit) even when it
// does not start like one.
const ZIP_DECLARED_TYPES: ReadonlySet<string> = new Set(['application/zip', 'application/x-zip', 'application/x-zip-compressed', 'application/zip-compressed', 'multipart/x-zip']);
const TNEF_DECLARED_TYPES: ReadonlySet<string> = new Set(['application/ms-tnef', 'application/vnd.ms-tnef']);
// Types whose body is a whole message, walked as one: Thunderbird shows message/news exactly as message/rfc822.
const ATTACHED_MESSAGE_TYPES: ReadonlySet<string> = new Set(['message/rfc822', 'message/global', 'message/news']);

/** The container a part's declared type or names promise: the reader's tools open it as one, whatever it holds. */
type ClaimedFormat = 'zip' | 'tnef' | undefined;

function claimedFormat(declared: string, names: readonly string[]): ClaimedFormat {
  if (TNEF_DECLARED_TYPES.has(declared)) return 'tnef';
  let zip = ZIP_DECLARED_TYPES.has(declared);
  for (const raw of names) {
    const name = normaliseFileName(raw).name;
    if (name === 'winmail.dat') return 'tnef';
    zip ||= lastExtension(name) === 'zip';
  }
  return zip ? 'zip' : undefined;
}

/** Walks one message (the top one, or an attached one: message/rfc822 and its kin) with its own splitter. */
class MessageWalker {
  private readonly splitter: MimeLeafSplitter;
  private readonly shared: Shared;
  private readonly prefix: string;
  private readonly depth: number;
  private readonly pending = new Set<Promise<void>>();
  /** In document order: one per leaf part, one per splitter error. */
  readonly reports: Report[] = [];

  constructor(shared: Shared, prefix: string, depth: number) {
    this.shared = shared;
    this.prefix = prefix;
    this.depth = depth;
    this.splitter = new MimeLeafSplitter({
      maxChildNodes: shared.config.maxParts + 16,
      onLeaf: (part) => this.guarded(() => this.startLeaf(part)) ?? IGNORED,
      onError: (err) => this.newReport().findings.push({ kind: 'malformed-mime', rule: 'mime-parse', name: err.message.slice(0, 200), path: `${prefix}message` }),
      // Headers a mail client may read otherwise than this walk: what it would show was never checked.
      onAmbiguous: (partId, what) =>
        this.newReport().findings.push({ kind: 'malformed-mime', rule: 'ambiguous-structure', name: what.slice(0, 200), path: partId === undefined ? `${prefix}message` : `${prefix}part ${partId}` }),
    });
  }

  failure: Error | undefined;

  write(chunk: Buffer): void {
    if (!this.shared.aborted) this.splitter.write(chunk);
  }

  /** Resolves once the splitter has worked its queue down (it holds every byte written and not yet split). */
  drained(): Promise<void> {
    return this.shared.aborted ? Promise.resolve() : this.splitter.drained();
  }

  async end(): Promise<void> {
    this.splitter.end();
    await this.splitter.ended;
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    if (this.failure) throw this.failure;
  }

  destroy(): void {
    this.splitter.destroy();
  }

  /**
   * Our code runs inside the splitter's data event: an exception there is the inspection's failure (the
   * message is tempfailed), never an exception out of the splitter.
   */
  private guarded<T>(work: () => T): T | undefined {
    try {
      return work();
    } catch (err) {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
      return undefined;
    }
  }

  private newReport(): Report {
    const report: Report = { findings: [], parts: [] };
    this.reports.push(report);
    return report;
  }

  /** Work left after a leaf's last byte (archive listing); the walk's end waits for it. */
  private track(work: () => Promise<void>): void {
    const job = work().catch((err: unknown) => {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
    });
    this.pending.add(job);
    void job.finally(() => this.pending.delete(job));
  }

  /** A leaf's header block: its names are checked now, its content as it arrives and at its end. */
  private startLeaf(part: LeafPart): LeafSink {
    const shared = this.shared;
    const path = `${this.prefix}part ${part.partId ?? '1'}`;
    const report = this.newReport();
    shared.leafParts++;
    if (shared.leafParts > shared.config.maxParts) {
      report.findings.push({ kind: 'malformed-mime', rule: 'too-many-parts', name: '', path: `${this.prefix}message` });
      return IGNORED;
    }
    const declared = part.contentType ?? 'text/plain';
    const names = namesFromHeaderLines(part.headerLines);
    if (part.filename !== undefined && part.filename !== '' && !names.includes(part.filename)) names.push(part.filename);
    // An attached message is saved as .eml whatever its name says, and its name is often its subject
    // (`Your order at shop.com`): extension rules would judge a name no file gets. What it holds is walked.
    if (ATTACHED_MESSAGE_TYPES.has(declared)) return this.attachedMessage(report, path, names, declared);
    for (const n of names) report.findings.push(...checkName(n, shared.names, path, false));

    // A bare `text`, with no subtype, is read by Thunderbird as no type at all: a text/plain body.
    const shownAs = declared === 'text' ? 'text/plain' : declared;
    const isBodyText = names.length === 0 && (shownAs === 'text/plain' || shownAs === 'text/html') && part.disposition !== 'attachment';
    const claimed = claimedFormat(declared, names);
    const collector = new ContentCollector(shared.config.archives.maxBytes, claimed !== undefined, true);
    const uuBlocks: EncodedBlock[] = [];
    const uu = shownAs.startsWith('text/')
      ? new UuencodeScanner((name, kind): DecodedSink => {
          const claimedByName = claimedFormat('', [name]);
          const c = new ContentCollector(shared.config.archives.maxBytes, claimedByName !== undefined, true);
          uuBlocks.push({ name, kind, claimed: claimedByName, collector: c });
          return { write: (b) => c.write(b), end: () => undefined };
        })
      : undefined;
    return {
      write: (chunk) =>
        this.guarded(() => {
          collector.write(chunk);
          uu?.write(chunk);
        }),
      end: () =>
        this.guarded(() => {
          uu?.end();
          this.track(() => this.finishLeaf(report, path, declared, names, isBodyText, claimed, collector, uuBlocks));
        }),
    };
  }

  private async finishLeaf(
    report: Report,
    path: string,
    declared: string,
    names: readonly string[],
    isBodyText: boolean,
    claimed: ClaimedFormat,
    collector: ContentCollector,
    uuBlocks: readonly EncodedBlock[],
  ): Promise<void> {
    const shared = this.shared;
    const detected = detectType(collector.head(), collector.tail());
    // An unnamed text body is shown as text, so only content no text can be (executables, disk images) and HTML
    // that hands the browser a file is judged there: a `#!` first line or an ordinary script is ordinary mail.
    if (!isBodyText || BODY_DANGEROUS_TYPES.has(detected)) report.findings.push(...checkContent(detected, names, declared, shared.content, path));
    const members = await this.inspectContainer(report.findings, collector, detected, claimed, names, path, 1);
    collector.release();
    report.parts.push({ path, contentType: declared, names: [...names], size: collector.size, detectedType: detected, ...(members !== undefined ? { archiveMembers: members } : {}) });

    for (const [i, block] of uuBlocks.entries()) {
      const uuPath = `${path} > ${block.kind === 'yenc' ? 'yencoded' : 'uuencoded'}${uuBlocks.length > 1 ? ` ${i + 1}` : ''}`;
      report.findings.push(...checkName(block.name, shared.names, uuPath, false));
      const uuType = detectType(block.collector.head(), block.collector.tail());
      report.findings.push(...checkContent(uuType, [block.name], '', shared.content, uuPath));
      const uuMembers = await this.inspectContainer(report.findings, block.collector, uuType, block.claimed, [block.name], uuPath, 1);
      block.collector.release();
      report.parts.push({ path: uuPath, contentType: block.kind === 'yenc' ? 'application/x-yencode' : 'application/x-uuencode', names: [block.name], size: block.collector.size, detectedType: uuType, ...(uuMembers !== undefined ? { archiveMembers: uuMembers } : {}) });
    }
  }

  /**
   * Lists a container: a zip, a zip at the end of content named or declared a zip (unzip and 7-Zip open a zip
   * behind other bytes, as in a self-extractor), a format 7-Zip lists, or TNEF, whose files are judged and
   * listed here in turn. Findings go to `findings`; returns the member count, or undefined when there is
   * nothing to list. `claimed`: the format the content's names or declared type promise. `depth`: 1 for a
   * part, one more for each TNEF around the content.
   */
  private async inspectContainer(
    findings: Finding[],
    held: HeldContent,
    detected: RealType,
    claimed: ClaimedFormat,
    names: readonly string[],
    path: string,
    depth: number,
  ): Promise<number | undefined> {
    const whole = held.wholeArchive();
    const shared = this.shared;
    const name = names[0] ?? 'archive';
    if (detected !== 'zip' && detected !== 'tnef' && !isListedBySevenZip(detected)) {
      // A TNEF reader finds no attachments behind other bytes: only a claimed zip is looked for there.
      const start = whole !== undefined && claimed !== 'tnef' ? zipStartOffset(whole) : undefined;
      if (whole === undefined || start === undefined) {
        // A part named or declared a zip or TNEF with no such thing in it (or one we could not hold) is opened
        // as one by the reader's tools all the same, with whatever they make of it: what they would show was
        // never listed. An empty part holds nothing.
        if (claimed !== undefined && held.size > 0) findings.push(...unlistable(shared.archive, held.tooLarge ? 'archive-too-large' : 'archive-unreadable', name, path));
        return undefined;
      }
      const listing = await inspectZip(whole.subarray(start), name, `${path} > ${name}`, 1, shared.archive);
      findings.push(...listing.findings);
      return listing.members;
    }
    if (!whole) {
      if (held.tooLarge && shared.config.archives.unlistable === 'reject') findings.push({ kind: 'archive-limit', rule: 'archive-too-large', name, path });
      return undefined;
    }
    if (detected === 'tnef') {
      // TNEF holds TNEF when Outlook forwards a message as an attachment (an embedded message): a chain of
      // forwards is bounded like attached MIME messages, not like archives in archives.
      if (depth > shared.config.maxMessageDepth) {
        findings.push({ kind: 'archive-limit', rule: 'message-depth', name, path });
        return undefined;
      }
      const listing = await inspectTnef(whole, name, `${path} > ${name}`, shared.archive, (content, type, innerNames, innerPath, into) =>
        this.inspectContainer(into, { size: content.length, tooLarge: false, wholeArchive: () => content }, type, claimedFormat('', innerNames), innerNames, innerPath, depth + 1),
      );
      findings.push(...listing.findings);
      return listing.members;
    }
    const listing =
      detected === 'zip' ? await inspectZip(whole, name, `${path} > ${name}`, 1, shared.archive) : await inspectWithSevenZip(whole, name, `${path} > ${name}`, shared.archive);
    findings.push(...listing.findings);
    return listing.members;
  }

  /** An attached message is walked by a walker of its own, one level deeper, while it arrives. */
  private attachedMessage(report: Report, path: string, names: readonly string[], contentType: string): LeafSink {
    const shared = this.shared;
    if (this.depth >= shared.config.maxMessageDepth) {
      report.findings.push({ kind: 'archive-limit', rule: 'message-depth', name: names[0] ?? '', path });
      return IGNORED;
    }
    const child = new MessageWalker(shared, `${path} > ${names[0] ?? 'message'} > `, this.depth + 1);
    report.nested = child.reports;
    let size = 0;
    return {
      write: (chunk) => {
        size += chunk.length;
        child.write(chunk);
      },
      end: () =>
        this.track(async () => {
          try {
            await child.end();
          } finally {
            child.destroy();
          }
          report.parts.push({ path, contentType, names: [...names], size, detectedType: 'message' });
        }),
    };
  }
}

// The header block is held until the blank line to decide between the shortcut and the full walk.
const MAX_HEADER_BLOCK = 256 * 1024;
// The shortcut keeps the message so far, to hand it to the full walk if the body asks for it.
const MAX_SHORTCUT_BYTES = 1024 * 1024;

// One config serves every message until a reload replaces it: its rules are compiled once.
const rulesByConfig = new WeakMap<AttachmentsConfig, { readonly names: NameRules; readonly content: ContentRules }>();
function compiledRules(config: AttachmentsConfig): { readonly names: NameRules; readonly content: ContentRules } {
  let rules = rulesByConfig.get(config);
  if (rules === undefined) {
    rules = { names: compileNameRules(config), content: compileContentRules(config) };
    rulesByConfig.set(config, rules);
  }
  return rules;
}

export class AttachmentInspector {
  private readonly shared: Shared;
  private root: MessageWalker | undefined;
  private finished = false;
  /** Bytes held until the walk or the shortcut is chosen, and while the shortcut runs. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The last bytes of the header block so far, for a blank line cut between two pushes. */
  private lastHeaderBytes: Buffer = Buffer.alloc(0);
  private mode: 'headers' | 'shortcut' | 'walk';
  private shortcut: { readonly contentType: string; readonly body: PlainBodyWatch; readonly magic: ContentCollector } | undefined;

  /** `lister`: lists the archive formats other than zip (the process's shared 7-Zip worker by default). */
  constructor(config: AttachmentsConfig, lister: ArchiveLister = sharedArchiveLister) {
    const { names, content } = compiledRules(config);
    this.shared = {
      config,
      names,
      content,
      archive: {
        limits: config.archives,
        names,
        content,
        budget: { expandedLeft: config.archives.maxExpandedBytes },
        cancelled: () => this.shared.aborted,
        lister,
        listingTurns: new SerialQueue(),
      },
      leafParts: 0,
      aborted: false,
    };
    this.mode = config.enabled ? 'headers' : 'walk';
  }

  /** True when the message was inspected without the MIME walk (one unnamed text body). */
  get usedShortcut(): boolean {
    return this.mode === 'shortcut';
  }

  /** Raw message bytes, in order. */
  push(chunk: Buffer): void {
    if (this.finished || this.shared.aborted || !this.shared.config.enabled) return;
    if (this.mode === 'walk') {
      this.walker().write(chunk);
      return;
    }
    this.hold(chunk);
    if (this.mode === 'headers') {
      // Only the new bytes (and the 3 before them) can complete the blank line: no re-scan per header.
      const seen = this.heldBytes - chunk.length;
      const from = Math.max(0, seen - 3);
      const window = Buffer.concat([this.lastHeaderBytes, chunk]);
      this.lastHeaderBytes = window.subarray(-3);
      const hit = headerEnd(window, from === 0 && seen === 0);
      if (hit === undefined) {
        if (this.heldBytes > MAX_HEADER_BLOCK) this.startWalk();
        return;
      }
      const all = Buffer.concat(this.held);
      this.held = [all];
      const end = { block: from + hit.block, body: from + hit.body };
      const plain = plainTextBody(all.toString('latin1', 0, end.block));
      if (!plain) {
        this.startWalk();
        return;
      }
      this.mode = 'shortcut';
      this.shortcut = { contentType: plain.contentType, body: new PlainBodyWatch(), magic: new ContentCollector(MAGIC_HEAD_BYTES, false, true) };
      this.watchBody(all.subarray(end.body));
    } else {
      this.watchBody(chunk);
    }
  }

  /**
   * Resolves when the inspector can take more without holding more than its parser's buffer; the milter
   * waits for it so a fast MTA cannot pile a whole message up in memory ahead of the parser.
   */
  ready(): Promise<void> {
    return this.mode === 'walk' && this.root ? this.root.drained() : Promise.resolve();
  }

  private watchBody(bytes: Buffer): void {
    const sc = this.shortcut as NonNullable<AttachmentInspector['shortcut']>;
    sc.body.write(bytes);
    sc.magic.write(bytes);
    if (sc.body.needsFullWalk || this.heldBytes > MAX_SHORTCUT_BYTES) this.startWalk();
  }

  private hold(chunk: Buffer): void {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
  }

  /** Hands everything held so far to the MIME walk, which takes the rest of the message directly. */
  private startWalk(): void {
    const walker = this.walker();
    this.mode = 'walk';
    this.shortcut?.magic.release();
    this.shortcut = undefined;
    for (const c of this.held) walker.write(c);
    this.held = [];
    this.heldBytes = 0;
  }

  private walker(): MessageWalker {
    this.root ??= new MessageWalker(this.shared, '', 1);
    return this.root;
  }

  /** Ends the message and resolves once every part has been inspected. */
  async finish(): Promise<InspectionResult> {
    if (this.finished) throw new Error('AttachmentInspector.finish() called twice');
    this.finished = true;
    if (!this.shared.config.enabled) return { findings: [], parts: [] };
    if (this.shared.aborted) return { findings: [], parts: [], error: 'inspection aborted' };
    // A message that ended inside its header block has no body to walk, but the walk still judges it.
    if (this.mode === 'headers') this.startWalk();
    if (this.mode === 'shortcut') {
      const sc = this.shortcut as NonNullable<AttachmentInspector['shortcut']>;
      const detectedType = detectType(sc.magic.head(), sc.magic.tail());
      sc.magic.release();
      this.held = [];
      const findings = BODY_DANGEROUS_TYPES.has(detectedType) ? checkContent(detectedType, [], sc.contentType, this.shared.content, 'part 1') : [];
      return { findings, parts: [{ path: 'part 1', contentType: sc.contentType, names: [], size: sc.body.size, detectedType }] };
    }
    const root = this.walker();
    try {
      await root.end();
      if (this.shared.aborted) return { findings: [], parts: [], error: 'inspection aborted' };
      return collect(root.reports);
    } catch (err) {
      return { ...collect(root.reports), error: `attachment inspection failed: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      // Dropped, not only destroyed: the result outlives the parser while the milter waits for clamd, and
      // nothing needs the walk's objects after this.
      root.destroy();
      this.root = undefined;
    }
  }

  /** Stops inspection and releases buffers (message aborted by the MTA). */
  abort(): void {
    this.shared.aborted = true;
    this.held = [];
    this.shortcut?.magic.release();
    this.root?.destroy();
  }
}

/**
 * Where the header block ends in `buf`: the blank line (CRLF CRLF, or LF LF from a sloppy client); `atStart`
 * when `buf` begins the message, where a leading empty line means there are no headers at all.
 */
function headerEnd(buf: Buffer, atStart: boolean): { block: number; body: number } | undefined {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { block: crlf, body: crlf + 4 };
  if (lf >= 0) return { block: lf, body: lf + 2 };
  if (atStart && buf.length > 0 && (buf[0] === 0x0d || buf[0] === 0x0a)) return { block: 0, body: buf[0] === 0x0d ? 2 : 1 };
  return undefined;
}

/** One-shot inspection of a whole message (the offline `scan` command). */
export async function inspectMessage(raw: Buffer, config: AttachmentsConfig): Promise<InspectionResult> {
  const inspector = new AttachmentInspector(config);
  // Fed in slices like the milter does, so both paths behave the same.
  const slice = 64 * 1024;
  for (let i = 0; i < raw.length; i += slice) inspector.push(raw.subarray(i, i + slice));
  return inspector.finish();
}
