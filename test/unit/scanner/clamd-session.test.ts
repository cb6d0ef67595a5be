// Connection reuse with IDSESSION and the writes per scan, against a fake clamd that speaks sessions and records
// every byte it reads, chunk by chunk, per connection. Replies are written as byte vectors (`1: stream: OK\0`),
// so ids that do not match, garbage and extra bytes can be sent on purpose.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClamavConfig } from 'postfix-milter-ts/scanner/clamd-config.js';
import { parseClamdEndpoint } from 'postfix-milter-ts/scanner/clamd-endpoint.js';
import { ClamdScanner, type ClamdEndpointHealth } from 'postfix-milter-ts/scanner/clamd-scanner.js';
import { ClamdSessionPool, SESSION_IDLE_MS } from 'postfix-milter-ts/scanner/clamd-session-pool.js';
import { failedReason, testScanner } from './scanner-fixture.js';
import { FakeClamd } from '../../harness/fake-clamd.js';

/** One INSTREAM request as the fake received it. */
interface Request {
  /** Index of the connection in `SessionClamd.connections`. */
  readonly connection: number;
  /** The request number on that connection (1, 2, … within a session; 1 on a plain connection). */
  readonly id: number;
  readonly data: Buffer;
}

/** The bytes to answer a request with, exactly as sent (id prefix and NUL included); null: say nothing. */
type Reply = string | Buffer | null;

interface SessionClamdOptions {
  /** Answer `zIDSESSION` like clamd (default) or like a server without sessions (`UNKNOWN COMMAND`, close). */
  readonly sessions?: boolean;
  /** Accept connections and read, but never answer anything. */
  readonly silent?: boolean;
}

class Connection {
  readonly index: number;
  readonly socket: net.Socket;
  /** Every chunk `read` returned, in order. */
  readonly reads: Buffer[] = [];
  readonly commands: string[] = [];
  closed = false;
  constructor(index: number, socket: net.Socket) {
    this.index = index;
    this.socket = socket;
  }
  get bytes(): Buffer {
    return Buffer.concat(this.reads);
  }
}

/** A clamd that speaks IDSESSION, INSTREAM, PING and END, and records what it reads. */
class SessionClamd {
  readonly #server: net.Server;
  readonly #dir: string;
  readonly path: string;
  readonly connections: Connection[] = [];
  readonly requests: Request[] = [];
  /** How to answer a request; by default `<id>: stream: OK` or `… Eicar-Test-Signature FOUND`, as clamd does. */
  reply: (request: Request) => Reply = (r) => defaultReply(r);
  /** Called for every data chunk of a request that is still streaming (to close mid-scan, answer early…). */
  onChunk: ((connection: Connection, id: number, received: number) => void) | undefined;
  readonly #options: SessionClamdOptions;

