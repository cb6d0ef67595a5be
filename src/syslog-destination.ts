// Log lines to a syslog daemon over UDP or TCP, from the main thread: RFC 3164 messages with facility mail, one
// per datagram, or one per line over TCP (daemons split a TCP stream at newlines). Sending never blocks and
// memory is bounded: lines beyond MAX_QUEUED_BYTES while the daemon is away are dropped (and counted in the next
// line that gets through). Nothing here keeps a stopping process alive.
//
// pino-syslog + pino-socket did this in a worker thread until a TCP receiver that was gone held the process at
// exit for good (pino's exit flush waits for the worker, which waits for a connection), and over TCP their
// messages ran together without a newline.
import dgram from 'node:dgram';
import net from 'node:net';

export interface SyslogDestinationOptions {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'udp' | 'tcp';
  /** The program name before `[pid]:`. */
  readonly tag: string;
  readonly hostname: string;
  readonly pid: number;
  /** Clock (tests). Default: now. */
  readonly now?: () => Date;
}

const FACILITY_MAIL = 2;
// pino level → syslog severity: trace and debug → debug (7), info (6), warn → warning (4), error (3), fatal → crit (2).
const SEVERITY: Readonly<Record<number, number>> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MAX_QUEUED_BYTES = 1024 * 1024;
// The largest UDP payload over IPv4.
const MAX_DATAGRAM_BYTES = 65_507;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

const two = (n: number): string => String(n).padStart(2, '0');

/** One pino JSON line as an RFC 3164 message (without a trailing newline). */
export function formatSyslogMessage(line: string, options: Pick<SyslogDestinationOptions, 'tag' | 'hostname' | 'pid'>, at: Date): string {
  const json = line.endsWith('\n') ? line.slice(0, -1) : line;
  const level = Number(/"level":(\d+)/.exec(json)?.[1] ?? 30);
  const priority = FACILITY_MAIL * 8 + (SEVERITY[level] ?? 6);
  const timestamp = `${MONTHS[at.getMonth()] ?? 'Jan'} ${String(at.getDate()).padStart(2, ' ')} ${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
  return `<${priority}>${timestamp} ${options.hostname} ${options.tag}[${options.pid}]: ${json}`;
}

/** A pino destination stream (it only needs `write`). */
export class SyslogDestination {
  private readonly options: SyslogDestinationOptions;
  private readonly udp: dgram.Socket | undefined;
  private tcp: net.Socket | undefined;
  private connected = false;
  private closing = false;
  private reconnectMs = RECONNECT_MIN_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** TCP messages waiting for a connection, oldest first. */
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private udpInFlight = 0;

  constructor(options: SyslogDestinationOptions) {
    this.options = options;
    if (options.protocol === 'udp') {
      this.udp = dgram.createSocket(net.isIPv6(options.host) ? 'udp6' : 'udp4');
      this.udp.on('error', () => undefined); // an unreachable daemon: the line is lost, as UDP syslog does
      this.udp.unref();
    } else {
      this.connect();
    }
  }

  write(line: string): boolean {
    if (this.closing) return true;
    let message = formatSyslogMessage(line, this.options, this.options.now?.() ?? new Date());
    if (this.dropped > 0 && this.connected && this.tcp !== undefined && this.tcp.writableLength <= MAX_QUEUED_BYTES) {
      message = `${formatSyslogMessage(JSON.stringify({ level: 40, msg: `${this.dropped} log lines dropped while the syslog daemon was unreachable` }), this.options, new Date())}\n${message}`;
      this.dropped = 0;
    }
    if (this.udp) {
      const datagram = Buffer.from(message).subarray(0, MAX_DATAGRAM_BYTES);
      this.udpInFlight++;
      this.udp.send(datagram, this.options.port, this.options.host, () => this.udpInFlight--);
      return true;
    }
    const bytes = Buffer.from(`${message}\n`);
    if (this.connected && this.tcp) {
      // A daemon that stops reading: its backlog stays bounded too.
      if (this.tcp.writableLength > MAX_QUEUED_BYTES) this.dropped++;
      else this.tcp.write(bytes);
      return true;
    }
    this.queue.push(bytes);
    this.queuedBytes += bytes.length;
    while (this.queuedBytes > MAX_QUEUED_BYTES && this.queue.length > 1) {
      this.queuedBytes -= this.queue.shift()?.length ?? 0;
      this.dropped++;
    }
    return true;
  }

  /** Sends what is queued, within `timeoutMs`, then closes; lines written after this are dropped. */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    const deadline = Date.now() + timeoutMs;
    if (this.udp) {
      while (this.udpInFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      this.udp.close();
      return;
    }
    const socket = this.tcp;
    if (socket === undefined) return;
    if (!this.connected) {
      socket.destroy();
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.destroy();
        resolve();
      }, Math.max(0, deadline - Date.now()));
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }

  private connect(): void {
    const socket = net.connect({ host: this.options.host, port: this.options.port });
    this.tcp = socket;
    socket.unref();
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.connected = true;
      this.reconnectMs = RECONNECT_MIN_MS;
      for (const b of this.queue) socket.write(b);
      this.queue = [];
      this.queuedBytes = 0;
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => {
      this.connected = false;
      if (this.closing) return;
      this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectMs);
      this.reconnectTimer.unref();
      this.reconnectMs = Math.min(RECONNECT_MAX_MS, this.reconnectMs * 2);
    });
  }
}
