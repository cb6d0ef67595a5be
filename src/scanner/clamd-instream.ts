// One INSTREAM session on an open clamd connection: `zINSTREAM\0`, then data in length-prefixed chunks as it
// arrives, a zero-length chunk at the end, then one NUL-terminated reply. The reply is read at all times, not
// only after the end: clamd answers `INSTREAM size limit exceeded. ERROR` mid-stream and closes, and a client
// that only notices the broken pipe loses the reason.
import type net from 'node:net';
import { MAX_REPLY_BYTES, parseScanReply, printableReply } from './clamd-reply.js';
import { scanFailure, type ScanFailure, type ScanResult } from './scan-result.js';

export interface InstreamOptions {
  /** Data bytes per chunk; smaller writes are gathered into one chunk. */
  readonly chunkBytes: number;
  /** clamd must take our data (the socket must drain) within this, or the session fails as 'timeout'. */
  readonly sendTimeoutMs: number;
  /** Called once when the connection broke without a reply, so the caller can mark the endpoint down. */
  readonly onConnectionLost?: (why: string) => void;
  /**
   * Asks clamd (on a new connection) whether this many bytes exceed its StreamMaxLength; used when the
   * connection broke mid-stream without a reply, since the size-limit reply is often lost to the broken pipe.
   */
  readonly exceedsStreamLimit?: (bytes: number) => Promise<boolean>;
}

const INSTREAM_COMMAND = Buffer.from('zINSTREAM\0', 'latin1');
const END_OF_STREAM = Buffer.alloc(4);

export class ClamdInstream {
  readonly #socket: net.Socket;
  readonly #options: InstreamOptions;
  /** The chunk being filled: 4 bytes of length, then up to chunkBytes of data. */
  #frame: Buffer;
  #filled = 0;
  #bytesSent = 0;
  #ended = false;
  #outcome: ScanResult | undefined;
  #resolveResult!: (result: ScanResult) => void;
  readonly #reply: Buffer[] = [];
  #replyBytes = 0;
  #socketError: Error | undefined;
  #drainWaiters: (() => void)[] = [];
  #sendTimer: NodeJS.Timeout | undefined;
  /** Settles exactly once: clamd's verdict or the failure that ended the session. */
  readonly result: Promise<ScanResult>;