  private constructor(options: SessionClamdOptions) {
    this.#options = options;
    this.#dir = mkdtempSync(join(tmpdir(), 'session-clamd-'));
    this.path = join(this.#dir, 'clamd.sock');
    this.#server = net.createServer((socket) => this.#serve(socket));
  }

  static async start(options: SessionClamdOptions = {}): Promise<SessionClamd> {
    const fake = new SessionClamd(options);
    await new Promise<void>((resolve, reject) => fake.#server.once('error', reject).listen(fake.path, resolve));
    fakes.push(fake);
    return fake;
  }

  get endpoint(): string {
    return `unix:${this.path}`;
  }

  /** Session connections that carried an INSTREAM request (not the IDSESSION check, not a size-limit probe). */
  get scanConnections(): Connection[] {
    return this.connections.filter((c) => c.commands[0] === 'zIDSESSION' && c.commands.includes('zINSTREAM'));
  }

  /** Connections of the IDSESSION support check (`zIDSESSION\0zPING\0`). */
  get checkConnections(): Connection[] {
    return this.connections.filter((c) => c.commands[0] === 'zIDSESSION' && c.commands[1] === 'zPING');
  }

  get openConnections(): number {
    return this.connections.filter((c) => !c.closed).length;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #serve(socket: net.Socket): void {
    const connection = new Connection(this.connections.length, socket);
    this.connections.push(connection);
    socket.on('close', () => (connection.closed = true));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let session = false;
    let nextId = 1;
    let streaming: { id: number; chunks: Buffer[]; received: number } | undefined;
    const send = (reply: Reply): void => {
      if (reply !== null && !socket.destroyed) socket.write(reply);
    };
    socket.on('data', (data: Buffer) => {
      connection.reads.push(Buffer.from(data));
      if (this.#options.silent === true) return;
      buffer = Buffer.concat([buffer, data]);
      for (;;) {
        if (streaming === undefined) {
          const nul = buffer.indexOf(0);
          if (nul < 0) return;
          const command = buffer.subarray(0, nul).toString('latin1');
          buffer = buffer.subarray(nul + 1);
          connection.commands.push(command);
          if (command === 'zIDSESSION' && this.#options.sessions !== false && !session) {
            session = true;
          } else if (command === 'zPING') {
            send(`${session ? `${nextId++}: ` : ''}PONG\0`);
            if (!session) socket.end();
          } else if (command === 'zEND' && session) {
            socket.end();
            return;
          } else if (command === 'zINSTREAM') {
            streaming = { id: nextId++, chunks: [], received: 0 };
          } else {
            socket.end('UNKNOWN COMMAND\0');
            return;
          }
          continue;
        }
        if (buffer.length < 4) return;
        const length = buffer.readUInt32BE(0);
        if (length === 0) {
          buffer = buffer.subarray(4);
          const request: Request = { connection: connection.index, id: streaming.id, data: Buffer.concat(streaming.chunks) };
          streaming = undefined;
          this.requests.push(request);
          send(this.reply(request));
          if (!session) socket.end();
          continue;
        }
        if (buffer.length < 4 + length) return;
        streaming.chunks.push(Buffer.from(buffer.subarray(4, 4 + length)));
        streaming.received += length;
        buffer = buffer.subarray(4 + length);
        this.onChunk?.(connection, streaming.id, streaming.received);
        if (socket.destroyed) return;
      }
    });
  }
}

function defaultReply(request: Request): string {
  const verdict = request.data.includes('EICAR') ? 'Eicar-Test-Signature FOUND' : 'OK';
  return `${request.id}: stream: ${verdict}\0`;
}

const fakes: SessionClamd[] = [];
const others: FakeClamd[] = [];
const scanners: ClamdScanner[] = [];
after(async () => {
  for (const s of scanners) s.close();
  await Promise.all([...fakes.map((f) => f.stop()), ...others.map((f) => f.stop())]);
});

function scanner(endpoints: string[], overrides: Partial<Record<keyof ClamavConfig, unknown>> = {}, onChange?: (h: ClamdEndpointHealth) => void): ClamdScanner {
  return testScanner(scanners, endpoints, overrides, onChange);
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** An INSTREAM data chunk as sent on the wire: 4 bytes of length, then the data. */
function chunk(data: string | Buffer): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

const IDSESSION = Buffer.from('zIDSESSION\0', 'latin1');
const INSTREAM = Buffer.from('zINSTREAM\0', 'latin1');
const END = Buffer.alloc(4);

/**
 * Records every `write()` our client sockets make while `fn` runs (the fake's own sockets excluded): one
 * write() of a buffer is one write system call when the socket takes it at once, as it does for small ones.
 */
async function recordWrites<T>(fake: SessionClamd, fn: () => Promise<T>): Promise<{ value: T; writes: Buffer[] }> {
  const original = net.Socket.prototype.write;
  const writes: Buffer[] = [];
  net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]): boolean {
    const data = args[0];
    if (!fake.connections.some((c) => c.socket === this)) {
      writes.push(typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data as Uint8Array));
    }
    return Reflect.apply(original, this, args) as boolean;
  } as typeof original;
  try {
    const value = await fn();
    return { value, writes };
  } finally {
    net.Socket.prototype.write = original;
  }
}

test('two small scans: one session connection, ids 1 and 2, exactly the bytes expected, one write per scan', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint]);

  const first = await recordWrites(fake, () => s.scan(Buffer.from('hello')));
  assert.deepEqual(first.value, { type: 'clean' });
  // The IDSESSION check on a connection of its own, closed with END; then the scan connection.
  assert.equal(fake.connections.length, 2);
  const check = fake.connections[0];
  assert.deepEqual(check?.bytes, Buffer.from('zIDSESSION\0zPING\0zEND\0', 'latin1'));
  await waitFor('the check connection closed', () => check?.closed === true);
  const conn = fake.connections[1];
  assert.ok(conn);
  const firstScan = Buffer.concat([INSTREAM, chunk('hello'), END]);
  assert.deepEqual(conn.bytes, Buffer.concat([IDSESSION, firstScan]));
  // On the new connection: IDSESSION at once, then the command, the only chunk and the end in one write.
  const onConn = first.writes.slice(-2);
  assert.deepEqual(onConn, [IDSESSION, firstScan]);

  const readsBefore = conn.reads.length;
  const second = await recordWrites(fake, () => s.scan(Buffer.from('EICAR again')));
  assert.deepEqual(second.value, { type: 'infected', signature: 'Eicar-Test-Signature' });
  assert.equal(fake.connections.length, 2, 'no new connection: the session was reused');
  const secondScan = Buffer.concat([INSTREAM, chunk('EICAR again'), END]);
  assert.deepEqual(second.writes, [secondScan], 'a small message on a reused connection is one write');
  assert.equal(conn.reads.length, readsBefore + 1, 'clamd reads the whole request at once');
  assert.deepEqual(conn.bytes, Buffer.concat([IDSESSION, firstScan, secondScan]));
  assert.deepEqual(
    fake.requests.map((r) => [r.connection, r.id]),
    [
      [1, 1],
      [1, 2],
    ],
  );
  assert.equal(conn.closed, false, 'kept open for the next scan');
});

