// The metrics listener: its own small HTTP server (not the milter port), loopback by default.
//   GET /metrics    Prometheus text exposition
//   GET /healthz    200 `ok`, or 503 with the reason (text/plain) when the health provider says unhealthy
//   GET /offenders  JSON list of the clients refused most often in the window (?limit=N)
// Anything else is 404; methods other than GET/HEAD are 405.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { HealthReport } from './gateway-metrics.js';
import type { Offender, TopOffenders } from './top-offenders.js';

/** What /metrics needs: an exposition and its content type (GatewayMetrics, or any prom-client Registry). */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export type HealthProvider = () => HealthReport | Promise<HealthReport>;

export interface MetricsServerOptions {
  readonly metrics: MetricsSource;
  readonly health: HealthProvider;
  readonly offenders?: TopOffenders;
  /** Called when a request handler throws (e.g. a failing collect()); the client gets a 500 either way. */
  readonly onError?: (error: unknown) => void;
  /** A connection idle this long, or a request not complete by then, is closed (ms). Default 10 s. */
  readonly idleTimeoutMs?: number;
}

export interface OffendersBody {
  readonly windowSeconds: number;
  readonly capacity: number;
  readonly offenders: readonly Offender[];
}

/** The metrics listener could not bind; `code` is the system error's (EADDRINUSE, EACCES …). */
export class MetricsListenError extends Error {
  override readonly name = 'MetricsListenError';
  readonly code: string | undefined;

  constructor(address: string, port: number, cause: NodeJS.ErrnoException) {
    super(`metrics listener: cannot listen on ${address}:${port}: ${cause.message}`);
    this.code = cause.code;
  }
}

const MAX_CONNECTIONS = 64;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export class MetricsServer {
  private readonly options: MetricsServerOptions;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(options: MetricsServerOptions) {
    this.options = options;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        options.onError?.(e);
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${e instanceof Error ? e.message : String(e)}\n`);
        else res.destroy();
      });
    });
    // A scraper needs a connection or two and answers in milliseconds. Bounded so that a flood of idle or slow
    // connections cannot take the descriptors the milter needs for mail: over the limit a connection is
    // closed at once, and a request must arrive whole within seconds.
    const idleMs = options.idleTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.headersTimeout = idleMs;
    this.server.requestTimeout = idleMs;
    this.server.keepAliveTimeout = Math.min(KEEP_ALIVE_TIMEOUT_MS, idleMs);
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      // An idle connection that never sends a request is not covered by the request timeouts.
      socket.setTimeout(idleMs, () => socket.destroy());
    });
  }

  /** Binds (default 127.0.0.1, port 0 = any free port) and resolves with the address actually bound. */
  listen(port: number, address = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => reject(new MetricsListenError(address, port, e));
      this.server.once('error', onError);
      this.server.listen(port, address, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  get address(): AddressInfo | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then drops what is left. */
  async close(graceMs = 2000): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, graceMs);
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://metrics.invalid');
    const route = ROUTES[url.pathname];
    if (route === undefined) {
      send(res, 404, 'text/plain; charset=utf-8', `not found: try /metrics, /healthz or /offenders\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    await this[route](url, res);
  }

  private async serveMetrics(_url: URL, res: ServerResponse): Promise<void> {
    const text = await this.options.metrics.metrics();
    send(res, 200, this.options.metrics.contentType, text);
  }

  private async serveHealth(_url: URL, res: ServerResponse): Promise<void> {
    let report: HealthReport;
    try {
      report = await this.options.health();
    } catch (e) {
      report = { healthy: false, reason: `health check failed: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (report.healthy) send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    else send(res, 503, 'text/plain; charset=utf-8', `unhealthy: ${report.reason}\n`);
  }

  private async serveOffenders(url: URL, res: ServerResponse): Promise<void> {
    const offenders = this.options.offenders;
    if (offenders === undefined) {
      send(res, 404, 'text/plain; charset=utf-8', 'the top-offenders list is not enabled\n');
      return;
    }
    const limitText = url.searchParams.get('limit');
    const limit = limitText === null ? offenders.capacity : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0) {
      send(res, 400, 'text/plain; charset=utf-8', `limit must be a non-negative integer, got ${JSON.stringify(limitText)}\n`);
      return;
    }
    const body: OffendersBody = { windowSeconds: offenders.windowMs / 1000, capacity: offenders.capacity, offenders: offenders.top(limit) };
    send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`);
  }
}

const ROUTES: Readonly<Record<string, 'serveMetrics' | 'serveHealth' | 'serveOffenders' | undefined>> = {
  '/metrics': 'serveMetrics',
  '/healthz': 'serveHealth',
  '/offenders': 'serveOffenders',
};

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
