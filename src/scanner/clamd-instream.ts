// One INSTREAM request on an open clamd connection: `zINSTREAM\0`, then data in length-prefixed chunks as it
// arrives, a zero-length chunk at the end, then one NUL-terminated reply. The reply is read at all times, not
// only after the end: clamd answers `INSTREAM size limit exceeded. ERROR` mid-stream and closes, and a client
// that only notices the broken pipe loses the reason.
//
// Writes are few: data is gathered into one chunk of `chunkBytes`; a full chunk is sent only once more data
// comes (so the last chunk always goes out together with the end-of-stream chunk), and on a session connection
// the command goes out with the first chunk. A message smaller than a chunk is one write on a session connection.
// The first chunk's buffer starts small and doubles up to `chunkBytes`: a 64 KiB buffer per scan, held while
// clamd works, made typical few-KB messages cost 64 KiB of external memory each, and that churn, not the
// JS heap, set off most of the process's full garbage collections.
//
// On an IDSESSION connection (`requestId` set) the reply carries the request number, and after a verdict with
// nothing else received the connection is handed back (`onDone(true)`) instead of closed.
import type net from 'node:net';
import { MAX_REPLY_BYTES, parseScanReply, parseSessionScanReply, printableReply } from './clamd-reply.js';
import { scanFailure, type ScanFailure, type ScanResult } from './scan-result.js';

export interface InstreamOptions {
  /** Data bytes per chunk; smaller writes are gathered into one chunk. */
  readonly chunkBytes: number;
  /** clamd must take our data (the socket must drain) within this, or the request fails as 'timeout'. */
  readonly sendTimeoutMs: number;
  /**
   * On an IDSESSION connection: the number clamd will put in front of its reply (`<id>: stream: OK`), which must
   * match. Also lets `zINSTREAM\0` wait for the first data: clamd already had a command on this connection
   * (IDSESSION or an earlier request), so only its ReadTimeout runs while we wait. Undefined on a plain
   * connection: one request, a reply without prefix, and the command is sent at once, because until a first
   * command arrives clamd applies its CommandReadTimeout, which may be as short as 5 s.
   */
  readonly requestId?: number;
  /** Called once when the connection broke without a reply, so the caller can mark the endpoint down. */
  readonly onConnectionLost?: (why: string) => void;
  /**
   * Asks clamd (on a new connection) whether this many bytes exceed its StreamMaxLength; used when the
   * connection broke mid-stream without a reply, since the size-limit reply is often lost to the broken pipe.
   */
  readonly exceedsStreamLimit?: (bytes: number) => Promise<boolean>;
  /**
   * Called once when the request is over, before `result` resolves. `reusable` is true only on a session
   * connection after a clean or infected verdict, sent after the end of the stream, with nothing received after
   * it and nothing of ours unsent: this class's listeners are then gone and the open socket belongs to the
   * caller. Otherwise the socket has been destroyed.
   */
  readonly onDone?: (reusable: boolean) => void;
}

const INSTREAM_COMMAND = Buffer.from('zINSTREAM\0', 'latin1');
const END_OF_STREAM = Buffer.alloc(4);
/** Data capacity of the first chunk's buffer (most mail fits); it doubles as needed, up to chunkBytes. */
const FIRST_CHUNK_CAPACITY = 8 * 1024;

