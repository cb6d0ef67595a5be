// The few settings that differ per gateway come from flags or the environment, so the file can be the same
// everywhere: where the milter listens, where clamd is, where metrics are served.
import type { ConfigOverride } from './load-config.js';

export interface OverrideFlags {
  readonly listen?: string | undefined;
  readonly clamd?: readonly string[] | undefined;
  readonly metricsListen?: string | undefined;
}

/** Flags win over the environment; both win over the file. */
export function configOverrides(flags: OverrideFlags, env: NodeJS.ProcessEnv = process.env): ConfigOverride[] {
  const out: ConfigOverride[] = [];
  const listen = flags.listen ?? env['MILTER_LISTEN'];
  if (listen !== undefined && listen !== '') {
    out.push({ path: ['milter', 'listen'], value: listen, origin: flags.listen !== undefined ? '--listen' : 'environment MILTER_LISTEN' });
  }
  const clamd = flags.clamd && flags.clamd.length > 0 ? flags.clamd : env['CLAMD_ENDPOINTS']?.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (clamd !== undefined && clamd.length > 0) {
    out.push({ path: ['clamav', 'endpoints'], value: [...clamd], origin: flags.clamd && flags.clamd.length > 0 ? '--clamd' : 'environment CLAMD_ENDPOINTS' });
  }
  const metrics = flags.metricsListen ?? env['METRICS_LISTEN'];
  if (metrics !== undefined && metrics !== '') {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(metrics);
    const origin = flags.metricsListen !== undefined ? '--metrics-listen' : 'environment METRICS_LISTEN';
    // HOST:PORT, [v6]:PORT; anything else is passed through whole so the schema's error names it.
    out.push({ path: ['metrics', 'address'], value: m ? (m[1] ?? m[2]) : metrics, origin });
    if (m) out.push({ path: ['metrics', 'port'], value: Number(m[3]), origin });
  }
  return out;
}
