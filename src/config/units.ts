// Durations and sizes the way administrators write them in config files: `30s`, `5m`, `10M`.
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

// Node's timers take at most 2^31-1 ms; a longer one fires at once (and a repeating one spins).
const MAX_DURATION_MS = 2 ** 31 - 1;

/** The input forms of a duration and of a size: how a config printer knows a value's unit (see unitOf). */
const durationInput = z.union([z.number().nonnegative(), z.string().regex(DURATION, 'a duration such as 30s, 5m or 250ms')]);

/** A duration in milliseconds, written as `250ms`, `30s`, `5m`, `2h`, `1d` or a number of seconds; at most 24 days. */
export const duration = durationInput
  .transform((v) => {
    if (typeof v === 'number') return Math.round(v * 1000);
    const m = DURATION.exec(v) as RegExpExecArray;
    return Math.round(Number(m[1]) * (DURATION_MS[m[2] as string] as number));
  })
  .refine((ms) => ms <= MAX_DURATION_MS, 'at most 24d (a bare number is seconds)');

const SIZE = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i;
const SIZE_FACTOR: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

const sizeInput = z.union([z.number().int().nonnegative(), z.string().regex(SIZE, 'a size such as 512K, 10M or 1G')]);

/** A size in bytes, written as `64K`, `10M`, `1G` (binary units) or a number of bytes. */
export const byteSize = sizeInput
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

/**
 * 'duration' or 'size' when `schema` reads one (wrapped in defaults, refinements or pipes: their input is one of
 * the forms above), else undefined.
 */
export function unitOf(schema: z.ZodType): 'duration' | 'size' | undefined {
  if (schema === durationInput) return 'duration';
  if (schema === sizeInput) return 'size';
  const inner = wrappedSchema(schema);
  return inner === undefined ? undefined : unitOf(inner);
}

/** The schema a default, an optional, a nullable or a pipe (its input side) wraps; undefined for others. */
export function wrappedSchema(schema: z.ZodType): z.ZodType | undefined {
  const def = schema.def as { type: string; in?: z.ZodType; innerType?: z.ZodType };
  if (def.type === 'pipe') return def.in;
  if (def.type === 'default' || def.type === 'prefault' || def.type === 'optional' || def.type === 'nullable') return def.innerType;
  return undefined;
}

const DURATION_UNITS: readonly (readonly [string, number])[] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
const SIZE_UNITS: readonly (readonly [string, number])[] = [['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]];

/** Milliseconds as a config file writes them: the largest unit that divides exactly (`600000` → `10m`). */
export function formatDuration(ms: number): string {
  for (const [unit, factor] of DURATION_UNITS) if (ms !== 0 && ms % factor === 0) return `${ms / factor}${unit}`;
  return ms === 0 ? '0s' : `${ms}ms`;
}

/** Bytes as a config file writes them: `10M`, `64K`, or the number. */
export function formatSize(bytes: number): string | number {
  for (const [unit, factor] of SIZE_UNITS) if (bytes !== 0 && bytes % factor === 0) return `${bytes / factor}${unit}`;
  return bytes;
}
