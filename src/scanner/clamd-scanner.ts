// The virus scanner the milter uses: several clamd endpoints tried in order with failover, health checks with a
// quick re-probe of dead endpoints, a bounded number of scans in flight, a deadline per scan, and a scan limit
// in bytes. Scans reuse IDSESSION connections per endpoint (clamd-session-pool.ts). Every scan ends in a
// ScanResult value; nothing here throws for a scan outcome.
import type { ClamdVersion } from '../metrics/clamd-version.js';
import { clamdVersion, exceedsStreamLimit, pingClamd } from './clamd-command.js';
import type { ClamavConfig } from './clamd-config.js';
import { parseClamdEndpoint, type ClamdEndpoint } from './clamd-endpoint.js';
import { ClamdInstream } from './clamd-instream.js';
import { ClamdSessionPool } from './clamd-session-pool.js';
import { ScanSlots, type ReleaseSlot } from './scan-slots.js';
import { scanFailure, type ScanFailure, type ScanResult } from './scan-result.js';

/** The scanner settings in milliseconds and bytes, as `clamavSchema` produces them. */
export type ClamdScannerConfig = ClamavConfig;

export interface ClamdEndpointHealth {
  /** The endpoint as configured, e.g. `unix:/run/clamav/clamd.ctl`. */
  readonly endpoint: string;
  /** Last probe or scan found it answering. False before the first probe. */
  readonly up: boolean;
  readonly lastCheck: Date | null;
  /** Why it is down (the last probe or connection failure), null while up. */
  readonly lastError: string | null;
  /** From the last successful VERSION; null until one succeeded. */
  readonly version: ClamdVersion | null;
}

export interface ClamdScannerHealth {
  /** At least one endpoint is up. */
  readonly up: boolean;
  readonly endpoints: readonly ClamdEndpointHealth[];
  readonly activeScans: number;
  /** Scans waiting for a slot. */
  readonly waitingScans: number;
}

export interface ClamdScannerOptions {
  /** Called when an endpoint goes up or down (for the log); not called for repeated equal states. */
  readonly onEndpointChange?: (health: ClamdEndpointHealth) => void;
  /** Called after every health check, changed or not (for gauges of the check time and signature version). */
  readonly onEndpointChecked?: (health: ClamdEndpointHealth) => void;
}

/** A scan in progress: write the message as it arrives, then finish. */
export interface VirusScan {
  /**
   * Adds message bytes (headers as received, CRLF, body). Resolves when more may be written (back-pressure
   * while clamd reads slowly or while no connection is open yet); never rejects. Data is copied.
   */
  write(data: Uint8Array): Promise<void>;
  /** Ends the stream and resolves with the verdict, within the scan deadline. Calling it again returns the same. */
  finish(): Promise<ScanResult>;
  /** Gives up (message aborted): closes the connection, frees the slot. `finish()` then resolves as failed. */
  abort(): void;
  /** The endpoint that took the scan, once connected. */
  readonly endpoint: string | undefined;
  /** Message bytes written so far. */
  readonly bytesWritten: number;
}

interface EndpointState {
  readonly spec: string;
  readonly address: ClamdEndpoint;
  /** Open session connections to this endpoint, idle between scans. */
  readonly pool: ClamdSessionPool;
  /** undefined until the first probe or connection attempt. */
  up: boolean | undefined;
  lastCheck: Date | null;
  lastError: string | null;
  version: ClamdVersion | null;
  probeTimer: NodeJS.Timeout | undefined;
  nextProbeAt: number;
  probing: boolean;
}

/** Why a settled scan stops waiting for a slot. */
const SCAN_SETTLED = 'the scan already has an outcome';

/** How much written data may wait in memory while no clamd connection is open yet. */
const QUEUE_HIGH_WATER = 1024 * 1024;

/** What a scan needs from its scanner; kept out of the scanner's public surface. */
interface ScanContext {
  readonly config: ClamdScannerConfig;
  readonly slots: ScanSlots;
  /** Endpoints to try, in order. */
  candidates(): readonly EndpointState[];
  markUp(state: EndpointState): void;
  markDown(state: EndpointState, why: string): void;
}

