// Lists zip archives held in memory (yauzl, lazy entries, never extracted to disk): member names go
// through the same name rules as attachments, member content through magic detection, nested archives are
// opened to a configured depth, and member-count, expanded-size and compression-ratio limits stop bombs.
// Other archive formats (RAR, 7z, …) are listed by 7-Zip (seven-zip-inspector.ts), names only.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { inflateRawSync } from 'node:zlib';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { type ArchiveContext, type ArchiveReport, unlistable } from './archive-context.js';
import { type ContentRules, checkContent } from './content-rules.js';
import type { Finding } from './finding.js';
import { MAGIC_HEAD_BYTES, detectType } from './magic.js';
import { type NameRules, checkName } from './name-rules.js';
import { inspectWithSevenZip, isListedBySevenZip } from './seven-zip-inspector.js';
import { localHeaderNames, memberNames } from './zip-names.js';

const YIELD_EVERY_ENTRIES = 32;
const BOMB_MIN_BYTES = 1024 * 1024;
/** Members up to these sizes are inflated in one synchronous call (a zlib stream per member costs more). */
const SMALL_MEMBER_COMPRESSED = 16 * 1024;
const SMALL_MEMBER_EXPANDED = 256 * 1024;
const LOCAL_HEADER_SIGNATURE = 0x04034b50;
const LOCAL_HEADER_BYTES = 30;
const STORED = 0;
const DEFLATED = 8;

function openZip(buf: Buffer): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    // decodeStrings: false so yauzl neither rejects hostile names ("../x.exe", absolute paths) nor hides
    // which encoding it chose; validateEntrySizes: false so a lying size does not abort the listing (we
    // bound what we read ourselves).
    yauzl.fromBuffer(buf, { lazyEntries: true, decodeStrings: false, validateEntrySizes: false }, (err, zip) => {
      if (err) reject(err);
      else resolve(zip);
    });
  });
}

function nextEntry(zip: ZipFile): Promise<Entry | null> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    const onEntry = (e: Entry): void => {
      cleanup();
      resolve(e);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(null);
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

function openStream(zip: ZipFile, entry: Entry): Promise<Readable> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err) reject(err);
      else resolve(stream);
    });
  });
}

/**
 * A small stored or deflated member read straight from the archive buffer: its whole content, or undefined
 * when the member is not small or its local header does not check out (the caller then uses yauzl's stream,
 * which validates everything). The output bound holds even when the central directory lies about sizes.
 */
function readSmallMember(buf: Buffer, entry: Entry): Buffer | undefined {
  if (entry.compressedSize > SMALL_MEMBER_COMPRESSED || entry.uncompressedSize > SMALL_MEMBER_EXPANDED) return undefined;
  if (entry.compressionMethod !== STORED && entry.compressionMethod !== DEFLATED) return undefined;
  const at = entry.relativeOffsetOfLocalHeader;
  if (at + LOCAL_HEADER_BYTES > buf.length || buf.readUInt32LE(at) !== LOCAL_HEADER_SIGNATURE) return undefined;
  const start = at + LOCAL_HEADER_BYTES + buf.readUInt16LE(at + 26) + buf.readUInt16LE(at + 28);
  const end = start + entry.compressedSize;
  if (end > buf.length) return undefined;
  const data = buf.subarray(start, end);
  if (entry.compressionMethod === STORED) return data.length === entry.uncompressedSize ? data : undefined;
  try {
    // Output buffers sized to the declared size, within 4-16 KiB (zlib's default is 16 KiB each, mostly unused
    // for small members); the 4 KiB floor keeps a lying size from costing thousands of tiny buffers.
    const chunkSize = Math.min(16 * 1024, Math.max(4 * 1024, entry.uncompressedSize + 64));
    const out = inflateRawSync(data, { maxOutputLength: SMALL_MEMBER_EXPANDED, chunkSize });
    return out.length === entry.uncompressedSize ? out : undefined;
  } catch {
    return undefined; // corrupt, truncated or larger than declared: let the stream path report it
  }
}

