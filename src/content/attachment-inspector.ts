// Inspects a message's attachments while it streams in: every leaf MIME part (attached messages and
// uuencoded blocks in text included) gets its names checked, its real type detected from its first
// bytes, and, when it is a zip, its members listed. One inspector per message.
//
//   const inspector = new AttachmentInspector(config.attachments);
//   inspector.push(chunk) …                   // raw message: header lines, blank line, body, in order
//   const { findings, parts, error } = await inspector.finish();
//
// Memory: bytes pushed but not yet parsed wait in the parser's queue (each byte is held once); per part
// only the first 40 KiB and last 512 bytes are kept, plus the whole part when it is a zip, up to
// `archives.maxBytes` (beyond it: an `archive-limit` finding when `archives.unlistable` is 'reject').
import type { AttachmentStream, MessageText } from 'mailparser';
import type { AttachmentsConfig } from './attachment-config.js';
import { type ArchiveContext, inspectZip } from './archive-inspector.js';
import { ContentCollector } from './content-collector.js';
import { type ContentRules, checkContent, compileContentRules } from './content-rules.js';
import type { Finding, InspectionResult, PartSummary } from './finding.js';
import { MAGIC_HEAD_BYTES, type RealType, detectType } from './magic.js';
import { InspectingMailParser } from './mail-parser-with-raw-headers.js';
import { PlainBodyWatch, plainTextBody } from './plain-text-shortcut.js';
import { namesFromHeaderLines } from './mime-names.js';
import { type NameRules, checkName, compileNameRules } from './name-rules.js';
import { type DecodedSink, UuencodeScanner } from './uuencode.js';

interface Shared {
  readonly config: AttachmentsConfig;
  readonly names: NameRules;
  readonly content: ContentRules;
  readonly archive: ArchiveContext;
  readonly findings: Finding[];
  readonly parts: PartSummary[];
  leafParts: number;
  aborted: boolean;
}

function structured(value: unknown): { value: string; params: Record<string, string> } | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as { value?: unknown; params?: unknown };
  if (typeof v.value !== 'string') return undefined;
  const params: Record<string, string> = {};
  if (v.params !== null && typeof v.params === 'object') {
    for (const [k, p] of Object.entries(v.params)) if (typeof p === 'string') params[k] = p;
  }
  return { value: v.value, params };
}

function addFinding(shared: Shared, f: Finding): void {
  const dup = shared.findings.some((g) => g.kind === f.kind && g.rule === f.rule && g.path === f.path && g.name === f.name);
  if (!dup) shared.findings.push(f);
}

/** Walks one message (the top one, or one attached as message/rfc822) with its own parser. */
class MessageWalker {
  private readonly parser: InspectingMailParser;
  private readonly shared: Shared;
  private readonly prefix: string;
  private readonly depth: number;
  private readonly pending = new Set<Promise<void>>();
  private readonly ended: Promise<void>;

