// One Postfix queue file as the sweep needs it: envelope (sender, recipients, arrival), the header block,
// and the message content as text (N records end a line, L records continue one), the way `postcat -bh`
// prints it. Content beyond `maxContentBytes` is not kept: the reader jumps to the extracted section using
// the offsets of the size record when it can, so memory stays bounded and huge messages cost little.
import { QueueFileError, REC, RecordReader, type RandomAccess, typeName } from './record.js';

export interface QueueMessage {
  /** Envelope sender; '' for the null sender. undefined when the file has no sender record (corrupt). */
  readonly sender: string | undefined;
  /** Recipients still to be delivered ('R'), in file order (envelope, then extracted). */
  readonly recipients: readonly string[];
  /** Recipients already delivered ('D'). */
  readonly deliveredRecipients: readonly string[];
  /** Arrival time (the 'T' record), when present. */
  readonly arrival: Date | undefined;
  /** The header block (lines up to, not including, the empty line), '\n'-separated, at most MAX_HEADER_BYTES. */
  readonly headers: Buffer;
  /** Bytes of message content (headers and body, '\n' line ends). */
  readonly contentSize: number;
  /** The whole content when it fit in maxContentBytes and content was requested; otherwise undefined. */
  readonly content: Buffer | undefined;
  /** The content was larger than maxContentBytes (so `content` is undefined). */
  readonly oversize: boolean;
}

export interface ReadQueueFileOptions {
  /** Keep the content up to this many bytes; 0 keeps none (headers only). */
  readonly maxContentBytes: number;
}

/** Headers beyond this are not kept for matching (Postfix's header_size_limit default is 100 KiB per header). */
export const MAX_HEADER_BYTES = 1024 * 1024;

const NL = Buffer.from('\n');

/** Parses the size record: "content-size data-offset rcpt-count qmgr-flags content-length [smtputf8]". */
function parseSizeRecord(data: Buffer): { contentBytes: number; dataOffset: number } | undefined {
  const f = data.toString('latin1').trim().split(/\s+/).map(Number);
  const [contentBytes, dataOffset] = f;
  if (contentBytes === undefined || dataOffset === undefined || !Number.isSafeInteger(contentBytes) || !Number.isSafeInteger(dataOffset)) return undefined;
  if (contentBytes < 0 || dataOffset <= 0) return undefined;
  return { contentBytes, dataOffset };
}

export async function readQueueFile(source: RandomAccess, options: ReadQueueFileOptions): Promise<QueueMessage> {
  const reader = new RecordReader(source);
  let sender: string | undefined;
  const recipients: string[] = [];
  const delivered: string[] = [];
  let arrival: Date | undefined;
  let size: { contentBytes: number; dataOffset: number } | undefined;
  let section: 'envelope' | 'content' | 'extracted' = 'envelope';
  let first = true;
  let ended = false;

  const headerChunks: Buffer[] = [];
  let headerBytes = 0;
  let inHeaders = true;
  let headersFull = false;
  const contentChunks: Buffer[] = [];
  let contentSize = 0;
  let keep = options.maxContentBytes > 0;
  let oversize = false;
  /** The previous content record was 'L': the current line continues it (for header-end detection). */
  let midLine = false;

  const addContent = (data: Buffer, newline: boolean): void => {
    const n = data.length + (newline ? 1 : 0);
    contentSize += n;
    if (inHeaders) {
      const startsLine = !midLine;
      if (startsLine && newline && data.length === 0) {
        inHeaders = false; // the empty line ends the headers
      } else if (!headersFull) {
        if (headerBytes + n > MAX_HEADER_BYTES) headersFull = true;
        else {
          headerChunks.push(Buffer.from(data));
          if (newline) headerChunks.push(NL);
          headerBytes += n;
        }
      }
    }
    midLine = !newline;
    if (keep) {
      if (contentSize > options.maxContentBytes) {
        keep = false;
        oversize = true;
        contentChunks.length = 0;
      } else {
        contentChunks.push(Buffer.from(data));
        if (newline) contentChunks.push(NL);
      }
    }
  };

  for (;;) {
    const rec = await reader.next();
    if (rec === undefined) break;
    if (first) {
      first = false;
      if (rec.type === REC.SIZE) {
        size = parseSizeRecord(rec.data);
        continue;
      }
    }
    if (section === 'content') {
      if (rec.type === REC.NORM || rec.type === REC.CONT) {
        addContent(rec.data, rec.type === REC.NORM);
        // Neither the content nor more headers are needed: jump to the extracted section if we know where.
        if (!keep && !inHeaders && size !== undefined) {
          const xOffset = size.dataOffset + size.contentBytes;
          if (xOffset > reader.position && xOffset < source.size) {
            const resume = reader.position;
            reader.seek(xOffset);
            const x = await reader.next().catch(() => undefined);
            if (x?.type === REC.XTRA) {
              // The rest was not counted: take the size from the size record (record bytes, a close upper bound).
              contentSize = Math.max(contentSize, size.contentBytes);
              section = 'extracted';
            } else reader.seek(resume);
          }
        }
        continue;
      }
      if (rec.type === REC.XTRA) {
        section = 'extracted';
        continue;
      }
      throw new QueueFileError(`unexpected record ${typeName(rec.type)} in the message content`, rec.offset);
    }
    switch (rec.type) {
      case REC.FROM:
        sender = rec.data.toString('utf8');
        break;
      case REC.RCPT:
        recipients.push(rec.data.toString('utf8'));
        break;
      case REC.DONE:
        delivered.push(rec.data.toString('utf8'));
        break;
      case REC.TIME: {
        const sec = Number(rec.data.toString('latin1').trim().split(/\s+/)[0]);
        if (Number.isSafeInteger(sec)) arrival = new Date(sec * 1000);
        break;
      }
      case REC.MESG:
        if (section !== 'envelope') throw new QueueFileError('a second message start record', rec.offset);
        section = 'content';
        break;
      case REC.END:
        ended = true;
        break;
      default:
        // Other envelope and extracted records (attributes, DSN, original recipients…) are not needed.
        break;
    }
    if (ended) break;
  }
  if (!ended) throw new QueueFileError(section === 'envelope' ? 'no message content (file ends in the envelope)' : 'truncated file: no end record', reader.position);
  return {
    sender,
    recipients,
    deliveredRecipients: delivered,
    arrival,
    headers: Buffer.concat(headerChunks),
    contentSize,
    content: keep ? Buffer.concat(contentChunks) : undefined,
    oversize,
  };
}
