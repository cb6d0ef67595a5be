import { z } from 'zod';

/** What to do with a message that has a definite finding. Scanner failures always tempfail. */
export const findingAction = z.enum(['reject', 'tempfail', 'discard', 'quarantine', 'tag']);
export type FindingAction = z.output<typeof findingAction>;

export const actionsSchema = z
  .object({
    /** A virus found by clamd. Default: reject with 554 5.7.0 naming the virus. */
    virus: findingAction.default('reject'),
    /** A banned or dangerous attachment. Default: reject with 554 5.7.0 naming the file. */
    attachment: findingAction.default('reject'),
    /** Per attachment rule (e.g. `encrypted-archive: quarantine`), overriding `attachment`. */
    byRule: z.record(z.string().regex(/^[a-z][a-z0-9-]*$/, 'a rule name such as encrypted-archive'), findingAction).default({}),
    /**
     * A message larger than clamav.maxScanSize cannot be scanned: reject (552 5.3.4, default), tempfail, or
     * accept it marked as unscanned in a header — never passed as clean.
     */
    oversize: z.enum(['reject', 'tempfail', 'accept']).default('reject'),
    /** Header added to mail that was scanned and found clean; `enabled: false` to leave mail untouched. */
    scannedHeader: z
      .object({
        enabled: z.boolean().default(true),
        name: z.string().regex(/^[\x21-\x39\x3b-\x7e]+$/, 'a header field name').default('X-Virus-Scanned'),
        value: z.string().min(1).default('postfix-milter-ts with ClamAV'),
      })
      .strict()
      .prefault({}),
    /** Prefix of the headers the `tag` action adds (`<prefix>-Virus`, `<prefix>-Attachment`). */
    tagHeaderPrefix: z.string().regex(/^[\x21-\x39\x3b-\x7e]+$/, 'a header field name prefix').default('X-Gateway'),
  })
  .strict();

export type ActionsConfig = z.output<typeof actionsSchema>;
