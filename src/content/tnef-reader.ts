// Reads the attachments out of a TNEF stream held in memory (Outlook's winmail.dat, application/ms-tnef): the
// names and content Outlook shows as ordinary attachments, nothing else. Written here rather than taken from
// npm: `node-tnef` is a command-line tool (bunyan and yargs as dependencies, two releases), not a kept library.
// Format facts from Microsoft's [MS-OXTNEF]. The stream is attacker-controlled: every length is checked against
// the buffer, what does not add up makes the stream unreadable (never an exception out of here, never a read
// past the end), and content is handed out as subarrays of the stream, never copied.

export interface TnefAttachment {
  /** File names, raw, each once: attAttachTitle (8.3), PR_ATTACH_LONG_FILENAME, PR_ATTACH_FILENAME. */
  readonly fileNames: readonly string[];
  /** PR_DISPLAY_NAME: what Outlook shows; a file name, or an embedded message's subject. */
  readonly displayName: string | undefined;
  /** attAttachData and PR_ATTACH_DATA_BIN/OBJ (an object without its interface id), each that is present and distinct. */
  readonly contents: readonly Buffer[];
  /** PR_ATTACH_METHOD 5: an embedded message, whose own TNEF stream (an IMessage object) is among `contents`. */
  readonly embeddedMessage: boolean;
}

export interface TnefListing {
  /** In stream order; when the stream is unreadable, those read before the fault. */
  readonly attachments: readonly TnefAttachment[];
  /** The stream holds more attachments than asked for: only the first ones are listed. */
  readonly tooMany: boolean;
  /** Why the stream could not be read to its end, or undefined when it could. */
  readonly unreadable: string | undefined;
}

// An attribute's 32-bit id carries its type in the high word; only the low word is compared, as lenient readers
// (the `tnef` tool) do, so a sender cannot hide an attribute from us behind an odd type a client ignores.
const ATT_ATTACH_DATA = 0x800f;
const ATT_ATTACH_TITLE = 0x8010;
const ATT_ATTACH_REND_DATA = 0x9002;
const ATT_ATTACHMENT = 0x9005;

const PR_DISPLAY_NAME = 0x3001;
const PR_ATTACH_DATA = 0x3701; // PR_ATTACH_DATA_BIN as PT_BINARY, PR_ATTACH_DATA_OBJ as PT_OBJECT
const PR_ATTACH_FILENAME = 0x3704;
const PR_ATTACH_METHOD = 0x3705;
const PR_ATTACH_LONG_FILENAME = 0x3707;
const ATTACH_EMBEDDED_MSG = 5;

const PT_LONG = 0x0003;
const PT_OBJECT = 0x000d;
const PT_STRING8 = 0x001e;
const PT_UNICODE = 0x001f;
const PT_BINARY = 0x0102;
const MV_FLAG = 0x1000;
const VARIABLE_TYPES: ReadonlySet<number> = new Set([PT_OBJECT, PT_STRING8, PT_UNICODE, PT_BINARY]);
/** Bytes of one value of each fixed-size type, before padding to 4. A type not here cannot be skipped. */
const FIXED_SIZES: ReadonlyMap<number, number> = new Map([
  [0x0001, 0], // PT_NULL
  [0x0002, 2], // PT_SHORT
  [PT_LONG, 4],
  [0x0004, 4], // PT_FLOAT
  [0x0005, 8], // PT_DOUBLE
  [0x0006, 8], // PT_CURRENCY
  [0x0007, 8], // PT_APPTIME
  [0x000a, 4], // PT_ERROR
  [0x000b, 2], // PT_BOOLEAN
  [0x0014, 8], // PT_I8
  [0x0040, 8], // PT_SYSTIME
  [0x0048, 16], // PT_CLSID
]);
const NAMED_PROPERTY_MIN_ID = 0x8000;
const IID_BYTES = 16;