test('a larger message: the command goes with the first chunk, the last chunk with the end of the stream', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint], { chunkSize: '4K' });
  await s.scan(Buffer.from('warm-up'));
  const data = Buffer.alloc(10_000, 'm');
  const { value, writes } = await recordWrites(fake, () => s.scan(data));
  assert.deepEqual(value, { type: 'clean' });
  assert.deepEqual(writes, [
    Buffer.concat([INSTREAM, chunk(data.subarray(0, 4096))]),
    chunk(data.subarray(4096, 8192)),
    Buffer.concat([chunk(data.subarray(8192)), END]),
  ]);
  // A message of exactly two chunks: the second one still waits for the end and goes out with it.
  const exact = Buffer.alloc(8192, 'e');
  const two = await recordWrites(fake, async () => {
    const scan = s.begin();
    await scan.write(exact.subarray(0, 4096));
    await scan.write(exact.subarray(4096));
    return scan.finish();
  });
  assert.deepEqual(two.value, { type: 'clean' });
  assert.deepEqual(two.writes, [Buffer.concat([INSTREAM, chunk(exact.subarray(0, 4096))]), Buffer.concat([chunk(exact.subarray(4096)), END])]);
  assert.deepEqual(
    fake.requests.map((r) => r.data.length),
    [7, 10_000, 8192],
  );
  assert.equal(fake.scanConnections.length, 1);
});

test('the first chunk starts small and grows as data comes: the bytes on the wire are still whole 64 KiB chunks', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint]);
  await s.scan(Buffer.from('warm-up'));
  // 100 000 bytes in 3 000-byte pieces: the buffer grows 8 -> 16 -> 32 -> 64 KiB while the first chunk fills.
  const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => 'abcdefghijklmnopqrstuvwxyz'.charCodeAt(i % 26)));
  const streamed = await recordWrites(fake, async () => {
    const scan = s.begin();
    for (let at = 0; at < data.length; at += 3000) await scan.write(data.subarray(at, at + 3000));
    return scan.finish();
  });
  assert.deepEqual(streamed.value, { type: 'clean' });
  assert.deepEqual(streamed.writes, [Buffer.concat([INSTREAM, chunk(data.subarray(0, 65_536))]), Buffer.concat([chunk(data.subarray(65_536)), END])]);
  // One piece larger than the first buffer: it grows straight to the size needed, still one write.
  const piece = data.subarray(0, 20_000);
  const one = await recordWrites(fake, () => s.scan(piece));
  assert.deepEqual(one.writes, [Buffer.concat([INSTREAM, chunk(piece), END])]);
  assert.deepEqual(
    fake.requests.map((r) => r.data.length),
    [7, 100_000, 20_000],
  );
  assert.ok(fake.requests[1]?.data.equals(data), 'clamd received the message bytes in order');
});

