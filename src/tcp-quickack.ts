// TCP_QUICKACK for the milter's TCP connections, through libc's setsockopt via koffi (a maintained FFI with
// prebuilt binaries). Postfix and Sendmail write the macro packet and the command as two small writes; with
// Nagle on their side the command waits for our delayed ACK of the macro packet, ~40 ms per command.
// Quick-ACK mode makes our kernel acknowledge at once; Linux leaves that mode again on its own, so it is set
// after every read. Where the FFI or the option is unavailable, the milter works as before (slower over TCP;
// UNIX sockets do not have the problem).
import type { Socket } from 'node:net';
import { libcFunction } from './libc.js';

const IPPROTO_TCP = 6;
const TCP_QUICKACK = 12;

type SetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number) => number;

export interface QuickAck {
  /** Sets TCP_QUICKACK on the socket; returns false when it could not. */
  (socket: Socket): boolean;
}

let cached: QuickAck | null | undefined;

/** The quick-ACK setter, or null with the reason logged by the caller when this platform cannot do it. */
export function loadQuickAck(): { setter: QuickAck | null; reason: string | undefined } {
  if (cached !== undefined) return { setter: cached, reason: cached ? undefined : 'unavailable' };
  const { fn: setsockopt, reason } = libcFunction<SetSockOpt>('int setsockopt(int fd, int level, int name, const void *value, uint32_t length)');
  if (!setsockopt) {
    cached = null;
    return { setter: null, reason: `TCP_QUICKACK unavailable: ${reason}` };
  }
  const one = Buffer.alloc(4);
  one.writeInt32LE(1, 0);
  cached = (socket: Socket): boolean => {
    // Node keeps the descriptor on the internal handle; it is stable for the socket's lifetime.
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, one, 4) === 0;
  };
  return { setter: cached, reason: undefined };
}