/** Reads up to `max` bytes of a member (stops and destroys the stream there); `complete` says whether all came. */
async function readUpTo(stream: Readable, max: number): Promise<{ bytes: Buffer; complete: boolean }> {
  const chunks: Buffer[] = [];
  let length = 0;
  let complete = true;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      length += chunk.length;
      if (length > max) {
        complete = false;
        break;
      }
    }
  } finally {
    stream.destroy();
  }
  const all = Buffer.concat(chunks, length);
  return { bytes: complete ? all : all.subarray(0, max), complete };
}


const END_OF_CENTRAL_DIRECTORY = Buffer.from('PK\x05\x06', 'latin1');
const CENTRAL_HEADER_SIGNATURE = 0x02014b50;
const END_RECORD_BYTES = 22;
const MAX_COMMENT_BYTES = 0xffff;

/**
 * Where a zip that ends `buf` starts, when other bytes come before it (junk, a PDF, a self-extractor's stub):
 * the end record's directory offset counts from the zip's own start, as unzip works it out. Undefined when
 * there is no such zip. 0 when the offsets already count from the start of `buf`.
 */
export function zipStartOffset(buf: Buffer): number | undefined {
  // The end record sits in the last 22 bytes plus at most a 64 KiB comment.
  const from = Math.max(0, buf.length - END_RECORD_BYTES - MAX_COMMENT_BYTES);
  const window = buf.subarray(from);
  for (let i = window.lastIndexOf(END_OF_CENTRAL_DIRECTORY); i >= 0; i = i > 0 ? window.lastIndexOf(END_OF_CENTRAL_DIRECTORY, i - 1) : -1) {
    const at = from + i;
    if (at + END_RECORD_BYTES > buf.length) continue;
    const directoryBytes = buf.readUInt32LE(at + 12);
    const directoryOffset = buf.readUInt32LE(at + 16);
    const start = at - directoryBytes - directoryOffset;
    if (start < 0 || directoryBytes === 0xffffffff || directoryOffset === 0xffffffff) continue;
    if (buf.readUInt32LE(start + directoryOffset) === CENTRAL_HEADER_SIGNATURE) return start;
  }
  return undefined;
}

/**
 * Lists the zip in `buf`. `name` is the archive's own (raw) name, `path` where it sits (`part 2`, or the
 * path of the member holding it); members are reported at `${path} > ${member}`. `depth` is 1 for an
 * archive attached to the message.
 */
