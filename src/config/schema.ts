// The one config file, section by section. Each section's schema lives with the code it configures; this file
// puts them together. Every key has a default, so an empty file (or none) is a safe, working gateway.
import { z } from 'zod';
import { logSchema, milterSchema } from './milter-config.js';

export const configSchema = z
  .object({
    milter: milterSchema.prefault({}),
    log: logSchema.prefault({}),
  })
  .strict();

export type GatewayConfig = z.output<typeof configSchema>;

/** The embedded defaults: what `serve` runs with no config file. */
export const DEFAULT_CONFIG: GatewayConfig = configSchema.parse({});
