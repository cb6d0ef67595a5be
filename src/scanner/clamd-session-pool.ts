// Connections to one clamd endpoint, kept open between scans with IDSESSION (clamd ≥ 0.95): a new connection
// starts with `zIDSESSION\0`, then carries one INSTREAM request after another, each answered `<id>: …` with the
// request number counted from 1. Saves a connect, an accept and a close on both sides per message.
//
// - A scan takes the most recently used idle connection (LIFO, so surplus connections age out) or opens one.
// - Only a connection whose request ended in a clean or infected verdict, with nothing else received, comes back
//   (ClamdInstream decides); everything else is destroyed. At most `maxIdle` wait idle.
// - An idle connection is closed with `zEND\0` after SESSION_IDLE_MS, and dropped at once when clamd closes it,
//   resets it or sends anything while it is idle.
// - Whether the endpoint speaks IDSESSION is checked once, on a connection of its own (`zIDSESSION\0zPING\0` →
//   `1: PONG`), and again after the endpoint was marked down. A server that does not (a clamd-compatible one, or
//   a test double) gets a plain connection per scan, as before sessions.
import type net from 'node:net';
import { clamdSessionSupport, endClamdSession } from './clamd-command.js';
import { connectClamd, type ClamdEndpoint } from './clamd-endpoint.js';

/**
 * How long a session connection may wait idle before we close it. The upper bound is clamd's: it drops a
 * connection that sends nothing for its ReadTimeout (120 s compiled in, often 30 s) — and one it closes just as a
 * scan starts on it is a failed scan — so we must close first, well before. We stay far lower still because
 * reuse only pays under load, where a connection is taken again within milliseconds, while every idle session
 * is a descriptor in clamd's poll loop counted against its MaxConnectionQueueLength (past that clamd stops
 * accepting) and a descriptor here; a gateway between bursts goes back to holding none, so descriptor counts
 * return to their baseline soon after the traffic.
 */
export const SESSION_IDLE_MS = 250;

const IDSESSION_COMMAND = Buffer.from('zIDSESSION\0', 'latin1');

export interface SessionPoolOptions {
  /** Most idle connections kept; more are closed as they come back. */
  readonly maxIdle: number;
  /** Deadline for opening a connection (and for the IDSESSION check). */
  readonly connectTimeoutMs: number;
  /** SESSION_IDLE_MS unless given (tests). */
  readonly idleMs?: number;
}

/** A connection lent to one INSTREAM request. */
export interface ClamdConnection {
  readonly socket: net.Socket;
  /**
   * The request number clamd will prefix its reply with on a session connection; undefined on a plain
   * connection (one request, then closed).
   */
  readonly requestId: number | undefined;
  /** Taken from the idle pool rather than opened for this request. */
  readonly reused: boolean;
  /** Gives the connection back, once: kept for another request if `reusable`, otherwise destroyed. */
  release(reusable: boolean): void;
}

export type SessionSupport = 'unknown' | 'session' | 'plain';

interface SessionConnection {
  readonly socket: net.Socket;
  /** Requests sent on it so far. */
  requests: number;
  /** The pool generation it belongs to; connections of an older one are not taken back. */
  readonly generation: number;
  idleSince: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** While idle: drops the connection on any event (data, end, close, error). */
  onIdleEvent: (() => void) | undefined;
}

export class ClamdSessionPool {
  readonly #address: ClamdEndpoint;
  readonly #maxIdle: number;
  readonly #connectTimeoutMs: number;
  readonly #idleMs: number;
  /** Most recently used last. */
  readonly #idle: SessionConnection[] = [];
  #support: SessionSupport = 'unknown';
  #checking: Promise<SessionSupport> | undefined;
  #generation = 0;
  #closed = false;

  constructor(address: ClamdEndpoint, options: SessionPoolOptions) {
    this.#address = address;
    this.#maxIdle = options.maxIdle;
    this.#connectTimeoutMs = options.connectTimeoutMs;
    this.#idleMs = options.idleMs ?? SESSION_IDLE_MS;
  }

  /** Idle connections held now. */
  get idle(): number {
    return this.#idle.length;
  }

  get support(): SessionSupport {
    return this.#support;
  }

