// pino: JSON lines on stdout, or syslog lines (facility mail) through pino-syslog + pino-socket in a worker
// thread. Never written to a milter socket.
import { hostname } from 'node:os';
import { pino, type Logger } from 'pino';
import type { LogConfig } from './config/milter-config.js';

export type { Logger };

const FACILITY_MAIL = 2;
const MIN_WRITE_BYTES = 8192;
const FLUSH_INTERVAL_MS = 200;

export function createLogger(config: Pick<LogConfig, 'level'> & Partial<LogConfig>): Logger {
  const base = { level: config.level, base: { service: 'postfix-milter-ts' } };
  if (config.destination !== 'syslog' || !config.syslog) {
    // Asynchronous: a slow reader of stdout (journald under load, a full pipe) must not stall the milter;
    // the buffer is bounded (lines beyond it are dropped, not queued without end) and flushed on exit.
    // Lines are gathered up to MIN_WRITE_BYTES (one write per line costs a thread-pool round trip per message
    // under load) and flushed at least every FLUSH_INTERVAL_MS, so a quiet gateway's lines still show promptly.
    const destination = pino.destination({ dest: 1, sync: false, minLength: MIN_WRITE_BYTES, maxLength: 16 * 1024 * 1024 });
    const timer = setInterval(() => {
      try {
        destination.flush(); // a no-op while a write is running
      } catch {
        clearInterval(timer); // destroyed: stdout was closed
      }
    }, FLUSH_INTERVAL_MS).unref();
    return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  }
  // pino-syslog reads the epoch-milliseconds `time` pino writes by default, and pid and hostname.
  const { host, port, protocol, tag } = config.syslog;
  const transport = pino.transport({
    pipeline: [
      { target: 'pino-syslog', options: { modern: false, appname: tag, facility: FACILITY_MAIL, enablePipelining: true } },
      { target: 'pino-socket', options: { address: host, port, mode: protocol, reconnect: true } },
    ],
  });
  return pino({ ...base, base: { ...base.base, pid: process.pid, hostname: hostname() } }, transport);
}