test('an empty message is the command and the end of the stream in one write', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint]);
  await s.scan(Buffer.from('warm-up'));
  const { value, writes } = await recordWrites(fake, () => s.scan(Buffer.alloc(0)));
  assert.deepEqual(value, { type: 'clean' });
  assert.deepEqual(writes, [Buffer.concat([INSTREAM, END])]);
  assert.equal(fake.requests.at(-1)?.id, 2);
});

for (const [what, reply, reason] of [
  ['an answer for another request id', '2: stream: OK\0', 'protocol'],
  ['an answer without a request id', 'stream: OK\0', 'protocol'],
  ['garbage', '1: \x01\x02 OK?? what\0', 'protocol'],
  ['a clean verdict with extra bytes after it', '1: stream: OK\0garbage', 'protocol'],
  ['two replies at once', '1: stream: OK\x002: stream: OK\0', 'protocol'],
  ['an error', "1: stream: Can't allocate memory ERROR\0", 'error'],
  ["clamd's size-limit refusal", '1: INSTREAM size limit exceeded. ERROR\0', 'size-limit'],
  ['a limit heuristic', '1: stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0', 'size-limit'],
] as const) {
  test(`${what} fails as '${reason}', never clean, and the connection is closed, not reused`, async () => {
    const fake = await SessionClamd.start();
    const s = scanner([fake.endpoint]);
    fake.reply = () => reply;
    const result = await s.scan(Buffer.from('hello'));
    assert.equal(failedReason(result), reason, JSON.stringify(result));
    const conn = fake.scanConnections[0];
    await waitFor('the connection closed', () => conn?.closed === true);
    fake.reply = defaultReply;
    assert.deepEqual(await s.scan(Buffer.from('next')), { type: 'clean' });
    assert.equal(fake.scanConnections.length, 2, 'the next scan opened a new connection');
    assert.equal(fake.requests.at(-1)?.id, 1, 'and it is request 1 of the new session');
  });
}

test('an idle connection that clamd closes is dropped at once; the next scan opens a new one and succeeds', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint]);
  assert.deepEqual(await s.scan(Buffer.from('one')), { type: 'clean' });
  const first = fake.scanConnections[0];
  assert.ok(first);
  first.socket.end(); // clamd restarted or timed the session out: FIN while we are idle
  await waitFor('our side closed too', () => first.closed);
  assert.deepEqual(await s.scan(Buffer.from('two')), { type: 'clean' });
  assert.equal(fake.scanConnections.length, 2);
  assert.equal(s.health().endpoints[0]?.up, true, 'an idle connection closing is not an endpoint failure');

  // The same for a connection clamd drops abruptly.
  const second = fake.scanConnections[1];
  second?.socket.destroy();
  await waitFor('our side closed too', () => second?.closed === true);
  await sleep(10);
  assert.deepEqual(await s.scan(Buffer.from('three')), { type: 'clean' });
  assert.equal(fake.scanConnections.length, 3);
});

test('bytes from clamd while a connection is idle: it is dropped, not used for the next scan', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint]);
  assert.deepEqual(await s.scan(Buffer.from('one')), { type: 'clean' });
  const first = fake.scanConnections[0];
  first?.socket.write('1: stream: OK\0');
  await waitFor('the connection closed', () => first?.closed === true);
  assert.deepEqual(await s.scan(Buffer.from('two')), { type: 'clean' });
  assert.equal(fake.scanConnections.length, 2);
});

test(`an idle connection is closed with END after ${SESSION_IDLE_MS} ms; the next scan opens a new one`, async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint]);
  assert.deepEqual(await s.scan(Buffer.from('one')), { type: 'clean' });
  const first = fake.scanConnections[0];
  assert.ok(first);
  const released = Date.now();
  await sleep(SESSION_IDLE_MS / 2);
  assert.equal(first.closed, false, 'still open while young');
  await waitFor('the idle connection closed', () => first.closed, SESSION_IDLE_MS * 4);
  const idleFor = Date.now() - released;
  assert.ok(idleFor >= SESSION_IDLE_MS - 5, `closed after ${idleFor} ms`);
  assert.deepEqual(first.commands.at(-1), 'zEND');
  assert.ok(first.bytes.subarray(-5).equals(Buffer.from('zEND\0', 'latin1')));
  assert.deepEqual(await s.scan(Buffer.from('two')), { type: 'clean' });
  assert.equal(fake.scanConnections.length, 2);
});

