import { closeSync } from 'node:fs';
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { DEFAULT_MAX_FRAME_LENGTH } from './constants.js';
import { MilterProtocolError } from './errors.js';
import { Verdict, type MilterFilter } from './filter.js';
import { FrameDecoder } from './frame-decoder.js';
import { formatListenAddress, parseListenAddress, type ListenAddress } from './listen-address.js';
import { MilterSession, type SessionObserver } from './session.js';

export interface ServerObserver extends SessionObserver {
  /** A connection arrived while the server was full; it is refused (tempfail at CONNECT, or dropped). */
  overloaded?(reason: 'max-sessions', outcome: 'tempfailed' | 'dropped'): void;
  /**
   * A session opened. `active` counts the sessions doing work; an `overflow` session only answers tempfail at
   * CONNECT and is not counted in it.
   */
  opened?(sessionId: string, active: number, remote: string, overflow: boolean): void;
}

export interface MilterServerOptions {
  /** Concurrent sessions served; one more connection than this is tempfailed at CONNECT. Default 1000. */
  readonly maxSessions?: number;
  /** A connection silent this long while no hook runs is closed (ms). Default 7210 s, as libmilter. */
  readonly idleTimeoutMs?: number;
  /**
   * A packet must be complete this long after its first byte arrived (ms), or the connection is closed. Any
   * byte re-arms the idle timer, so without this a peer trickling one byte a second would hold a session (and
   * its buffered bytes) for as long as it likes. Postfix and Sendmail write a packet at once. Default: the
   * idle timeout, at most 60 s.
   */
  readonly packetTimeoutMs?: number;
  /**
   * The first packet (OPTNEG) must be complete this long after the connection is accepted (ms), or it is closed:
   * Postfix and Sendmail negotiate at once, and a silent connection would hold a session slot until the idle
   * timeout. Default: the packet timeout, at most 10 s.
   */
  readonly negotiationTimeoutMs?: number;
  /** Largest packet accepted; a larger length field closes the connection. Default 1 MiB. */
  readonly maxFrameLength?: number;
  /**
   * Bytes of incomplete packets held for all connections together. Past it, the connection whose packet would
   * hold more is closed: without it, every session could hold a packet of maxFrameLength less a byte. MTAs
   * write a packet at once, so their partial packets are small and short-lived. Default 64 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** Interval of progress packets while a hook works (ms). Default 5000 (Sendmail's read timeout is 10 s). */
  readonly progressIntervalMs?: number;
  /** Mode of a UNIX socket file. Default 0o660. */
  readonly unixSocketMode?: number;
  readonly observer?: ServerObserver;
  /**
   * Called for a TCP connection when it opens and after every read that does not end with a command whose reply
   * the MTA waits for (that reply carries the ACK). Sendmail writes the macro packet and the
   * command as two small writes; with Nagle on its side, the command waits for our delayed ACK (~40 ms).
   * Postfix shows no such stall in a single session, but under concurrent load quick ACKs still raised
   * throughput through Postfix by about 1.5× (measured), so they are not switched off for it.
   * Setting TCP_QUICKACK after each read (Linux clears it) removes the stall; Node has no API for it, so
   * the application may pass a native implementation here. The package itself stays dependency-free.
   */
  readonly afterTcpRead?: (socket: net.Socket) => void;
  /**
   * Connections that can be accepted per event-loop turn. libuv accepts one connection per readiness event of
   * a listening socket, so under load MTA connections wait in the kernel's accept queue, one loop turn each (at
   * 50 concurrent SMTP sessions through Postfix, 10–33 were pending and OPTNEG took 20 ms at the median). The
   * socket plus N - 1 listening handles on duplicates of its descriptor accept up to N per turn. Takes effect
   * only with `duplicateDescriptor`. Default 1.
   */
  readonly acceptsPerTurn?: number;
  /**
   * dup(2): a new descriptor for the same open socket, or a negative number on failure. Node has no API for
   * it; the application may pass a native implementation (the package stays dependency-free).
   */
  readonly duplicateDescriptor?: (fd: number) => number;
}