  /**
   * An idle session connection, or a new one. Rejects (ClamdConnectError, ClamdCommandError) when a new
   * connection cannot be opened or the endpoint does not answer the IDSESSION check: the endpoint is down.
   */
  async acquire(): Promise<ClamdConnection> {
    const idle = this.#takeIdle();
    if (idle !== undefined) return this.#lend(idle, true);
    const support = this.#support === 'unknown' ? await this.#checkSupport() : this.#support;
    const generation = this.#generation;
    const socket = await connectClamd(this.#address, this.#connectTimeoutMs);
    if (support === 'plain') return { socket, requestId: undefined, reused: false, release: () => socket.destroy() };
    // The socket passes between the pool and one request after another; an error emitted in between must not
    // go unheard (each holder listens for errors of its own while it has the socket).
    socket.on('error', ignore);
    // Sent at once, not with the first request: from here on clamd's ReadTimeout applies, not its shorter
    // CommandReadTimeout, while the message is still arriving.
    socket.write(IDSESSION_COMMAND);
    const connection: SessionConnection = { socket, requests: 0, generation, idleSince: 0, idleTimer: undefined, onIdleEvent: undefined };
    return this.#lend(connection, false);
  }

  /**
   * The endpoint was marked down: idle connections are closed (they are most likely dead), connections in use
   * are not taken back, and IDSESSION support is checked again before the next new connection.
   */
  reset(): void {
    this.#generation++;
    this.#support = 'unknown';
    this.#closeIdle();
  }

  /** Closes every idle connection; connections in use are closed when they come back. */
  close(): void {
    this.#closed = true;
    this.#closeIdle();
  }

  #lend(connection: SessionConnection, reused: boolean): ClamdConnection {
    connection.requests++;
    let released = false;
    return {
      socket: connection.socket,
      requestId: connection.requests,
      reused,
      release: (reusable) => {
        if (released) return;
        released = true;
        this.#giveBack(connection, reusable);
      },
    };
  }

  #giveBack(connection: SessionConnection, reusable: boolean): void {
    const socket = connection.socket;
    if (!reusable || !usable(socket)) {
      socket.destroy();
      return;
    }
    if (this.#closed || connection.generation !== this.#generation || this.#idle.length >= this.#maxIdle) {
      endClamdSession(socket);
      return;
    }
    const drop = (): void => this.#remove(connection, false);
    connection.onIdleEvent = drop;
    socket.on('data', drop);
    socket.on('end', drop);
    socket.on('close', drop);
    socket.on('error', drop);
    connection.idleSince = Date.now();
    connection.idleTimer = setTimeout(() => this.#remove(connection, true), this.#idleMs);
    connection.idleTimer.unref();
    this.#idle.push(connection);
  }

  /** The most recently used idle connection still fit for a request; stale ones met on the way are closed. */
  #takeIdle(): SessionConnection | undefined {
    for (;;) {
      const connection = this.#idle.pop();
      if (connection === undefined) return undefined;
      this.#unpark(connection);
      if (usable(connection.socket) && Date.now() - connection.idleSince < this.#idleMs) return connection;
      if (usable(connection.socket)) endClamdSession(connection.socket);
      else connection.socket.destroy();
    }
  }

  /** Takes an idle connection out of the pool: politely (`zEND\0`) when it expired, destroyed when it failed. */
  #remove(connection: SessionConnection, expired: boolean): void {
    const at = this.#idle.indexOf(connection);
    if (at >= 0) this.#idle.splice(at, 1);
    this.#unpark(connection);
    if (expired && usable(connection.socket)) endClamdSession(connection.socket);
    else connection.socket.destroy();
  }

  #unpark(connection: SessionConnection): void {
    clearTimeout(connection.idleTimer);
    connection.idleTimer = undefined;
    const drop = connection.onIdleEvent;
    if (drop === undefined) return;
    connection.onIdleEvent = undefined;
    const socket = connection.socket;
    socket.off('data', drop);
    socket.off('end', drop);
    socket.off('close', drop);
    socket.off('error', drop);
  }

  #closeIdle(): void {
    for (const connection of this.#idle.splice(0)) {
      this.#unpark(connection);
      endClamdSession(connection.socket);
    }
  }

  /** One check at a time; scans arriving meanwhile wait for its answer. */
  #checkSupport(): Promise<SessionSupport> {
    if (this.#checking !== undefined) return this.#checking;
    const generation = this.#generation;
    const checking = clamdSessionSupport(this.#address, this.#connectTimeoutMs).then(
      (sessions): SessionSupport => {
        const support = sessions ? 'session' : 'plain';
        if (this.#generation === generation) this.#support = support;
        return support;
      },
    );
    this.#checking = checking;
    const forget = (): void => {
      if (this.#checking === checking) this.#checking = undefined;
    };
    checking.then(forget, forget);
    return checking;
  }
}

function ignore(): void {}

/** Open both ways, with nothing of ours still buffered. */
function usable(socket: net.Socket): boolean {
  return !socket.destroyed && socket.writable && !socket.readableEnded && socket.writableLength === 0;
}