  constructor(shared: Shared, prefix: string, depth: number) {
    this.shared = shared;
    this.prefix = prefix;
    this.depth = depth;
    // ignoreEmbedded: every message/rfc822 part comes to us as a stream (even base64-encoded ones, which
    // mailsplit never descends into), and we walk it with a nested walker under our own depth limit.
    this.parser = new InspectingMailParser({ ignoreEmbedded: true, checksumAlgo: false, skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true, maxChildNodes: shared.config.maxParts + 16 });
    this.ended = new Promise((resolve) => {
      this.parser.on('end', () => resolve());
      this.parser.on('close', () => resolve());
      this.parser.on('error', (err: unknown) => {
        addFinding(this.shared, { kind: 'malformed-mime', rule: 'mime-parse', name: err instanceof Error ? err.message.slice(0, 200) : 'parse error', path: `${this.prefix}message` });
        resolve();
      });
    });
    this.parser.on('data', (data: AttachmentStream | MessageText) => {
      if (data.type !== 'attachment') return;
      const job = this.handle(data).catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      });
      this.pending.add(job);
      void job.finally(() => this.pending.delete(job));
    });
  }

  failure: Error | undefined;

  write(chunk: Buffer): void {
    if (!this.shared.aborted) this.parser.write(chunk);
  }

  /** Resolves once the parser has worked its queue down (it holds every byte written and not yet parsed). */
  drained(): Promise<void> {
    if (!this.parser.writableNeedDrain || this.shared.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.parser.off('drain', done);
        this.parser.off('close', done);
        resolve();
      };
      this.parser.once('drain', done);
      this.parser.once('close', done);
    });
  }

  async end(): Promise<void> {
    this.parser.end();
    await this.ended;
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    if (this.failure) throw this.failure;
  }

  destroy(): void {
    this.parser.destroy();
  }

  private async handle(att: AttachmentStream): Promise<void> {
    const shared = this.shared;
    const path = `${this.prefix}part ${att.partId ?? '1'}`;
    try {
      shared.leafParts++;
      if (shared.leafParts > shared.config.maxParts) {
        addFinding(shared, { kind: 'malformed-mime', rule: 'too-many-parts', name: '', path: `${this.prefix}message` });
        await drain(att);
        return;
      }
      const ct = structured(att.headers.get('content-type'));
      const cd = structured(att.headers.get('content-disposition'));
      // The declared type as sent (att.contentType replaces application/octet-stream by a guess from the name).
      const declared = (ct?.value ?? 'text/plain').toLowerCase();
      const names: string[] = [];
      const addName = (n: string | undefined): void => {
        if (n !== undefined && n !== '' && !names.includes(n)) names.push(n);
      };
      for (const n of namesFromHeaderLines(this.parser.rawHeaders.get(att.headers) ?? [])) addName(n);
      addName(cd?.params['filename']);
      addName(ct?.params['name']);
      addName(att.filename);
      for (const n of names) for (const f of checkName(n, shared.names, path, false)) addFinding(shared, f);

      if (declared === 'message/rfc822' || declared === 'message/global') {
        await this.walkAttachedMessage(att, path, names);
        return;
      }

      const disposition = (cd?.value ?? '').toLowerCase();
      const isBodyText = names.length === 0 && (declared === 'text/plain' || declared === 'text/html') && disposition !== 'attachment';
      const collector = new ContentCollector(shared.config.archives.maxBytes);
      const uuBlocks: { name: string; collector: ContentCollector }[] = [];
      const uu = declared.startsWith('text/')
        ? new UuencodeScanner((name): DecodedSink => {
            const c = new ContentCollector(shared.config.archives.maxBytes);
            uuBlocks.push({ name, collector: c });
            return { write: (b) => c.write(b), end: () => undefined };
          })
        : undefined;
      await consume(att, (chunk) => {
        collector.write(chunk);
        uu?.write(chunk);
      });
      uu?.end();

      const detected = detectType(collector.head(), collector.tail());
      if (!isBodyText) for (const f of checkContent(detected, names, declared, shared.content, path)) addFinding(shared, f);
      const members = await this.inspectArchive(collector, detected, names[0] ?? 'archive', path);
      collector.release();
      shared.parts.push({ path, contentType: declared, names, size: collector.size, detectedType: detected, ...(members !== undefined ? { archiveMembers: members } : {}) });

      for (const [i, block] of uuBlocks.entries()) {
        const uuPath = `${path} > uuencoded${uuBlocks.length > 1 ? ` ${i + 1}` : ''}`;
        for (const f of checkName(block.name, shared.names, uuPath, false)) addFinding(shared, f);
        const uuType = detectType(block.collector.head(), block.collector.tail());
        for (const f of checkContent(uuType, [block.name], '', shared.content, uuPath)) addFinding(shared, f);
        const uuMembers = await this.inspectArchive(block.collector, uuType, block.name, uuPath);
        block.collector.release();
        shared.parts.push({ path: uuPath, contentType: 'application/x-uuencode', names: [block.name], size: block.collector.size, detectedType: uuType, ...(uuMembers !== undefined ? { archiveMembers: uuMembers } : {}) });
      }
    } finally {
      att.release?.();
    }
  }

  /** Lists a zip part; returns the member count, or undefined when the part is not a zip. */
  private async inspectArchive(collector: ContentCollector, detected: RealType, name: string, path: string): Promise<number | undefined> {
    if (detected !== 'zip') return undefined;
    const shared = this.shared;
    const whole = collector.wholeZip();
    if (!whole) {
      if (collector.tooLarge && shared.config.archives.unlistable === 'reject') addFinding(shared, { kind: 'archive-limit', rule: 'archive-too-large', name, path });
      return undefined;
    }
    const report = await inspectZip(whole, name, `${path} > ${name}`, 1, shared.archive);
    for (const f of report.findings) addFinding(shared, f);
    return report.members;
  }

  private async walkAttachedMessage(att: AttachmentStream, path: string, names: readonly string[]): Promise<void> {
    const shared = this.shared;
    if (this.depth >= shared.config.maxMessageDepth) {
      addFinding(shared, { kind: 'archive-limit', rule: 'message-depth', name: names[0] ?? '', path });
      await drain(att);
      return;
    }
    const child = new MessageWalker(shared, `${path} > ${names[0] ?? 'message'} > `, this.depth + 1);
    let size = 0;
    try {
      await consume(att, (chunk) => {
        size += chunk.length;
        child.write(chunk);
      });
      await child.end();
    } finally {
      child.destroy();
    }
    shared.parts.push({ path, contentType: 'message/rfc822', names: [...names], size, detectedType: 'message' });
  }
}

function consume(att: AttachmentStream, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    att.content.on('data', (chunk: Buffer | string) => onChunk(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk));
    att.content.once('end', () => resolve());
    att.content.once('error', reject);
  });
}

function drain(att: AttachmentStream): Promise<void> {
  return consume(att, () => undefined);
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

  constructor(config: AttachmentsConfig) {
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
      },
      findings: [],
      parts: [],
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
      this.shortcut = { contentType: plain.contentType, body: new PlainBodyWatch(), magic: new ContentCollector(MAGIC_HEAD_BYTES) };
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
      return { findings: [], parts: [{ path: 'part 1', contentType: sc.contentType, names: [], size: sc.body.size, detectedType }] };
    }
    const root = this.walker();
    try {
      await root.end();
      if (this.shared.aborted) return { findings: [], parts: [], error: 'inspection aborted' };
      return { findings: this.shared.findings, parts: this.shared.parts };
    } catch (err) {
      return { findings: this.shared.findings, parts: this.shared.parts, error: `attachment inspection failed: ${err instanceof Error ? err.message : String(err)}` };
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
