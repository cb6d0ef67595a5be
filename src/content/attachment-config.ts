// The `attachments` section of the configuration: which names and real types are refused, and the limits
// of archive and nested-message inspection.
import { z } from 'zod';
import { byteSize, duration } from '../config/units.js';
import { DEFAULT_BANNED_EXTENSIONS } from './banned-extensions.js';
import { DANGEROUS_TYPE_LABELS, DEFAULT_DANGEROUS_TYPES } from './magic.js';

const extension = z
  .string()
  .transform((s) => s.trim().toLowerCase().replace(/^\.+/, ''))
  .pipe(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'an extension: letters, digits, "-" or "_", without the dot'));

const policy = z.enum(['reject', 'allow']);

export const archiveLimitsSchema = z
  .object({
    /** How many archives deep to look (1 = only archives attached directly to the message). */
    maxDepth: z.number().int().min(1).max(16).default(3),
    /** Members listed per archive before giving up with an `archive-limit` finding (amavisd's sample uses 3000). */
    maxMembers: z.number().int().min(1).max(1_000_000).default(2000),
    /** Sum of the members' declared uncompressed sizes, over all nesting levels, per message. */
    maxExpandedBytes: byteSize.refine((n) => n >= 1, 'at least 1 byte').default(512 * 1024 * 1024),
    /**
     * Largest archive held in memory to be listed (per part, decoded). Postfix's default message_size_limit
     * is 10240000 bytes, so 16 MiB covers any attachment Postfix accepts by default.
     */
    maxBytes: byteSize.refine((n) => n >= 1024, 'at least 1K').default(16 * 1024 * 1024),
    /** A member whose uncompressed/compressed ratio is above this (and is over 1 MiB) is a decompression bomb. */
    maxCompressionRatio: z.number().min(2).default(200),
    /**
     * Longest 7-Zip may take to list one RAR, 7z, CAB, ARJ, LZH or tar archive (a header bomb is stopped here
     * and the archive counts as unlistable). A message's archives are listed one after another, and messages
     * take turns; an archive that cannot start within this time tempfails the message.
     */
    listTimeout: duration.refine((ms) => ms >= 100, 'at least 100ms').default(10_000),
    /** Password-protected members hide their content: MailScanner refuses them by default, so do we. */
    encrypted: policy.default('reject'),
    /** An archive we cannot list (over maxBytes, corrupt, over a limit): refusing is the safe default. */
    unlistable: policy.default('reject'),
  })
  .strict();

export const attachmentsSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Extensions refused anywhere (last extension of a normalised name). Default: the peers' union list. */
    bannedExtensions: z.array(extension).default([...DEFAULT_BANNED_EXTENSIONS]),
    /** Removed from the banned list (local exceptions), e.g. ['cab']. */
    allowedExtensions: z.array(extension).default([]),
    /** `invoice.pdf.exe`: a document-looking extension followed by a banned one. */
    checkDoubleExtension: z.boolean().default(true),
    /** `{…CLSID…}` in a name. */
    checkClsid: z.boolean().default(true),
    /** Real types (from magic bytes) that are refused whatever the name says. */
    dangerousTypes: z.array(z.enum(DANGEROUS_TYPE_LABELS)).default([...DEFAULT_DANGEROUS_TYPES]),
    /**
     * Declared Content-Types refused (amavisd's sample list plus shortcuts). `message/partial` splits a message
     * over several mails, so no part can be checked whole (RFC 2046 §5.2.2); the reader's client reassembles it.
     */
    bannedContentTypes: z
      .array(z.string().transform((s) => s.trim().toLowerCase()))
      .default([
        'application/x-msdownload',
        'application/x-msdos-program',
        'application/x-dosexec',
        'application/hta',
        'application/x-ms-shortcut',
        'message/partial',
      ]),
    /** Content that contradicts its name or declared type in a risky way (e.g. `invoice.pdf` that is a PE). */
    checkTypeMismatch: z.boolean().default(true),
    /** Attached messages (message/rfc822) inside attached messages. */
    maxMessageDepth: z.number().int().min(1).max(32).default(5),
    /** Leaf parts per message (MailScanner's "Maximum Attachments Per Message" is 200). */
    maxParts: z.number().int().min(1).default(1000),
    archives: archiveLimitsSchema.default(() => archiveLimitsSchema.parse({})),
  })
  .strict();

export type AttachmentsConfig = z.infer<typeof attachmentsSchema>;
export type ArchiveLimits = z.infer<typeof archiveLimitsSchema>;

/** The defaults, as `serve` with no config file gets them. */
export function defaultAttachmentsConfig(): AttachmentsConfig {
  return attachmentsSchema.parse({});
}
