// A fake clamd for the faults a real one will not produce on demand: stalling, garbage, `... ERROR`, closing
// mid-scan, answering slowly, not reading. It speaks enough of the protocol (z-commands, INSTREAM chunks, PING,
// VERSION, the StreamMaxLength refusal) for the scanner not to tell it from clamd when it behaves.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What the fake does with an INSTREAM scan. */
export type FakeScanBehavior =
  /** Answer by content: `EICAR` in the data → FOUND, otherwise OK (the default). */
  | { readonly kind: 'detect' }
  /** After the end of the stream, answer this text (NUL is appended). */
  | { readonly kind: 'reply'; readonly reply: string }
  /** Like 'reply', but after a delay. */
  | { readonly kind: 'slow'; readonly delayMs: number; readonly reply: string }
  /** Read everything, never answer, never close. */
  | { readonly kind: 'stall' }
  /** Stop reading right after the command, so the client's writes back up. */
  | { readonly kind: 'stop-reading' }
  /** Close (or reset) the connection after this many data bytes, without a reply. */
  | { readonly kind: 'close-mid-scan'; readonly afterBytes: number; readonly reset?: boolean }
  /** Answer this text as soon as the command arrives, then close (like clamd's size-limit refusal). */
  | { readonly kind: 'reply-early'; readonly reply: string };

/** What the fake does with PING / VERSION. */
export type FakeCommandBehavior = 'answer' | 'stall' | 'garbage' | 'close';

export interface FakeClamdOptions {
  /** Listen on a UNIX socket in a temp dir instead of 127.0.0.1. */
  readonly unix?: boolean;
  readonly scan?: FakeScanBehavior;
  readonly commands?: FakeCommandBehavior;
  /** Like clamd's StreamMaxLength: a chunk past it gets `INSTREAM size limit exceeded. ERROR`. */
  readonly streamMaxLength?: number;
  /** What a stream past streamMaxLength gets: the reply (default), or a reset with the reply lost. */
  readonly sizeLimitReply?: 'reply' | 'reset';
  readonly version?: string;
}

export interface FakeScanRecord {
  /** The data received, in order. */
  readonly data: Buffer;
  /** Data length of each chunk as framed by the client (the zero-length end chunk excluded). */
  readonly chunkSizes: readonly number[];
  readonly ended: boolean;
}

interface ScanState {
  readonly data: Buffer[];
  readonly chunkSizes: number[];
  received: number;
  ended: boolean;
}

export class FakeClamd {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #dir: string | undefined;
  /** Where the scanner should connect: `unix:/…` or `inet:127.0.0.1:PORT`. */
  endpoint = '';
  scanBehavior: FakeScanBehavior;
  commandBehavior: FakeCommandBehavior;
  streamMaxLength: number;
  sizeLimitReply: 'reply' | 'reset';
  version: string;
  connections = 0;
  readonly commands: string[] = [];
  readonly #scans: ScanState[] = [];

  private constructor(options: FakeClamdOptions) {
    this.scanBehavior = options.scan ?? { kind: 'detect' };
    this.commandBehavior = options.commands ?? 'answer';
    this.streamMaxLength = options.streamMaxLength ?? 100 * 1024 * 1024;
    this.sizeLimitReply = options.sizeLimitReply ?? 'reply';
    this.version = options.version ?? 'ClamAV 1.4.6/27500/Tue Nov 24 09:00:00 2026';
    this.#server = net.createServer((socket) => this.#serve(socket));
  }

  static async start(options: FakeClamdOptions = {}): Promise<FakeClamd> {
    const fake = new FakeClamd(options);
    await fake.#listen(options.unix === true);
    return fake;
  }

  /** Every INSTREAM scan received so far, in order. */
  get scans(): FakeScanRecord[] {
    return this.#scans.map((s) => ({ data: Buffer.concat(s.data), chunkSizes: [...s.chunkSizes], ended: s.ended }));
  }

  /** Connections currently open (the scanner must not leave any behind). */
  get openConnections(): number {
    return this.#sockets.size;
  }

  async #listen(unix: boolean): Promise<void> {
    if (unix) {
      this.#dir = mkdtempSync(join(tmpdir(), 'fake-clamd-'));
      const path = join(this.#dir, 'clamd.sock');
      await new Promise<void>((resolve, reject) => this.#server.once('error', reject).listen(path, resolve));
      this.endpoint = `unix:${path}`;
    } else {
      await new Promise<void>((resolve, reject) => this.#server.once('error', reject).listen(0, '127.0.0.1', resolve));
      const address = this.#server.address() as net.AddressInfo;
      this.endpoint = `inet:127.0.0.1:${address.port}`;
    }
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true });
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #serve(socket: net.Socket): void {
    this.connections++;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    let command: string | undefined;
    let scan: ScanState | undefined;
    const behavior = this.scanBehavior;

    const answer = (text: string): void => {
      if (!socket.destroyed) socket.end(`${text}\0`);
    };

    const onStreamEnd = (): void => {
      if (behavior.kind === 'stall') return;
      if (behavior.kind === 'reply') answer(behavior.reply);
      else if (behavior.kind === 'slow') this.#later(behavior.delayMs, () => answer(behavior.reply));
      else if (behavior.kind === 'detect') {
        const data = Buffer.concat(scan?.data ?? []);
        answer(data.includes('EICAR') ? 'stream: Eicar-Test-Signature FOUND' : 'stream: OK');
      }
    };

    socket.on('data', (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      if (command === undefined) {
        const nul = buffer.indexOf(0);
        if (nul < 0) return;
        command = buffer.subarray(0, nul).toString('latin1');
        buffer = buffer.subarray(nul + 1);
        this.commands.push(command);
        if (command === 'zPING' || command === 'zVERSION') {
          const reply = command === 'zPING' ? 'PONG' : this.version;
          switch (this.commandBehavior) {
            case 'answer':
              return answer(reply);
            case 'garbage':
              return answer('\x01\x02 what?');
            case 'close':
              socket.destroy();
              return;
            case 'stall':
              return;
          }
        }
        if (command !== 'zINSTREAM') return answer('UNKNOWN COMMAND');
        scan = { data: [], chunkSizes: [], received: 0, ended: false };
        this.#scans.push(scan);
        if (behavior.kind === 'reply-early') return answer(behavior.reply);
        if (behavior.kind === 'stop-reading') {
          socket.pause();
          return;
        }
      }
      if (scan === undefined || scan.ended) return;
      // INSTREAM chunks: 4-byte big-endian length, then the data.
      while (buffer.length >= 4) {
        const length = buffer.readUInt32BE(0);
        if (length === 0) {
          scan.ended = true;
          buffer = buffer.subarray(4);
          onStreamEnd();
          return;
        }
        if (scan.received + length > this.streamMaxLength) {
          // A probe announcing an over-limit chunk (no data read yet) always gets the real reply.
          if (this.sizeLimitReply === 'reset' && scan.received > 0) {
            socket.resetAndDestroy();
            return;
          }
          return answer('INSTREAM size limit exceeded. ERROR');
        }
        if (buffer.length < 4 + length) return;
        const chunk = buffer.subarray(4, 4 + length);
        buffer = buffer.subarray(4 + length);
        scan.data.push(Buffer.from(chunk));
        scan.chunkSizes.push(length);
        scan.received += length;
        if (behavior.kind === 'close-mid-scan' && scan.received >= behavior.afterBytes) {
          if (behavior.reset === true) socket.resetAndDestroy();
          else socket.destroy();
          return;
        }
      }
    });
  }
}
