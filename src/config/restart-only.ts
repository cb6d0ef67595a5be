// Config keys a reload (SIGHUP) cannot apply: they shape what is set up once at start (listeners, buffers, the
// logger, the top-offenders table). A reload that changes one applies the rest and says which changes wait for a
// restart. Every other milter.*, metrics.* and log.* key is applied by a reload (see RELOADED_KEYS); the
// README's Signals paragraph lists these.
import type { GatewayConfig } from './schema.js';

export const RESTART_ONLY_KEYS = [
  'milter.listen',
  'milter.socketMode',
  'milter.maxSessions',
  'milter.idleTimeout',
  'milter.maxPacketSize',
  'milter.tcpQuickAck',
  'metrics.enabled',
  'metrics.address',
  'metrics.port',
  'metrics.offenders.size',
  'metrics.offenders.window',
  'metrics.offenders.buckets',
  'log.level',
  'log.destination',
  'log.syslog.host',
  'log.syslog.port',
  'log.syslog.protocol',
  'log.syslog.tag',
] as const;

/** Keys of those sections that a reload applies: to sessions opened after it, or to the next stop. */
export const RELOADED_KEYS = ['milter.progressInterval', 'milter.shutdownGrace'] as const;

/** The restart-only keys whose value differs between the running config and a reloaded one. */
export function restartOnlyChanges(running: GatewayConfig, next: GatewayConfig): string[] {
  return RESTART_ONLY_KEYS.filter((key) => JSON.stringify(valueAt(running, key)) !== JSON.stringify(valueAt(next, key)));
}

function valueAt(config: GatewayConfig, key: string): unknown {
  let value: unknown = config;
  for (const part of key.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  return value;
}