test('close() closes pooled connections with END at once', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint], { maxConcurrentScans: 3 });
  const results = await Promise.all([1, 2, 3].map((i) => s.scan(Buffer.from(`message ${i}`))));
  assert.deepEqual(results, [{ type: 'clean' }, { type: 'clean' }, { type: 'clean' }]);
  assert.equal(fake.scanConnections.length, 3);
  assert.equal(fake.openConnections, 3);
  const closedAt = Date.now();
  s.close();
  await waitFor('every connection closed', () => fake.openConnections === 0, SESSION_IDLE_MS / 2);
  assert.ok(Date.now() - closedAt < SESSION_IDLE_MS, 'closed by close(), not by the idle bound');
  for (const c of fake.scanConnections) assert.equal(c.commands.at(-1), 'zEND');
});

test('at most maxConcurrentScans idle connections are kept; the most recently used is taken first', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint], { maxConcurrentScans: 2, admissionWait: '2s' });
  // Two scans at once on two connections; the one on connection B answers last.
  const gates = new Map<string, () => void>();
  fake.reply = (r) => {
    const text = r.data.toString('latin1');
    if (text === 'slow') {
      const conn = fake.connections[r.connection];
      gates.set(text, () => conn?.socket.write(`${r.id}: stream: OK\0`));
      return null;
    }
    return defaultReply(r);
  };
  const slow = s.scan(Buffer.from('slow'));
  await waitFor('the slow scan at clamd', () => fake.requests.length === 1);
  assert.deepEqual(await s.scan(Buffer.from('fast')), { type: 'clean' });
  gates.get('slow')?.();
  assert.deepEqual(await slow, { type: 'clean' });
  const slowConnection = fake.requests[0]?.connection;
  assert.equal(fake.scanConnections.length, 2);
  // LIFO: the slow scan's connection came back last, so it is taken first.
  assert.deepEqual(await s.scan(Buffer.from('next')), { type: 'clean' });
  assert.equal(fake.requests.at(-1)?.connection, slowConnection);
  assert.equal(fake.requests.at(-1)?.id, 2);

  // Four scans at once with two slots still use two connections: nothing more is opened.
  const four = await Promise.all([1, 2, 3, 4].map((i) => s.scan(Buffer.from(`m${i}`))));
  assert.ok(four.every((r) => r.type === 'clean'));
  assert.equal(fake.scanConnections.length, 2);
  assert.equal(fake.openConnections, 2);
});

test('with more connections back than maxConcurrentScans allows idle, the surplus is closed with END', async () => {
  const fake = await SessionClamd.start();
  const pool = new ClamdSessionPool(parseClamdEndpoint(fake.endpoint), { maxIdle: 1, connectTimeoutMs: 1000, idleMs: 60_000 });
  const a = await pool.acquire();
  const b = await pool.acquire();
  assert.equal(pool.support, 'session');
  assert.deepEqual([a.requestId, b.requestId, a.reused, b.reused], [1, 1, false, false]);
  a.release(true);
  b.release(true);
  assert.equal(pool.idle, 1);
  await waitFor('the surplus closed', () => fake.openConnections === 1);
  assert.equal(fake.connections.filter((c) => c.commands.at(-1) === 'zEND').length, 2, 'the IDSESSION check and the surplus connection ended with END');
  const c = await pool.acquire();
  assert.equal(c.socket, a.socket, 'the one kept is the one that came back while there was room');
  assert.deepEqual([c.requestId, c.reused], [2, true]);
  // reset() (endpoint marked down): a connection in use then is not taken back, and support is checked again.
  pool.reset();
  assert.equal(pool.support, 'unknown');
  c.release(true);
  assert.equal(pool.idle, 0);
  pool.close();
  await waitFor('all closed', () => fake.openConnections === 0);
});

