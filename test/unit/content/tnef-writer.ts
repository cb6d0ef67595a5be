// A small TNEF writer for tests ([MS-OXTNEF]): the message attributes Outlook starts with, then per file
// attAttachRendData, attAttachTitle, attAttachData and an attAttachment property list (attach method, long
// file name, display name, data as a property), with correct checksums. Checked once by hand against the
// `tnef` tool (`tnef -t` lists the names written here).

export interface TnefFile {
  /** attAttachTitle: the 8.3 name. */
  readonly title?: string;
  /** PR_ATTACH_LONG_FILENAME. */
  readonly longName?: string;
  /** PR_DISPLAY_NAME. */
  readonly displayName?: string;
  /** The names in the property list as PT_UNICODE (UTF-16LE) rather than PT_STRING8. */
  readonly unicode?: boolean;
  /** attAttachData. */
  readonly data?: Buffer | string;
  /** PR_ATTACH_DATA_BIN in the property list. */
  readonly dataProperty?: Buffer | string;
  /** PR_ATTACH_METHOD 5 and an embedded message object in place of the data. */
  readonly embeddedMessage?: boolean;
  /** The embedded message's own attachments (an empty TNEF stream when not given). */
  readonly embeddedFiles?: readonly TnefFile[];
  /** Properties encoded with mapiProperty(), written first in the list. */
  readonly extraProperties?: readonly Buffer[];
}

const SIGNATURE = 0x223e9f78;
const LEVEL_MESSAGE = 1;
const LEVEL_ATTACHMENT = 2;
export const ATTRIBUTES = {
  tnefVersion: 0x00089006,
  oemCodepage: 0x00069007,
  messageClass: 0x00078008,
  attachRendData: 0x00069002,
  attachTitle: 0x00018010,
  attachData: 0x0006800f,
  attachment: 0x00069005,
} as const;
export const PROPERTY_TYPES = { long: 0x0003, boolean: 0x000b, systime: 0x0040, object: 0x000d, string8: 0x001e, unicode: 0x001f, binary: 0x0102, multiValued: 0x1000 } as const;
const PR_DISPLAY_NAME = 0x3001;
const PR_ATTACH_DATA = 0x3701;
const PR_ATTACH_METHOD = 0x3705;
const PR_ATTACH_LONG_FILENAME = 0x3707;
const IID_IMESSAGE = Buffer.from('0703020000000000c000000000000046', 'hex');
const PS_PUBLIC_STRINGS = Buffer.from('2903020000000000c000000000000046', 'hex');

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

const padTo4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);

/** One attribute: level, id, length, data, and the 16-bit sum of the data bytes. */
export function attribute(level: number, id: number, data: Buffer): Buffer {
  let sum = 0;
  for (const byte of data) sum = (sum + byte) & 0xffff;
  return Buffer.concat([Buffer.from([level]), u32(id), u32(data.length), data, u16(sum)]);
}

/** A string value as a property holds it: with its terminating NUL. */
export function stringValue(s: string, unicode: boolean): Buffer {
  return unicode ? Buffer.from(`${s}\0`, 'utf16le') : Buffer.from(`${s}\0`, 'latin1');
}

/**
 * One MAPI property of an attAttachment list. Variable-length types (strings, binary, object) and multi-valued
 * ones are written with a value count; every value is padded to 4 bytes. `name` makes it a named property (id
 * from 0x8000): a number or a string name in PS_PUBLIC_STRINGS.
 */
export function mapiProperty(type: number, id: number, values: readonly Buffer[], name?: number | string): Buffer {
  const parts = [u16(type), u16(id)];
  if (name !== undefined) {
    parts.push(PS_PUBLIC_STRINGS);
    if (typeof name === 'number') parts.push(u32(0), u32(name));
    else {
      const chars = Buffer.from(`${name}\0`, 'utf16le');
      parts.push(u32(1), u32(chars.length), padTo4(chars));
    }
  }
  const base = type & ~PROPERTY_TYPES.multiValued;
  const variable = base === PROPERTY_TYPES.object || base === PROPERTY_TYPES.string8 || base === PROPERTY_TYPES.unicode || base === PROPERTY_TYPES.binary;
  if (variable || (type & PROPERTY_TYPES.multiValued) !== 0) parts.push(u32(values.length));
  for (const v of values) {
    if (variable) parts.push(u32(v.length));
    parts.push(padTo4(v));
  }
  return Buffer.concat(parts);
}

function fileAttributes(file: TnefFile): Buffer[] {
  // RENDDATA: type (1 = file), position (none), width, height, flags.
  const rendData = Buffer.concat([u16(1), u32(0xffffffff), u16(0), u16(0), u32(0)]);
  const out = [attribute(LEVEL_ATTACHMENT, ATTRIBUTES.attachRendData, rendData)];
  if (file.title !== undefined) out.push(attribute(LEVEL_ATTACHMENT, ATTRIBUTES.attachTitle, stringValue(file.title, false)));
  if (file.data !== undefined) out.push(attribute(LEVEL_ATTACHMENT, ATTRIBUTES.attachData, Buffer.from(file.data)));
  const unicode = file.unicode === true;
  const stringType = unicode ? PROPERTY_TYPES.unicode : PROPERTY_TYPES.string8;
  const props = [...(file.extraProperties ?? [])];
  props.push(mapiProperty(PROPERTY_TYPES.long, PR_ATTACH_METHOD, [u32(file.embeddedMessage ? 5 : 1)]));
  if (file.longName !== undefined) props.push(mapiProperty(stringType, PR_ATTACH_LONG_FILENAME, [stringValue(file.longName, unicode)]));
  if (file.displayName !== undefined) props.push(mapiProperty(stringType, PR_DISPLAY_NAME, [stringValue(file.displayName, unicode)]));
  if (file.dataProperty !== undefined) props.push(mapiProperty(PROPERTY_TYPES.binary, PR_ATTACH_DATA, [Buffer.from(file.dataProperty)]));
  if (file.embeddedMessage) props.push(mapiProperty(PROPERTY_TYPES.object, PR_ATTACH_DATA, [Buffer.concat([IID_IMESSAGE, makeTnef(file.embeddedFiles ?? [])])]));
  out.push(attribute(LEVEL_ATTACHMENT, ATTRIBUTES.attachment, Buffer.concat([u32(props.length), ...props])));
  return out;
}

/** A TNEF stream holding `files`, in order. */
export function makeTnef(files: readonly TnefFile[]): Buffer {
  return Buffer.concat([
    u32(SIGNATURE),
    u16(0x0001), // legacy key
    attribute(LEVEL_MESSAGE, ATTRIBUTES.tnefVersion, u32(0x00010000)),
    attribute(LEVEL_MESSAGE, ATTRIBUTES.oemCodepage, Buffer.concat([u32(1252), u32(0)])),
    attribute(LEVEL_MESSAGE, ATTRIBUTES.messageClass, Buffer.from('IPM.Microsoft Mail.Note\0', 'latin1')),
    ...files.flatMap(fileAttributes),
  ]);
}
