// Durations and sizes the way administrators write them in config files: `30s`, `5m`, `10M`.
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration in milliseconds, written as `250ms`, `30s`, `5m`, `2h`, `1d` or a number of seconds. */
export const duration = z
  .union([z.number().nonnegative(), z.string().regex(DURATION, 'a duration such as 30s, 5m or 250ms')])
  .transform((v) => {
    if (typeof v === 'number') return Math.round(v * 1000);
    const m = DURATION.exec(v) as RegExpExecArray;
    return Math.round(Number(m[1]) * (DURATION_MS[m[2] as string] as number));
  });

const SIZE = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i;
const SIZE_FACTOR: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** A size in bytes, written as `64K`, `10M`, `1G` (binary units) or a number of bytes. */
export const byteSize = z
  .union([z.number().int().nonnegative(), z.string().regex(SIZE, 'a size such as 512K, 10M or 1G')])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = SIZE.exec(v) as RegExpExecArray;
    return Math.round(Number(m[1]) * (SIZE_FACTOR[(m[2] as string).toUpperCase()] as number));
  });

/** A string another parser must accept (listen addresses, clamd endpoints); its error becomes the message. */
export function parsedString(parse: (value: string) => unknown): z.ZodType<string> {
  return z.string().superRefine((v, ctx) => {
    try {
      parse(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });
}