test('a reused connection that dies mid-scan is a lost connection: error (never clean), endpoint marked down', async () => {
  const fake = await SessionClamd.start();
  const changes: ClamdEndpointHealth[] = [];
  const s = scanner([fake.endpoint], { chunkSize: '4K' }, (h) => changes.push(h));
  assert.deepEqual(await s.scan(Buffer.from('one')), { type: 'clean' });
  fake.onChunk = (conn, id, received) => {
    if (id === 2 && received >= 8192) conn.socket.destroy();
  };
  const scan = s.begin();
  for (let i = 0; i < 10; i++) await scan.write(Buffer.alloc(4096, 'x'));
  const result = await scan.finish();
  assert.equal(failedReason(result), 'error', JSON.stringify(result));
  assert.equal(fake.scanConnections.length, 1, 'it was the reused connection');
  assert.equal(s.health().endpoints[0]?.up, false);
  assert.ok(changes.some((c) => !c.up));
  // Marked down, the endpoint is still tried when it is the only one; support is checked again, then a new session.
  fake.onChunk = undefined;
  assert.deepEqual(await s.scan(Buffer.from('after')), { type: 'clean' });
  assert.equal(fake.checkConnections.length, 2, 'the IDSESSION check ran again');
  assert.equal(fake.scanConnections.length, 2);
});

test('an answer before the end of the stream is not believed on a session either, and the connection is closed', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint], { chunkSize: '4K' });
  assert.deepEqual(await s.scan(Buffer.from('one')), { type: 'clean' });
  fake.onChunk = (conn, id) => conn.socket.write(`${id}: stream: OK\0`);
  const scan = s.begin();
  await scan.write(Buffer.alloc(5000, 'y')); // more than a chunk: the first chunk goes out now
  const conn = fake.scanConnections[0];
  await waitFor('the early answer', () => fake.requests.length === 1 && conn?.closed === true);
  const result = await scan.finish();
  assert.equal(failedReason(result), 'protocol');
  assert.match(result.type === 'failed' ? result.detail : '', /before the end of the stream/);
});

test('abort() and a deadline on a reused connection close it; the next scan gets a new one', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint], { scanDeadline: '200ms' });
  assert.deepEqual(await s.scan(Buffer.from('one')), { type: 'clean' });
  const scan = s.begin();
  await scan.write(Buffer.from('abandoned'));
  scan.abort();
  assert.equal(failedReason(await scan.finish()), 'error');
  await waitFor('closed', () => fake.scanConnections[0]?.closed === true);

  fake.reply = () => null; // stall
  const stalled = await s.scan(Buffer.from('stalled'));
  assert.equal(failedReason(stalled), 'timeout');
  await waitFor('closed', () => fake.scanConnections[1]?.closed === true);
  fake.reply = defaultReply;
  assert.deepEqual(await s.scan(Buffer.from('fine')), { type: 'clean' });
  assert.equal(fake.scanConnections.length, 3);
});

test('a server without IDSESSION gets a plain connection per scan, as before', async () => {
  const fake = await FakeClamd.start({ unix: true });
  others.push(fake);
  const s = scanner([fake.endpoint]);
  assert.deepEqual(await s.scan(Buffer.from('one')), { type: 'clean' });
  assert.equal((await s.scan(Buffer.from('EICAR'))).type, 'infected');
  assert.deepEqual(fake.commands, ['zIDSESSION', 'zINSTREAM', 'zINSTREAM'], 'checked once, then plain INSTREAM connections');
  assert.equal(fake.connections, 3);
  await waitFor('no connection left open', () => fake.openConnections === 0);
});

test('a server that accepts but does not answer the IDSESSION check: unreachable within connectTimeout, marked down', async () => {
  const fake = await SessionClamd.start({ silent: true });
  const s = scanner([fake.endpoint], { connectTimeout: '200ms' });
  const started = Date.now();
  const result = await s.scan(Buffer.from('hello'));
  assert.equal(failedReason(result), 'unreachable', JSON.stringify(result));
  assert.match(result.type === 'failed' ? result.detail : '', /IDSESSION.*no reply within 200 ms/);
  assert.ok(Date.now() - started < 1000);
  assert.equal(s.health().endpoints[0]?.up, false);
});

test('many sequential scans: one connection, ids counting up, clean and infected alternating', async () => {
  const fake = await SessionClamd.start();
  const s = scanner([fake.endpoint]);
  for (let i = 0; i < 50; i++) {
    const result = await s.scan(Buffer.from(i % 2 === 0 ? `clean ${i}` : `EICAR ${i}`));
    assert.equal(result.type, i % 2 === 0 ? 'clean' : 'infected');
  }
  assert.equal(fake.scanConnections.length, 1);
  assert.deepEqual(
    fake.requests.map((r) => r.id),
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
});
