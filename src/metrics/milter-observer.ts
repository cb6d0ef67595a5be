// Connects the protocol server's observer hooks to the gateway metrics: connections, sessions in flight,
// protocol errors, failed hooks and connections refused because the server was full.
import type { ServerObserver } from '@postfix-milter-ts/protocol';
import type { GatewayMetrics } from './gateway-metrics.js';

/**
 * A ServerObserver that records metrics, then calls the same hook of `next` (e.g. the one that logs), so the
 * server needs only one observer.
 */
export function metricsObserver(metrics: GatewayMetrics, next: ServerObserver = {}): ServerObserver {
  // Overflow sessions (they only answer tempfail at CONNECT) are not work in flight: not counted.
  const counted = new Set<string>();
  return {
    ...next,
    overloaded(reason, outcome) {
      metrics.overload(reason);
      next.overloaded?.(reason, outcome);
    },
    opened(sessionId, active, remote, overflow) {
      metrics.connectionAccepted();
      if (!overflow) counted.add(sessionId);
      // Counted here, not taken from the server: the server counts a session until its socket closes, which comes
      // after the session's `closed`, so a session opening in between would read one too many until the next.
      metrics.sessionOpened(counted.size);
      next.opened?.(sessionId, active, remote, overflow);
    },
    closed(sessionId) {
      if (counted.delete(sessionId)) metrics.sessionClosed();
      next.closed?.(sessionId);
    },
    protocolError(sessionId, error) {
      metrics.protocolError(error.kind);
      next.protocolError?.(sessionId, error);
    },
    hookError(sessionId, stage, error) {
      metrics.protocolError('handler-error');
      next.hookError?.(sessionId, stage, error);
    },
  };
}
