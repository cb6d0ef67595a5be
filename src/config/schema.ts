// The one config file, section by section. Each section's schema lives with the code it configures; this file
// puts them together. Every key has a default, so an empty file (or none) is a safe, working gateway.
import { z } from 'zod';
import { attachmentsSchema } from '../content/attachment-config.js';
import { metricsSchema } from '../metrics/metrics-config.js';
import { rateLimitSchema, relaySchema } from '../policy/envelope-config.js';
import { clamavSchema } from '../scanner/clamd-config.js';
import { actionsSchema } from '../verdict/actions-config.js';
import { logSchema, milterSchema } from './milter-config.js';

export const configSchema = z
  .object({
    /** The milter listener and its limits. */
    milter: milterSchema.prefault({}),
    /** Who may relay: trusted networks, our domains, sender rules. */
    relay: relaySchema.prefault({}),
    /** Connections, messages and recipients per client over sliding windows. */
    rateLimit: rateLimitSchema.prefault({}),
    /** Banned and dangerous attachments, archives. */
    attachments: attachmentsSchema.prefault({}),
    /** clamd endpoints, deadlines, limits. */
    clamav: clamavSchema.prefault({}),
    /** What happens to a message with a finding. */
    actions: actionsSchema.prefault({}),
    /** Prometheus metrics, health and top offenders over HTTP. */
    metrics: metricsSchema.prefault({}),
    log: logSchema.prefault({}),
  })
  .strict();

export type GatewayConfig = z.output<typeof configSchema>;

/** The embedded defaults: what `serve` runs with no config file. */
export const DEFAULT_CONFIG: GatewayConfig = configSchema.parse({});