const SIGNATURE = 0x223e9f78;
// A real attachment has up to four names and two contents; a stream repeating them beyond these is crafted
// (and would otherwise cost a comparison with every one kept before).
const MAX_NAMES = 8;
// Windows keeps a file name to 255 characters, and a subject (an embedded message's display name) is rarely a
// tenth of this: a name past it is crafted, and unreadable rather than megabytes for every name rule.
const MAX_NAME_CHARS = 16 * 1024;
const MAX_CONTENTS = 4;

/** Thrown inside this file only, when the stream does not add up; readTnef turns it into `unreadable`. */
class Malformed extends Error {}

/** A bounds-checked little-endian cursor over part of the stream. */
class Cursor {
  private offset = 0;
  private readonly buf: Buffer;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  get left(): number {
    return this.buf.length - this.offset;
  }

  bytes(n: number, what: string): Buffer {
    if (n > this.left) throw new Malformed(`${what} runs past the end`);
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  u8(what: string): number {
    return this.bytes(1, what).readUInt8(0);
  }

  u16(what: string): number {
    return this.bytes(2, what).readUInt16LE(0);
  }

  u32(what: string): number {
    return this.bytes(4, what).readUInt32LE(0);
  }

  /** Skips a value of `n` bytes and its padding to a 4-byte boundary. */
  padded(n: number, what: string): Buffer {
    const value = this.bytes(n, what);
    this.bytes((4 - (n % 4)) % 4, what);
    return value;
  }
}

interface AttachmentInProgress {
  fileNames: string[];
  displayName: string | undefined;
  contents: Buffer[];
  embeddedMessage: boolean;
}

/** The stream's attachments, at most `maxAttachments` of them. Never throws. */
export function readTnef(buf: Buffer, maxAttachments: number): TnefListing {
  const attachments: AttachmentInProgress[] = [];
  let tooMany = false;
  try {
    const stream = new Cursor(buf);
    if (buf.length < 4 || stream.u32('signature') !== SIGNATURE) throw new Malformed('no TNEF signature');
    stream.u16('legacy key');
    let current: AttachmentInProgress | undefined;
    const next = (): AttachmentInProgress | undefined => {
      if (attachments.length >= maxAttachments) return undefined;
      const started: AttachmentInProgress = { fileNames: [], displayName: undefined, contents: [], embeddedMessage: false };
      attachments.push(started);
      return started;
    };
    while (stream.left > 0) {
      stream.u8('attribute level');
      const id = stream.u32('attribute id') & 0xffff;
      const data = stream.bytes(stream.u32('attribute length'), 'attribute data');
      // The checksum is not enforced: readers differ (the `tnef` tool stops at a wrong one unless told to
      // ignore it, others read on), and reading on judges every attachment any of them shows.
      stream.u16('attribute checksum');
      if (id !== ATT_ATTACH_REND_DATA && id !== ATT_ATTACH_TITLE && id !== ATT_ATTACH_DATA && id !== ATT_ATTACHMENT) continue;
      // Each attachment starts at attAttachRendData; an attachment attribute before the first one still
      // describes a file some reader may show.
      if (id === ATT_ATTACH_REND_DATA || current === undefined) current = next();
      if (current === undefined) {
        tooMany = true;
        break;
      }
      if (id === ATT_ATTACH_TITLE) addName(current.fileNames, string8(data));
      else if (id === ATT_ATTACH_DATA) addContent(current.contents, data);
      else if (id === ATT_ATTACHMENT) readAttachmentProperties(data, current);
    }
  } catch (err) {
    // Malformed, or a string too long for the engine to make of a name: either way not a stream we can read.
    return { attachments, tooMany, unreadable: err instanceof Error ? err.message : String(err) };
  }
  return { attachments, tooMany, unreadable: undefined };
}

/** attAttachment: a counted list of MAPI properties; the names, content and attach method are kept. */
function readAttachmentProperties(data: Buffer, into: AttachmentInProgress): void {
  const props = new Cursor(data);
  const count = props.u32('property count');
  // Each property takes at least 4 bytes: a count beyond that is a lie, found before looping on it.
  if (count > props.left / 4) throw new Malformed('property count past the end');
  for (let i = 0; i < count; i++) {
    const type = props.u16('property type');
    const id = props.u16('property id');
    if (id >= NAMED_PROPERTY_MIN_ID) skipPropertyName(props);
    const base = type & ~MV_FLAG;
    const multiValued = (type & MV_FLAG) !== 0;
    if (VARIABLE_TYPES.has(base)) {
      // Variable-length values are always counted, single-valued or not.
      const values = props.u32('value count');
      if (values > props.left / 4) throw new Malformed('value count past the end');
      for (let v = 0; v < values; v++) keepVariable(id, base, props.padded(props.u32('value size'), 'property value'), into);
      continue;
    }
    const size = FIXED_SIZES.get(base);
    if (size === undefined) throw new Malformed(`property type 0x${type.toString(16)} cannot be skipped`);
    const values = multiValued ? props.u32('value count') : 1;
    // Values take no bytes (PT_NULL) only single: a multi-valued one could count to 2^32 over nothing.
    const stride = Math.ceil(size / 4) * 4;
    if (multiValued && (stride === 0 || values * stride > props.left)) throw new Malformed('value count past the end');
    for (let v = 0; v < values; v++) {
      const value = props.padded(size, 'property value');
      if (id === PR_ATTACH_METHOD && base === PT_LONG && value.readUInt32LE(0) === ATTACH_EMBEDDED_MSG) into.embeddedMessage = true;
    }
  }
}

/** A named property's name: a GUID, then a numeric id or a counted UTF-16 string padded to 4 bytes. */
function skipPropertyName(props: Cursor): void {
  props.bytes(16, 'property set');
  const kind = props.u32('property name kind');
  if (kind === 0) props.u32('property name id');
  else if (kind === 1) props.padded(props.u32('property name length'), 'property name');
  else throw new Malformed(`property name kind ${kind}`);
}

function keepVariable(id: number, type: number, value: Buffer, into: AttachmentInProgress): void {
  if (id === PR_ATTACH_DATA && type === PT_BINARY) addContent(into.contents, value);
  else if (id === PR_ATTACH_DATA && type === PT_OBJECT) {
    if (value.length < IID_BYTES) throw new Malformed('object shorter than its interface id');
    // An embedded message is a TNEF stream of its own after the interface id (IID_IMessage): handed out as content
    // like a file's, it is read in turn (within the depth limit), since Outlook opens its attachments from it.
    // Only the attach method makes the attachment an embedded message (whose display name is a subject): an
    // object alone must not hide a file's display name from the name rules.
    addContent(into.contents, value.subarray(IID_BYTES));
  } else if (type === PT_STRING8 || type === PT_UNICODE) {
    const name = type === PT_UNICODE ? withoutTerminator(value.toString('utf16le')) : string8(value);
    if (id === PR_ATTACH_LONG_FILENAME || id === PR_ATTACH_FILENAME) addName(into.fileNames, name);
    else if (id === PR_DISPLAY_NAME) {
      if (name.length > MAX_NAME_CHARS) throw new Malformed(`a name of ${name.length} characters`);
      into.displayName ??= name; // the first, as there is one to show
    }
  }
}

/**
 * An 8-bit string. Read as Latin-1 rather than in the stream's code page: extensions are ASCII in every code
 * page Outlook writes, and the name is only matched and reported.
 */
function string8(bytes: Buffer): string {
  return withoutTerminator(bytes.toString('latin1'));
}

/**
 * Strings carry their terminating NUL; a NUL inside the name is kept (name rules read both sides of it). A loop:
 * `/\0+$/` retries each position of a long run of NULs.
 */
function withoutTerminator(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0) end--;
  return s.slice(0, end);
}

function addName(names: string[], name: string): void {
  if (name.length > MAX_NAME_CHARS) throw new Malformed(`a name of ${name.length} characters`);
  if (name === '' || names.includes(name)) return;
  if (names.length >= MAX_NAMES) throw new Malformed('too many names for one attachment');
  names.push(name);
}

function addContent(contents: Buffer[], content: Buffer): void {
  if (contents.some((c) => c.equals(content))) return;
  if (contents.length >= MAX_CONTENTS) throw new Malformed('too many contents for one attachment');
  contents.push(content);
}
