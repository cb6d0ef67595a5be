import { parseListenAddress } from '@postfix-milter-ts/protocol';
import { z } from 'zod';
import { byteSize, duration, parsedString } from './units.js';

const listenAddress = parsedString(parseListenAddress);

/** The milter listener and its limits. Port 10031 is used by no common milter or exporter. */
export const milterSchema = z
  .object({
    listen: listenAddress.default('inet:127.0.0.1:10031'),
    /** Mode of a UNIX socket (octal string as in chmod). */
    socketMode: z.string().regex(/^0?[0-7]{3}$/, 'an octal mode such as 0660').default('0660'),
    maxSessions: z.number().int().positive().default(500),
    idleTimeout: duration.default(600_000),
    /** Progress packets while a hook works; below Sendmail's 10 s read timeout and Postfix's 30 s. */
    progressInterval: duration.default(5000),
    maxPacketSize: byteSize.default(1024 * 1024),
    /** TCP_QUICKACK after each read: removes the ~40 ms Nagle/delayed-ACK stall per command over TCP. */
    tcpQuickAck: z.boolean().default(true),
    /** How long SIGTERM waits for messages in flight. */
    shutdownGrace: duration.default(30_000),
  })
  .strict();

export const logSchema = z
  .object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    /**
     * `stdout`: JSON lines (journald or a container runtime collects them; set SyslogFacility=mail in the unit).
     * `syslog`: RFC 3164 lines, facility mail, to a syslog daemon over UDP or TCP (rsyslog/syslog-ng on :514).
     */
    destination: z.enum(['stdout', 'syslog']).default('stdout'),
    syslog: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(1).max(65535).default(514),
        protocol: z.enum(['udp', 'tcp']).default('udp'),
        /** The program name in each line. */
        tag: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, 'a short program name').default('postfix-milter-ts'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type LogConfig = z.output<typeof logSchema>;