interface Connection {
  readonly socket: net.Socket;
  readonly session: MilterSession<unknown>;
}

/** Sessions still in a message when a graceful close reached its deadline. */
export interface CloseOutcome {
  /**
   * Answered tempfail, then closed: those waiting for our reply (end of message, or another stage), and those
   * between two commands of their message whose next command came within LAST_COMMAND_MS.
   */
  readonly tempfailed: number;
  /** Between two commands of a message and silent past LAST_COMMAND_MS: closed; the MTA applies its milter default action. */
  readonly cut: number;
}

function inFlight(c: Connection): boolean {
  return c.session.inMessage || c.session.isBusy;
}

// How long a closing server waits for its last replies to be flushed before it drops the connections.
const FLUSH_MS = 1000;
// At the deadline, how long a session between two commands of its message may take to send its next one (to be
// answered tempfail). An MTA streaming a message sends it within moments; one waiting on a slow client may not.
const LAST_COMMAND_MS = 2000;

// Packets a session may have waiting (possible only with no-reply steps) before reading pauses, by count and
// by bytes: with body replies waived an MTA sends 64 KB body packets back to back, and 256 of them held per
// session would be 16 MB; the rest waits in the kernel, and the MTA's writes block until we read again.
const MAX_QUEUED_FRAMES = 256;
const MAX_QUEUED_BYTES = 256 * 1024;

// Replies waiting to be sent before reading pauses: a peer that sends commands but never reads its replies
// must not make us buffer replies without bound.
const MAX_WRITE_BACKLOG = 1024 * 1024;

// An MTA (or test tool) may close its sending side right after end of message and wait for the verdict: the
// socket stays writable after EOF, and the session ends once what arrived has been answered.
const HALF_OPEN = { allowHalfOpen: true } as const;

// Connections beyond maxSessions still get a polite 4xx, up to this many; past that they are dropped.
const OVERFLOW_ALLOWANCE = 64;

const OVERLOAD_FILTER: MilterFilter<undefined> = {
  connect: () => Verdict.tempfail({ code: 451, xcode: '4.3.2', text: 'Too many concurrent sessions at the mail filter, try again later' }),
};

/**
 * Accepts MTA connections and runs one MilterSession per connection. Postfix keeps one milter connection per
 * SMTP session, so sessions live for many messages; closing is graceful (messages in flight finish).
 */
export class MilterServer<S> {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly options: Required<Omit<MilterServerOptions, 'observer' | 'afterTcpRead' | 'duplicateDescriptor' | 'progressIntervalMs'>> & {
    observer: ServerObserver;
    progressIntervalMs: number;
  };
  private readonly afterTcpRead: ((socket: net.Socket) => void) | undefined;
  private readonly duplicateDescriptor: ((fd: number) => number) | undefined;
  /** Listening handles on duplicates of the server's descriptor (see acceptsPerTurn). */
  private readonly extraListeners: net.Server[] = [];
  private filter: MilterFilter<S>;
  private nextId = 1;
  private active = 0;
  /** Bytes of incomplete packets held by all connections' decoders. */
  private bufferedBytes = 0;
  private listening: ListenAddress | undefined;
  private closing: Promise<CloseOutcome> | undefined;
  /** When a graceful close stops waiting for messages in flight (epoch ms). */
  private deadline = Infinity;
  /** The inode of the UNIX socket file we bound, so that closing removes only that file. */
  private socketInode: number | undefined;

