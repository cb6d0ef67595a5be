// pino: JSON lines on stdout, or the same lines as syslog messages (facility mail) to a syslog daemon. Never
// written to a milter socket.
import { hostname } from 'node:os';
import { pino, type Logger } from 'pino';
import type { LogConfig } from './config/milter-config.js';
import { SyslogDestination } from './syslog-destination.js';

export type { Logger };

const MIN_WRITE_BYTES = 8192;
const FLUSH_INTERVAL_MS = 200;

export interface LogOutput {
  readonly log: Logger;
  /** Writes out what is buffered, within `timeoutMs`; the process may then exit. */
  close(timeoutMs: number): Promise<void>;
}

export function createLogger(config: Pick<LogConfig, 'level'> & Partial<LogConfig>): LogOutput {
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
    const log = pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, destination);
    return {
      log,
      close: async () => {
        clearInterval(timer);
        log.flush();
      },
    };
  }
  // The syslog message carries the time, host and pid; the JSON keeps pino's epoch-milliseconds `time`.
  const { host, port, protocol, tag } = config.syslog;
  const destination = new SyslogDestination({ host, port, protocol, tag, hostname: hostname(), pid: process.pid });
  return { log: pino(base, destination), close: (timeoutMs) => destination.close(timeoutMs) };
}