  constructor(socket: net.Socket, options: InstreamOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#frame = Buffer.allocUnsafe(4 + options.chunkBytes);
    this.result = new Promise((resolve) => (this.#resolveResult = resolve));
    socket.on('data', (data: Buffer) => this.#onData(data));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err) => {
      this.#socketError ??= err;
    });
    socket.on('close', () => this.#onClose());
    socket.on('drain', () => this.#wakeDrainWaiters());
    socket.write(INSTREAM_COMMAND);
  }

  /** Stream data bytes sent so far (excluding framing). */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  get settled(): boolean {
    return this.#outcome !== undefined;
  }

  /**
   * Queues data for clamd and resolves once the socket can take more (back-pressure). Never rejects: a broken
   * session resolves at once and the failure comes out of `result`. The caller's buffer is copied.
   */
  write(data: Uint8Array): Promise<void> {
    if (this.#outcome !== undefined || this.#ended) return Promise.resolve();
    const capacity = this.#options.chunkBytes;
    let offset = 0;
    while (offset < data.length) {
      const take = Math.min(capacity - this.#filled, data.length - offset);
      this.#frame.set(data.subarray(offset, offset + take), 4 + this.#filled);
      this.#filled += take;
      offset += take;
      if (this.#filled === capacity) this.#sendFrame();
    }
    return this.#whenDrained();
  }

  /** Sends what is left and the end-of-stream chunk; resolves with the verdict (same promise as `result`). */
  end(): Promise<ScanResult> {
    if (this.#outcome === undefined && !this.#ended) {
      this.#sendFrame();
      this.#ended = true;
      this.#socket.write(END_OF_STREAM);
      this.#armSendTimer();
    }
    return this.result;
  }

  /** Ends the session with `failure` (unless it already has an outcome) and closes the connection. */
  abort(failure: ScanFailure): void {
    this.#settle(failure);
  }

  #sendFrame(): void {
    if (this.#filled === 0) return;
    const frame = this.#frame.subarray(0, 4 + this.#filled);
    frame.writeUInt32BE(this.#filled, 0);
    this.#bytesSent += this.#filled;
    this.#frame = Buffer.allocUnsafe(4 + this.#options.chunkBytes);
    this.#filled = 0;
    this.#socket.write(frame);
  }

  #whenDrained(): Promise<void> {
    if (!this.#socket.writableNeedDrain || this.#outcome !== undefined) return Promise.resolve();
    this.#armSendTimer();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** While clamd has unread data of ours, it must make progress within sendTimeoutMs. */
  #armSendTimer(): void {
    if (this.#sendTimer !== undefined || !this.#socket.writableNeedDrain) return;
    this.#sendTimer = setTimeout(() => {
      this.#sendTimer = undefined;
      if (this.#socket.writableNeedDrain) {
        this.#settle(scanFailure('timeout', `clamd did not read the message data for ${this.#options.sendTimeoutMs} ms`));
      }
    }, this.#options.sendTimeoutMs);
  }

  #wakeDrainWaiters(): void {
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const wake of waiters) wake();
  }

  #onData(data: Buffer): void {
    if (this.#outcome !== undefined) return;
    this.#reply.push(data);
    this.#replyBytes += data.length;
    const reply = Buffer.concat(this.#reply);
    const nul = reply.indexOf(0);
    if (nul >= 0) {
      this.#settle(this.#judge(reply.subarray(0, nul)));
    } else if (this.#replyBytes > MAX_REPLY_BYTES) {
      this.#settle(scanFailure('protocol', `clamd sent ${this.#replyBytes} bytes without ending its reply: ${printableReply(reply.toString('latin1'))}`));
    }
  }

  /** A verdict is only believable after the whole stream was sent; an early "OK" or "FOUND" is not. */
  #judge(reply: Buffer): ScanResult {
    const result = parseScanReply(reply);
    if (result.type !== 'failed' && !this.#ended) {
      return scanFailure('protocol', `clamd answered ${printableReply(reply.toString('latin1'))} before the end of the stream`);
    }
    return result;
  }

  #onEnd(): void {
    // clamd closed its side; a reply without terminator is still a reply (an n-style or truncated answer).
    if (this.#outcome === undefined && this.#replyBytes > 0) this.#settle(this.#judge(Buffer.concat(this.#reply)));
  }

  #onClose(): void {
    if (this.#outcome !== undefined) return;
    if (this.#replyBytes > 0) {
      this.#settle(this.#judge(Buffer.concat(this.#reply)));
      return;
    }
    const why = this.#socketError === undefined ? 'clamd closed the connection without a reply' : `connection to clamd lost without a reply (${this.#socketError.message})`;
    const probe = this.#options.exceedsStreamLimit;
    if (probe === undefined || this.#bytesSent === 0) {
      this.#lost(why);
      return;
    }
    void probe(this.#bytesSent).then(
      (refused) => {
        if (!refused) this.#lost(why);
        else this.#settle(scanFailure('size-limit', `the message is larger than clamd's StreamMaxLength (clamd refuses ${this.#bytesSent} bytes)`));
      },
      () => this.#lost(why),
    );
  }

  #lost(why: string): void {
    if (this.#outcome !== undefined) return;
    this.#options.onConnectionLost?.(why);
    this.#settle(scanFailure('error', why));
  }

  #settle(result: ScanResult): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = result;
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    this.#socket.destroy();
    this.#wakeDrainWaiters();
    this.#resolveResult(result);
  }
}