  constructor(filter: MilterFilter<S>, options: MilterServerOptions = {}) {
    this.filter = filter;
    this.options = {
      maxSessions: options.maxSessions ?? 1000,
      idleTimeoutMs: options.idleTimeoutMs ?? 7_210_000,
      packetTimeoutMs: options.packetTimeoutMs ?? Math.min(options.idleTimeoutMs ?? 7_210_000, 60_000),
      negotiationTimeoutMs: options.negotiationTimeoutMs ?? Math.min(options.packetTimeoutMs ?? options.idleTimeoutMs ?? 7_210_000, 10_000),
      maxFrameLength: options.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH,
      maxBufferedBytes: options.maxBufferedBytes ?? 64 * 1024 * 1024,
      progressIntervalMs: options.progressIntervalMs ?? 5000,
      unixSocketMode: options.unixSocketMode ?? 0o660,
      acceptsPerTurn: options.acceptsPerTurn ?? 1,
      observer: options.observer ?? {},
    };
    this.afterTcpRead = options.afterTcpRead;
    this.duplicateDescriptor = options.duplicateDescriptor;
    this.server = net.createServer(HALF_OPEN, (socket) => this.accept(socket));
  }

  /** Sessions opened from now on use this filter; sessions already open keep theirs. */
  setFilter(filter: MilterFilter<S>): void {
    this.filter = filter;
  }

  /** Sessions opened from now on send progress at this interval (ms); sessions already open keep theirs. */
  setProgressInterval(ms: number): void {
    this.options.progressIntervalMs = ms;
  }

  /** Sessions open now (overflow refusals included). */
  get sessionCount(): number {
    return this.connections.size;
  }