export class ClamdScanner {
  readonly config: ClamdScannerConfig;
  readonly #endpoints: EndpointState[];
  readonly #slots: ScanSlots;
  readonly #options: ClamdScannerOptions;
  readonly #scans = new Set<StreamingScan>();
  readonly #context: ScanContext;
  #running = false;
  #closed = false;

  constructor(config: ClamdScannerConfig, options: ClamdScannerOptions = {}) {
    this.config = config;
    this.#options = options;
    this.#endpoints = config.endpoints.map((spec) => {
      const address = parseClamdEndpoint(spec);
      return {
        spec,
        address,
        pool: new ClamdSessionPool(address, { maxIdle: config.maxConcurrentScans, connectTimeoutMs: config.connectTimeout }),
        up: undefined,
        lastCheck: null,
        lastError: null,
        version: null,
        probeTimer: undefined,
        nextProbeAt: 0,
        probing: false,
      };
    });
    this.#slots = new ScanSlots(config.maxConcurrentScans);
    this.#context = {
      config,
      slots: this.#slots,
      candidates: () => this.#candidates(),
      markUp: (state) => this.#setState(state, true, null),
      markDown: (state, why) => this.#markDown(state, why),
    };
  }

  /** Starts the health checks: every endpoint is probed now, then on its interval. */
  start(): void {
    if (this.#running || this.#closed) return;
    this.#running = true;
    for (const state of this.#endpoints) this.#scheduleProbe(state, 0);
  }

  /** Probes every endpoint now and waits for the answers (start-up checks, tests). */
  async checkNow(): Promise<ClamdScannerHealth> {
    await Promise.all(this.#endpoints.map((state) => this.#probe(state)));
    return this.health();
  }

  /** Stops health checks, aborts scans in flight (their finish() resolves as failed), closes idle connections. */
  close(): void {
    this.#closed = true;
    this.#running = false;
    for (const state of this.#endpoints) {
      clearTimeout(state.probeTimer);
      state.probeTimer = undefined;
    }
    for (const scan of this.#scans) scan.fail(scanFailure('error', 'the scanner was shut down'));
    for (const state of this.#endpoints) state.pool.close();
  }

  health(): ClamdScannerHealth {
    const endpoints = this.#endpoints.map((s) => this.#healthOf(s));
    return { up: endpoints.some((e) => e.up), endpoints, activeScans: this.#slots.active, waitingScans: this.#slots.waiting };
  }

  /** Starts a scan at once; connecting, waiting for a slot and failover happen behind it. */
  begin(): VirusScan {
    const scan = new StreamingScan(this.#context);
    if (this.#closed) {
      scan.fail(scanFailure('error', 'the scanner was shut down'));
      return scan;
    }
    this.#scans.add(scan);
    void scan.result.then(() => this.#scans.delete(scan));
    scan.run().catch((e: unknown) => scan.fail(scanFailure('error', `internal error in the scanner: ${(e as Error).message}`)));
    return scan;
  }

  /** Scans a whole message (CLI, queue sweep): a Buffer or any (async) iterable of chunks. */
  async scan(message: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<ScanResult> {
    const scan = this.begin();
    try {
      if (message instanceof Uint8Array) await scan.write(message);
      else for await (const chunk of message) await scan.write(chunk);
    } catch (e) {
      scan.abort();
      return scanFailure('error', `could not read the message: ${(e as Error).message}`);
    }
    return scan.finish();
  }

  /** Endpoints to try, in configured order: those not known to be down; if all are down, all of them. */
  #candidates(): EndpointState[] {
    const live = this.#endpoints.filter((s) => s.up !== false);
    return live.length > 0 ? live : [...this.#endpoints];
  }

  /** A failed connection or lost scan: skip the endpoint and re-probe it soon (even without start()). */
  #markDown(state: EndpointState, why: string): void {
    this.#setState(state, false, why);
    if (this.#closed) return;
    if (state.probeTimer === undefined || state.nextProbeAt > Date.now() + this.config.reprobeInterval) {
      this.#scheduleProbe(state, this.config.reprobeInterval);
    }
  }

  #setState(state: EndpointState, up: boolean, why: string | null): void {
    // Idle connections to an endpoint found down are most likely dead too; its IDSESSION support is checked again.
    if (!up) state.pool.reset();
    const changed = state.up !== up;
    state.up = up;
    state.lastError = why;
    if (changed) this.#options.onEndpointChange?.(this.#healthOf(state));
  }

  #healthOf(s: EndpointState): ClamdEndpointHealth {
    return { endpoint: s.spec, up: s.up === true, lastCheck: s.lastCheck, lastError: s.lastError, version: s.version };
  }

  #scheduleProbe(state: EndpointState, delayMs: number): void {
    clearTimeout(state.probeTimer);
    state.nextProbeAt = Date.now() + delayMs;
    state.probeTimer = setTimeout(() => {
      state.probeTimer = undefined;
      void this.#probe(state).then(() => {
        if (this.#closed || state.probeTimer !== undefined) return;
        // Without start() only dead endpoints keep being probed, until they answer again.
        if (this.#running) this.#scheduleProbe(state, state.up === true ? this.config.healthCheckInterval : this.config.reprobeInterval);
        else if (state.up === false) this.#scheduleProbe(state, this.config.reprobeInterval);
      });
    }, delayMs);
    state.probeTimer.unref();
  }

  /** PING, then VERSION (its signature version changes after a database reload). Never rejects. */
  async #probe(state: EndpointState): Promise<void> {
    if (state.probing) return;
    state.probing = true;
    try {
      await pingClamd(state.address, this.config.connectTimeout);
      if (this.#closed) return;
      try {
        state.version = await clamdVersion(state.address, this.config.connectTimeout);
      } catch {
        // VERSION can be disabled in clamd.conf (EnableVersionCommand no); PONG alone makes the endpoint usable.
      }
      state.lastCheck = new Date();
      if (!this.#closed) this.#setState(state, true, null);
    } catch (e) {
      state.lastCheck = new Date();
      if (!this.#closed) this.#setState(state, false, (e as Error).message);
    } finally {
      state.probing = false;
    }
    if (!this.#closed) this.#options.onEndpointChecked?.(this.#healthOf(state));
  }
}

type Phase = 'admitting' | 'connecting' | 'streaming' | 'done';

/** One message's scan: queue while waiting for a slot and a connection, then stream into ClamdInstream. */
class StreamingScan implements VirusScan {
  readonly #context: ScanContext;
  /** Only made when the scan has to wait for a slot (most scans find one free). */
  #abort: AbortController | undefined;
  #phase: Phase = 'admitting';
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #queueWaiters: (() => void)[] = [];
  #bytesWritten = 0;
  #finishing = false;
  #endpoint: string | undefined;
  #instream: ClamdInstream | undefined;
  #release: ReleaseSlot | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #outcome: ScanResult | undefined;
  #resolveOutcome!: (result: ScanResult) => void;
  /** Settles with the outcome, whether or not finish() was called. */
  readonly result: Promise<ScanResult>;
  #finishRequested!: () => void;
  readonly #finishSignal: Promise<void>;

  constructor(context: ScanContext) {
    this.#context = context;
    this.result = new Promise((resolve) => (this.#resolveOutcome = resolve));
    this.#finishSignal = new Promise((resolve) => (this.#finishRequested = resolve));
  }

  get endpoint(): string | undefined {
    return this.#endpoint;
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#outcome !== undefined || this.#finishing || data.length === 0) return Promise.resolve();
    this.#bytesWritten += data.length;
    const limit = this.#context.config.maxScanBytes;
    if (this.#bytesWritten > limit) {
      this.fail(scanFailure('size-limit', `the message is larger than the scan limit of ${limit} bytes (maxScanBytes)`));
      return Promise.resolve();
    }
    if (this.#phase === 'streaming' && this.#instream !== undefined) return this.#instream.write(data);
    this.#queue.push(Buffer.from(data));
    this.#queuedBytes += data.length;
    if (this.#queuedBytes < QUEUE_HIGH_WATER) return Promise.resolve();
    return new Promise((resolve) => this.#queueWaiters.push(resolve));
  }

  finish(): Promise<ScanResult> {
    if (!this.#finishing) {
      this.#finishing = true;
      if (this.#outcome !== undefined) return this.result;
      const deadlineMs = this.#context.config.scanDeadline;
      this.#deadline = setTimeout(() => {
        this.fail(scanFailure('timeout', `no verdict from clamd within the scan deadline of ${deadlineMs} ms`));
      }, deadlineMs);
      this.#finishRequested();
    }
    return this.result;
  }

  abort(): void {
    this.fail(scanFailure('error', 'the scan was aborted'));
  }

  /** Ends the scan with `failure` unless it already has an outcome. */
  fail(failure: ScanFailure): void {
    this.#settle(failure);
  }

  /** Drives the scan from admission to verdict. Never rejects. */
  async run(): Promise<void> {
    const config = this.#context.config;
    const release = this.#context.slots.tryAcquire() ?? (await this.#context.slots.acquire(config.admissionWait, (this.#abort = new AbortController()).signal));
    if (release === null) {
      this.#settle(scanFailure('overloaded', `no scan slot free within ${config.admissionWait} ms (${this.#context.slots.limit} scans in flight)`));
      return;
    }
    this.#release = release;
    if (this.#outcome !== undefined) {
      release();
      return;
    }
    this.#phase = 'connecting';
    const instream = await this.#connect();
    if (instream === undefined) return;
    // Data written while we connected goes first, in order; writes arriving meanwhile join the queue.
    while (this.#queue.length > 0 && this.#outcome === undefined) {
      const chunk = this.#queue.shift() as Buffer;
      this.#queuedBytes -= chunk.length;
      await instream.write(chunk);
    }
    this.#phase = 'streaming';
    this.#wakeQueueWaiters();
    void instream.result.then((result) => this.#settle(result));
    await this.#finishSignal;
    if (this.#outcome === undefined) instream.end();
  }

  /**
   * A connection from the first candidate endpoint that gives one: an idle session connection, or a new one. A
   * new connection that fails marks its endpoint down; a reused one that dies mid-scan is a lost connection
   * (ClamdInstream's onConnectionLost), as with a new one.
   */
  async #connect(): Promise<ClamdInstream | undefined> {
    const config = this.#context.config;
    const failures: string[] = [];
    for (const state of this.#context.candidates()) {
      if (this.#outcome !== undefined) return undefined;
      try {
        const connection = await state.pool.acquire();
        if (this.#outcome !== undefined) {
          connection.release(false);
          return undefined;
        }
        this.#context.markUp(state);
        this.#endpoint = state.spec;
        this.#instream = new ClamdInstream(connection.socket, {
          chunkBytes: config.chunkSize,
          sendTimeoutMs: config.sendTimeout,
          ...(connection.requestId === undefined ? {} : { requestId: connection.requestId }),
          onConnectionLost: (why) => this.#context.markDown(state, why),
          exceedsStreamLimit: (bytes) => exceedsStreamLimit(state.address, bytes, config.connectTimeout),
          onDone: (reusable) => connection.release(reusable),
        });
        return this.#instream;
      } catch (e) {
        const why = (e as Error).message;
        failures.push(why);
        this.#context.markDown(state, why);
      }
    }
    const detail = failures.length > 0 ? failures.join('; ') : 'no clamd endpoint configured';
    this.#settle(scanFailure('unreachable', detail));
    return undefined;
  }

  #wakeQueueWaiters(): void {
    const waiters = this.#queueWaiters;
    this.#queueWaiters = [];
    for (const wake of waiters) wake();
  }

  #settle(result: ScanResult): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = result;
    this.#phase = 'done';
    clearTimeout(this.#deadline);
    this.#abort?.abort(SCAN_SETTLED); // a given reason: abort() without one builds a DOMException per scan
    this.#queue = [];
    this.#queuedBytes = 0;
    if (result.type === 'failed') this.#instream?.abort(result);
    this.#release?.();
    this.#wakeQueueWaiters();
    this.#finishRequested();
    this.#resolveOutcome(result);
  }
}

