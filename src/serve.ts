import { MilterServer } from '@postfix-milter-ts/protocol';
import type { GatewayConfig } from './config/schema.js';
import type { Logger } from './log.js';
import { createMessageLogFilter } from './message-log-filter.js';
import { loadQuickAck } from './tcp-quickack.js';

/** Runs the milter until SIGTERM/SIGINT, then lets messages in flight finish and exits 0. */
export async function serve(config: GatewayConfig, log: Logger): Promise<void> {
  const m = config.milter;
  let afterTcpRead: ((socket: import('node:net').Socket) => void) | undefined;
  if (m.tcpQuickAck) {
    const { setter, reason } = loadQuickAck();
    if (setter) afterTcpRead = (socket) => void setter(socket);
    else log.warn({ reason }, 'TCP_QUICKACK unavailable: each milter command over TCP may wait ~40 ms for a delayed ACK; a UNIX socket avoids this');
  }
  const server = new MilterServer(createMessageLogFilter(log), {
    maxSessions: m.maxSessions,
    idleTimeoutMs: m.idleTimeout,
    progressIntervalMs: m.progressInterval,
    maxFrameLength: m.maxPacketSize,
    unixSocketMode: parseInt(m.socketMode, 8),
    ...(afterTcpRead ? { afterTcpRead } : {}),
    observer: {
      protocolError: (session, err) => log.warn({ session, kind: err.kind }, `closing milter connection: ${err.message}`),
      hookError: (session, stage, err) => log.error({ session, stage, err }, 'filter failed; the stage was tempfailed'),
      overloaded: (reason) => log.warn({ reason }, 'connection refused with tempfail: server full'),
    },
  });
  const address = await server.listen(m.listen);
  log.info({ listen: address }, 'milter listening');

  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal, sessions: server.sessionCount }, 'stopping: no new connections, finishing messages in flight');
      server.close(m.shutdownGrace).then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info('stopped');
}
