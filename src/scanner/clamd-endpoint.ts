// Where a clamd listens, written as in Postfix (`unix:/run/clamav/clamd.ctl`, `inet:127.0.0.1:3310`,
// `inet6:[::1]:3310`) or clamav-milter (`tcp:host:port`), and opening a connection to it with a deadline.
import net from 'node:net';
import { formatListenAddress, parseListenAddress, type ListenAddress } from '@postfix-milter-ts/protocol';

export type ClamdEndpoint = ListenAddress;

export class ClamdEndpointError extends Error {
  constructor(spec: string, why: string) {
    super(`clamd endpoint ${JSON.stringify(spec)}: ${why} (expected unix:/PATH, inet:HOST:PORT or inet6:[HOST]:PORT)`);
    this.name = 'ClamdEndpointError';
  }
}

export function parseClamdEndpoint(spec: string): ClamdEndpoint {
  const normalized = spec.toLowerCase().startsWith('tcp:') ? `inet:${spec.slice(4)}` : spec;
  let address: ListenAddress;
  try {
    address = parseListenAddress(normalized);
  } catch (e) {
    throw new ClamdEndpointError(spec, (e as Error).message.replace(/^listen address "[^"]*": /, '').replace(/ \(expected .*\)$/, ''));
  }
  if (address.kind === 'tcp' && address.port === 0) throw new ClamdEndpointError(spec, 'port 0 is not a port clamd can listen on');
  return address;
}

export function formatClamdEndpoint(endpoint: ClamdEndpoint): string {
  return formatListenAddress(endpoint);
}

/** Why a connection could not be opened; `timeout` when the connect deadline passed. */
export class ClamdConnectError extends Error {
  readonly timedOut: boolean;
  constructor(endpoint: ClamdEndpoint, why: string, timedOut: boolean) {
    super(`cannot connect to clamd at ${formatClamdEndpoint(endpoint)}: ${why}`);
    this.name = 'ClamdConnectError';
    this.timedOut = timedOut;
  }
}

/**
 * Opens a connection, or rejects with a ClamdConnectError. A full clamd queue shows up as a connect that never
 * completes (clamd stops accepting; no error reply exists), hence our own deadline.
 */
export function connectClamd(endpoint: ClamdEndpoint, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = endpoint.kind === 'unix' ? net.connect({ path: endpoint.path }) : net.connect({ host: endpoint.host, port: endpoint.port });
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new ClamdConnectError(endpoint, `no connection within ${timeoutMs} ms`, true));
    }, timeoutMs);
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(new ClamdConnectError(endpoint, err.message, false));
    };
    const onConnect = (): void => {
      cleanup();
      if (endpoint.kind === 'tcp') socket.setNoDelay(true);
      resolve(socket);
    };
    function cleanup(): void {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('connect', onConnect);
    }
    socket.once('error', onError);
    socket.once('connect', onConnect);
  });
}
