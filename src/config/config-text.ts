// The effective config written back as a config file would say it: durations and sizes with their units, so
// `check-config`'s output can be saved and used as it is (read back, a bare number is seconds for a duration).
import type { z } from 'zod';
import { formatDuration, formatSize, unitOf, wrappedSchema } from './units.js';

/** The keys' schemas of the mapping `schema` reads `value` with (for a union: the option that has all its keys). */
function shapeOf(schema: z.ZodType, value: object): Record<string, z.ZodType> | undefined {
  const def = schema.def as { type: string; shape?: Record<string, z.ZodType>; options?: z.ZodType[] };
  if (def.type === 'object') return def.shape;
  const inner = wrappedSchema(schema);
  if (inner !== undefined) return shapeOf(inner, value);
  if (def.type === 'union' && def.options) {
    for (const option of def.options) {
      const shape = shapeOf(option, value);
      if (shape && Object.keys(value).every((k) => k in shape)) return shape;
    }
  }
  return undefined;
}

/** `value` (parsed by `schema`) with every duration and size as text with a unit; other values as they are. */
export function configForFile(schema: z.ZodType, value: unknown): unknown {
  const unit = unitOf(schema);
  if (unit === 'duration' && typeof value === 'number') return formatDuration(value);
  if (unit === 'size' && typeof value === 'number') return formatSize(value);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const shape = shapeOf(schema, value);
  if (shape === undefined) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape[k] ? configForFile(shape[k], v) : v]));
}