  /** Listens on a Postfix/Sendmail-style address; resolves to the address actually bound (port 0 → real port). */
  async listen(spec: string): Promise<string> {
    const address = parseListenAddress(spec);
    if (address.kind === 'unix') await removeStaleSocket(address.path);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.server.once('error', onError);
      const done = (): void => {
        this.server.off('error', onError);
        resolve();
      };
      if (address.kind === 'unix') this.server.listen(address.path, done);
      else this.server.listen({ host: address.host, port: address.port, ipv6Only: net.isIP(address.host) === 6 }, done);
    });
    if (address.kind === 'unix') {
      await chmod(address.path, this.options.unixSocketMode);
      this.socketInode = (await lstat(address.path)).ino;
      this.listening = address;
    } else {
      const bound = this.server.address() as net.AddressInfo;
      this.listening = { kind: 'tcp', host: address.host, port: bound.port };
    }
    await this.addAcceptHandles();
    return formatListenAddress(this.listening);
  }

  /** Listening handles that accept on this server's socket: the main one plus its duplicates. */
  get acceptHandles(): number {
    return 1 + this.extraListeners.length;
  }

  /** Adds acceptsPerTurn - 1 listening handles on duplicates of the bound socket; stops at the first failure. */
  private async addAcceptHandles(): Promise<void> {
    const fd = (this.server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (!this.duplicateDescriptor || typeof fd !== 'number' || fd < 0) return;
    while (this.acceptHandles < this.options.acceptsPerTurn) {
      const copy = this.duplicateDescriptor(fd);
      if (copy < 0) return;
      const extra = net.createServer(HALF_OPEN, (socket) => this.accept(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          extra.once('error', reject);
          extra.listen({ fd: copy }, () => {
            extra.off('error', reject);
            resolve();
          });
        });
      } catch {
        closeSync(copy);
        return;
      }
      // Should a duplicate ever fail, it stops accepting and the other handles carry on (an 'error' without a
      // listener would be uncaught).
      extra.on('error', () => extra.close());
      this.extraListeners.push(extra);
    }
  }

  /**
   * Stops accepting, closes sessions between messages at once, lets the others finish the message they are in,
   * and resolves as soon as none is left in a message (an MTA that keeps its side of an idle connection open
   * would otherwise hold the stop until the deadline). At the deadline, a
   * session waiting for our reply gets tempfail; one between two commands of its message is cut, and the MTA
   * applies its milter default action at its next command.
   */
  close(deadlineMs = 30_000): Promise<CloseOutcome> {
    // Called again while closing: an earlier deadline applies (an administrator's second SIGTERM means "now").
    this.deadline = Math.min(this.deadline, Date.now() + deadlineMs);
    this.closing ??= this.drain();
    return this.closing;
  }

  /** Sessions in a message or running a hook: what a graceful close waits for. */
  get sessionsInFlight(): number {
    let n = 0;
    for (const c of this.connections) if (inFlight(c)) n++;
    return n;
  }

  private async drain(): Promise<CloseOutcome> {
    const stopped = Promise.all([this.server, ...this.extraListeners].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (;;) {
      for (const c of this.connections) if (!inFlight(c)) c.session.abandon();
      if (this.sessionsInFlight === 0 || Date.now() >= this.deadline) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const atDeadline = [...this.connections].filter(inFlight);
    for (const c of atDeadline) c.session.refuseAtNextReply();
    const lastCommandBy = Date.now() + LAST_COMMAND_MS;
    while (atDeadline.some((c) => !c.session.isEnded) && Date.now() < lastCommandBy) await new Promise((r) => setTimeout(r, 10));
    const outcome = { tempfailed: 0, cut: 0 };
    for (const c of atDeadline) {
      if (c.session.tempfailedAt !== undefined) outcome.tempfailed++;
      else if (!c.session.isEnded) outcome.cut++;
    }
    // Abandoned sessions close once their last reply is flushed; a peer that does not read cannot hold us.
    const flushBy = Date.now() + FLUSH_MS;
    while (this.connections.size > 0 && Date.now() < flushBy) await new Promise((r) => setTimeout(r, 10));
    for (const c of this.connections) c.socket.destroy();
    await stopped;
    // Only our own socket file: while we drained, a new milter may have bound the same path (closing the
    // listener already removed ours), and removing its socket would cut the MTA off from it.
    if (this.listening?.kind === 'unix') {
      const path = this.listening.path;
      const ours = await lstat(path).then((st) => st.isSocket() && st.ino === this.socketInode, () => false);
      if (ours) await unlink(path).catch(() => undefined);
    }
    return outcome;
  }

  private accept(socket: net.Socket): void {
    const { observer } = this.options;
    if (this.closing) {
      socket.destroy();
      return;
    }
    let filter: MilterFilter<unknown> = this.filter as MilterFilter<unknown>;
    if (this.active >= this.options.maxSessions) {
      const drop = this.connections.size >= this.options.maxSessions + OVERFLOW_ALLOWANCE;
      observer.overloaded?.('max-sessions', drop ? 'dropped' : 'tempfailed');
      if (drop) {
        socket.destroy();
        return;
      }
      filter = OVERLOAD_FILTER as MilterFilter<unknown>;
    }
    const counts = filter !== OVERLOAD_FILTER;
    if (counts) this.active++;
    const isTcp = socket.remoteFamily !== undefined && socket.remoteFamily !== '';
    const afterRead = isTcp ? this.afterTcpRead : undefined;
    if (isTcp) socket.setNoDelay(true);
    afterRead?.(socket);

    const id = `${process.pid.toString(36)}-${(this.nextId++).toString(36)}`;
    const decoder = new FrameDecoder(this.options.maxFrameLength);
    const session = new MilterSession(filter, {
      write: (data) => {
        if (socket.destroyed) return;
        socket.write(data);
        if (socket.writableLength > MAX_WRITE_BACKLOG) socket.pause();
      },
      // After QUIT or a protocol error: FIN, then the descriptor is closed once it is flushed. Left half-open, a
      // peer that never closes its side would hold the descriptor and a session slot until the idle timeout.
      end: () => socket.end(() => socket.destroy()),
    }, {
      id,
      progressIntervalMs: this.options.progressIntervalMs,
      observer,
      drained: () => {
        if (socket.writableLength <= MAX_WRITE_BACKLOG) socket.resume();
      },
    });
    const conn: Connection = { socket, session };
    this.connections.add(conn);
    observer.opened?.(id, this.active, `${socket.remoteAddress ?? 'unix'}:${socket.remotePort ?? 0}`, !counts);

    socket.setTimeout(this.options.idleTimeoutMs);
    socket.on('timeout', () => {
      // A long scan is not idleness: the session sends progress, and its reply re-arms the timer.
      if (session.isBusy) return;
      session.fail(new MilterProtocolError('timeout', `no command from the MTA for ${this.options.idleTimeoutMs} ms`));
      socket.destroy();
    });
    let negotiationTimer: NodeJS.Timeout | undefined = setTimeout(() => {
      negotiationTimer = undefined;
      session.fail(new MilterProtocolError('timeout', `no complete first packet (OPTNEG) ${this.options.negotiationTimeoutMs} ms after connecting`));
      socket.destroy();
    }, this.options.negotiationTimeoutMs);
    const clearNegotiationTimer = (): void => {
      if (negotiationTimer !== undefined) clearTimeout(negotiationTimer);
      negotiationTimer = undefined;
    };
    // Deadline for the packet being received: armed at its first byte, cleared when no partial packet is left.
    let packetTimer: NodeJS.Timeout | undefined;
    const clearPacketTimer = (): void => {
      if (packetTimer !== undefined) clearTimeout(packetTimer);
      packetTimer = undefined;
    };
    const armPacketTimer = (): void => {
      packetTimer = setTimeout(() => {
        packetTimer = undefined;
        // Reading paused by us (packets queued behind a busy hook): the rest may be waiting in the kernel.
        if (socket.isPaused()) {
          armPacketTimer();
          return;
        }
        session.fail(
          new MilterProtocolError('timeout', `a packet was not complete ${this.options.packetTimeoutMs} ms after its first byte (${decoder.bufferedBytes} bytes received)`),
        );
        socket.destroy();
      }, this.options.packetTimeoutMs);
    };
    socket.on('data', (chunk: Buffer) => {
      let frames;
      const heldBefore = decoder.bufferedBytes;
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        clearPacketTimer();
        session.fail(e);
        socket.destroy();
        return;
      }
      this.bufferedBytes += decoder.bufferedBytes - heldBefore;
      if (decoder.bufferedBytes > heldBefore && this.bufferedBytes > this.options.maxBufferedBytes) {
        clearPacketTimer();
        session.fail(
          new MilterProtocolError('frame-too-large', `incomplete packets of all connections hold more than ${this.options.maxBufferedBytes} bytes; closing the one that grew (${decoder.bufferedBytes} bytes)`),
        );
        socket.destroy();
        return;
      }
      if (frames.length > 0) {
        clearPacketTimer();
        clearNegotiationTimer();
      }
      if (decoder.bufferedBytes > 0) {
        if (packetTimer === undefined) armPacketTimer();
      } else clearPacketTimer();
      // An MTA that now waits for our reply gets the ACK with it; otherwise it may be holding its next packet.
      const last = frames[frames.length - 1];
      if (afterRead !== undefined && (decoder.bufferedBytes > 0 || last === undefined || !session.awaitsReply(last))) afterRead(socket);
      if (frames.length > 0) session.receive(frames);
      if (session.queuedFrames > MAX_QUEUED_FRAMES || session.queuedBytes > MAX_QUEUED_BYTES) socket.pause();
    });
    socket.on('drain', () => {
      if (session.queuedFrames <= MAX_QUEUED_FRAMES && session.queuedBytes <= MAX_QUEUED_BYTES) socket.resume();
    });
    socket.on('end', () => session.inputEnded());
    socket.on('error', () => {
      // Reset by the peer and similar: the 'close' event that follows does the cleanup.
    });
    socket.on('close', () => {
      clearPacketTimer();
      clearNegotiationTimer();
      this.bufferedBytes -= decoder.bufferedBytes;
      this.connections.delete(conn);
      if (counts) this.active--;
      session.transportClosed();
    });
  }
}

/** A socket file left by a crashed run is replaced; one a live process listens on is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) {
    const err = new Error(`${path} is in use by another process`) as NodeJS.ErrnoException;
    err.code = 'EADDRINUSE';
    throw err;
  }
  await unlink(path);
}