export async function inspectZip(buf: Buffer, name: string, path: string, depth: number, ctx: ArchiveContext): Promise<ArchiveReport> {
  const findings: Finding[] = [];
  let members = 0;
  let zip: ZipFile;
  try {
    zip = await openZip(buf);
  } catch {
    return { findings: unlistable(ctx, 'archive-unreadable', name, path), members, listed: new Set() };
  }
  const { limits } = ctx;
  const listedNames = new Set<string>();
  let encryptedSeen = false;
  try {
    if (zip.entryCount > limits.maxMembers) findings.push({ kind: 'archive-limit', rule: 'archive-members', name, path });
    for (let index = 0; index < limits.maxMembers; index++) {
      if (ctx.cancelled()) break;
      if (index % YIELD_EVERY_ENTRIES === YIELD_EVERY_ENTRIES - 1) await yieldToEventLoop();
      let entry: Entry | null;
      try {
        entry = await nextEntry(zip);
      } catch {
        findings.push(...unlistable(ctx, 'archive-unreadable', name, path));
        break;
      }
      if (entry === null) break;
      members++;
      const names = memberNames(entry.fileNameRaw, entry.generalPurposeBitFlag, entry.extraFields);
      for (const n of names) listedNames.add(n);
      const isFolderName = (n: string): boolean => n.endsWith('/') || n.endsWith('\\');
      // A folder has a folder name in every form and no data. A header name that looks like a folder while the
      // Unicode Path field names a file (unzip extracts that file), or that carries data, is a file.
      if (names.every(isFolderName) && entry.compressedSize === 0 && entry.uncompressedSize === 0) continue;
      const shown = names.find((n) => !isFolderName(n)) ?? names[0] ?? '';
      const memberPath = `${path} > ${shown}`;
      for (const n of names) findings.push(...checkName(n, ctx.names, memberPath, true));

      ctx.budget.expandedLeft -= entry.uncompressedSize;
      if (ctx.budget.expandedLeft < 0) {
        findings.push({ kind: 'archive-limit', rule: 'archive-expanded-size', name, path });
        break;
      }
      if (entry.uncompressedSize > BOMB_MIN_BYTES && entry.uncompressedSize / Math.max(1, entry.compressedSize) > limits.maxCompressionRatio) {
        findings.push({ kind: 'archive-limit', rule: 'archive-ratio', name: shown, path: memberPath });
        continue;
      }
      if (entry.isEncrypted()) {
        encryptedSeen = true;
        continue;
      }
      if (entry.uncompressedSize === 0 || !entry.canDecodeFileData()) continue;

      let head: Buffer;
      let complete: boolean;
      const small = readSmallMember(buf, entry);
      if (small !== undefined) {
        head = small;
        complete = true;
      } else {
        let stream: Readable;
        try {
          stream = await openStream(zip, entry);
        } catch {
          findings.push(...unlistable(ctx, 'archive-unreadable', shown, memberPath));
          continue;
        }
        // Read a little first; only a nested zip is read whole, and only within the size limit.
        try {
          ({ bytes: head, complete } = await readUpTo(stream, MAGIC_HEAD_BYTES));
        } catch {
          findings.push(...unlistable(ctx, 'archive-unreadable', shown, memberPath));
          continue;
        }
      }
      const detected = detectType(head.length > MAGIC_HEAD_BYTES ? head.subarray(0, MAGIC_HEAD_BYTES) : head);
      findings.push(...checkContent(detected, names, '', ctx.content, memberPath));
      if (detected !== 'zip' && !isListedBySevenZip(detected)) continue;
      if (depth >= limits.maxDepth) {
        findings.push({ kind: 'archive-limit', rule: 'archive-depth', name: shown, path: memberPath });
        continue;
      }
      let inner = head;
      if (!complete) {
        if (entry.uncompressedSize > limits.maxBytes) {
          findings.push(...unlistable(ctx, 'archive-too-large', shown, memberPath));
          continue;
        }
        try {
          const whole = await readUpTo(await openStream(zip, entry), limits.maxBytes);
          if (!whole.complete) {
            findings.push(...unlistable(ctx, 'archive-too-large', shown, memberPath));
            continue;
          }
          inner = whole.bytes;
        } catch {
          findings.push(...unlistable(ctx, 'archive-unreadable', shown, memberPath));
          continue;
        }
      }
      const nested = detected === 'zip' ? await inspectZip(inner, shown, memberPath, depth + 1, ctx) : await inspectWithSevenZip(inner, shown, memberPath, ctx);
      findings.push(...nested.findings);
      members += nested.members;
      for (const n of nested.listed) listedNames.add(n);
    }
  } finally {
    try {
      zip.close();
    } catch {
      // already closed by yauzl after an error
    }
  }

  // Members the central directory does not list (concatenated or crafted zips) still count.
  for (const local of localHeaderNames(buf, limits.maxMembers)) {
    if (local.encrypted) encryptedSeen = true;
    if (listedNames.has(local.name)) continue;
    listedNames.add(local.name);
    findings.push(...checkName(local.name, ctx.names, `${path} > ${local.name}`, true));
  }
  if (encryptedSeen && limits.encrypted === 'reject') findings.push({ kind: 'encrypted-archive', rule: 'encrypted-archive', name, path });
  return { findings, members, listed: listedNames };
}
