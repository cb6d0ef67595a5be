import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout (pino); never written to a milter socket. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'postfix-milter-ts' }, timestamp: pino.stdTimeFunctions.isoTime });
}
