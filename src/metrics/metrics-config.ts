// The `metrics:` section of the config file: where /metrics, /healthz and /offenders listen, and how the
// top-offenders list is sized.
//
// Port 10032 (next to the milter's 10031): not used by postfix_exporter (9154), the ClamAV exporters
// (9906, 9810, 9328), node_exporter (9100), rspamd's controller (11334) or amavisd (10024/10025).
import { isIP } from 'node:net';
import { z } from 'zod';
import { duration } from '../config/units.js';

export const DEFAULT_METRICS_PORT = 10032;

export const offendersSchema = z
  .object({
    /** Addresses kept (and most listed). Memory is about size × buckets small entries. */
    size: z.number().int().min(1).max(10_000).default(100),
    /** How far back refusals count, e.g. `1h`. */
    window: duration.default(3_600_000).refine((ms) => ms >= 60_000, 'at least 1m'),
    /** Steps in which the window slides: the window drops its oldest 1/buckets at a time. */
    buckets: z.number().int().min(1).max(60).default(6),
  })
  .strict();

export const metricsSchema = z
  .object({
    /** Serve the metrics listener at all. */
    enabled: z.boolean().default(true),
    /** IP address to bind; loopback by default because the endpoints are not authenticated. */
    address: z.string().refine((a) => isIP(a) !== 0, 'an IP address such as 127.0.0.1 or ::1 (no host names)').default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(DEFAULT_METRICS_PORT),
    offenders: offendersSchema.prefault({}),
  })
  .strict();

export type MetricsConfig = z.output<typeof metricsSchema>;