export class ClamdInstream {
  readonly #socket: net.Socket;
  readonly #options: InstreamOptions;
  /** `zINSTREAM\0` is still to go out, in front of the next write. */
  #commandPending: boolean;
  /**
   * The write being assembled: [`zINSTREAM\0` while pending][4 bytes of length][up to #capacity bytes of data]
   * [4 spare bytes for the end-of-stream chunk].
   */
  #frame: Buffer = Buffer.alloc(0);
  /** Where the data starts in #frame. */
  #dataAt = 0;
  /** Data bytes #frame can hold (at most chunkBytes). */
  #capacity = 0;
  #filled = 0;
  #bytesSent = 0;
  #ended = false;
  /** Bytes clamd sent after the terminator of its reply. */
  #extraBytes = 0;
  #outcome: ScanResult | undefined;
  #resolveResult!: (result: ScanResult) => void;
  readonly #reply: Buffer[] = [];
  #replyBytes = 0;
  #socketError: Error | undefined;
  #drainWaiters: (() => void)[] = [];
  #sendTimer: NodeJS.Timeout | undefined;
  readonly #listeners = {
    data: (data: Buffer): void => this.#onData(data),
    end: (): void => this.#onEnd(),
    error: (err: Error): void => {
      this.#socketError ??= err;
    },
    close: (): void => this.#onClose(),
    drain: (): void => this.#wakeDrainWaiters(),
  };
  /** Settles exactly once: clamd's verdict or the failure that ended the request. */
  readonly result: Promise<ScanResult>;

  constructor(socket: net.Socket, options: InstreamOptions) {
    this.#socket = socket;
    this.#options = options;
    this.result = new Promise((resolve) => (this.#resolveResult = resolve));
    socket.on('data', this.#listeners.data);
    socket.on('end', this.#listeners.end);
    socket.on('error', this.#listeners.error);
    socket.on('close', this.#listeners.close);
    socket.on('drain', this.#listeners.drain);
    this.#commandPending = options.requestId !== undefined;
    if (!this.#commandPending) socket.write(INSTREAM_COMMAND);
    this.#newFrame(Math.min(FIRST_CHUNK_CAPACITY, options.chunkBytes));
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
   * request resolves at once and the failure comes out of `result`. The caller's buffer is copied.
   */
  write(data: Uint8Array): Promise<void> {
    if (this.#outcome !== undefined || this.#ended) return Promise.resolve();
    let offset = 0;
    while (offset < data.length) {
      if (this.#filled === this.#capacity) {
        // A full chunk waits for more data, so that the last one can go out with the end of the stream.
        if (this.#capacity === this.#options.chunkBytes) this.#flush(false);
        else this.#grow(this.#filled + data.length - offset);
      }
      const take = Math.min(this.#capacity - this.#filled, data.length - offset);
      this.#frame.set(data.subarray(offset, offset + take), this.#dataAt + this.#filled);
      this.#filled += take;
      offset += take;
    }
    return this.#whenDrained();
  }

  /** Sends what is left and the end-of-stream chunk, in one write; resolves with the verdict (same as `result`). */
  end(): Promise<ScanResult> {
    if (this.#outcome === undefined && !this.#ended) {
      this.#ended = true;
      this.#flush(true);
      this.#armSendTimer();
    }
    return this.result;
  }

  /** Ends the request with `failure` (unless it already has an outcome) and closes the connection. */
  abort(failure: ScanFailure): void {
    this.#settle(failure);
  }

  #newFrame(capacity: number): void {
    const command = this.#commandPending ? INSTREAM_COMMAND.length : 0;
    this.#frame = Buffer.allocUnsafe(command + 4 + capacity + 4);
    if (command > 0) INSTREAM_COMMAND.copy(this.#frame, 0);
    this.#dataAt = command + 4;
    this.#capacity = capacity;
    this.#filled = 0;
  }

  /** Replaces #frame with one that holds at least `wanted` data bytes (doubling, at most chunkBytes). */
  #grow(wanted: number): void {
    const old = this.#frame;
    const filled = this.#filled;
    this.#newFrame(Math.min(this.#options.chunkBytes, Math.max(2 * this.#capacity, wanted)));
    old.copy(this.#frame, this.#dataAt, this.#dataAt, this.#dataAt + filled);
    this.#filled = filled;
  }

  /**
   * Sends, in one write: the command if still pending, the chunk being filled (if any), and when `last` the
   * end-of-stream chunk.
   */
  #flush(last: boolean): void {
    if (this.#filled === 0 && !last) return;
    const frame = this.#frame;
    let end = this.#dataAt - 4;
    if (this.#filled > 0) {
      frame.writeUInt32BE(this.#filled, end);
      end = this.#dataAt + this.#filled;
      this.#bytesSent += this.#filled;
    }
    if (last) {
      END_OF_STREAM.copy(frame, end);
      end += END_OF_STREAM.length;
    }
    this.#commandPending = false;
    this.#socket.write(frame.subarray(0, end));
    // Past the first full chunk the message is large: later chunks get the full size at once.
    if (!last) this.#newFrame(this.#options.chunkBytes);
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
    const reply = this.#reply.length === 1 ? data : Buffer.concat(this.#reply);
    const nul = reply.indexOf(0);
    if (nul >= 0) {
      this.#extraBytes = reply.length - nul - 1;
      this.#settle(this.#judge(reply.subarray(0, nul)));
    } else if (this.#replyBytes > MAX_REPLY_BYTES) {
      this.#settle(scanFailure('protocol', `clamd sent ${this.#replyBytes} bytes without ending its reply: ${printableReply(reply.toString('latin1'))}`));
    }
  }

  /**
   * A verdict is only believable after the whole stream was sent; an early "OK" or "FOUND" is not. Nor is one
   * followed by more bytes: clamd sends one reply per request, so the connection is out of step.
   */
  #judge(reply: Buffer): ScanResult {
    const id = this.#options.requestId;
    const result = id === undefined ? parseScanReply(reply) : parseSessionScanReply(reply, id);
    if (result.type === 'failed') return result;
    if (!this.#ended) {
      return scanFailure('protocol', `clamd answered ${printableReply(reply.toString('latin1'))} before the end of the stream`);
    }
    if (this.#extraBytes > 0) {
      return scanFailure('protocol', `clamd sent ${this.#extraBytes} more bytes after its reply ${printableReply(reply.toString('latin1'))}`);
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

  /** Only a session connection that ended cleanly and is still fully open may take another request. */
  #reusable(result: ScanResult): boolean {
    const socket = this.#socket;
    return (
      result.type !== 'failed' &&
      this.#options.requestId !== undefined &&
      this.#ended &&
      this.#extraBytes === 0 &&
      this.#socketError === undefined &&
      !socket.destroyed &&
      socket.writable &&
      !socket.readableEnded &&
      socket.writableLength === 0
    );
  }

  #detach(): void {
    const socket = this.#socket;
    socket.off('data', this.#listeners.data);
    socket.off('end', this.#listeners.end);
    socket.off('error', this.#listeners.error);
    socket.off('close', this.#listeners.close);
    socket.off('drain', this.#listeners.drain);
  }

  #settle(result: ScanResult): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = result;
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    const reusable = this.#reusable(result);
    if (reusable) this.#detach();
    else this.#socket.destroy();
    this.#wakeDrainWaiters();
    this.#options.onDone?.(reusable);
    this.#resolveResult(result);
  }
}
