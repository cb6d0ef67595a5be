// The `clamav:` section of the config file: where clamd listens and how long and how much we wait for it.
import { z } from 'zod';
import { byteSize, duration, parsedString } from '../config/units.js';
import { parseClamdEndpoint } from './clamd-endpoint.js';

const endpoint = parsedString(parseClamdEndpoint);

export const clamavSchema = z
  .object({
    /** Tried in this order; a failing one is marked down and skipped until a probe finds it answering again. */
    endpoints: z.array(endpoint).min(1, 'at least one clamd endpoint').default(['unix:/run/clamav/clamd.ctl', 'inet:127.0.0.1:3310']),
    /** A full clamd queue shows as a connect that never completes, so this stays short. */
    connectTimeout: duration.default(5000),
    /** From the end of the message to clamd's verdict (clamav-milter's ReadTimeout, clamd's MaxScanTime: 120 s). */
    scanDeadline: duration.default(120_000),
    /** clamd must read our data within this (clamav-milter uses a fixed 30 s for sends). */
    sendTimeout: duration.default(30_000),
    /** PING (and VERSION) each live endpoint this often. */
    healthCheckInterval: duration.default(30_000),
    /** Re-probe a dead endpoint this often, so it is used again soon after clamd comes back. */
    reprobeInterval: duration.default(2000),
    /** Scans in flight at once across all endpoints; clamd's own default is MaxThreads 10. */
    maxConcurrentScans: z.number().int().positive().default(10),
    /** How long a message waits for a free scan slot before it fails as 'overloaded' (tempfail). */
    admissionWait: duration.default(10_000),
    /**
     * Larger messages fail as 'size-limit' without waiting for clamd to refuse them. Must not exceed clamd's
     * StreamMaxLength; 25M is what Debian's packaged clamd.conf sets (clamd's compiled-in default is 100M).
     */
    maxScanBytes: byteSize.default(25 * 1024 * 1024),
    /** Data bytes per INSTREAM chunk. */
    chunkSize: byteSize.default(64 * 1024),
  })
  .strict()
  // Only once both sizes are valid: otherwise a bad maxScanBytes would also be reported against chunkSize.
  .refine((c) => c.chunkSize > 0 && c.chunkSize <= c.maxScanBytes, {
    when: (payload) => payload.issues.length === 0,
    message: 'chunkSize must be more than 0 and at most maxScanBytes',
    path: ['chunkSize'],
  });

export type ClamavConfig = z.output<typeof clamavSchema>;
