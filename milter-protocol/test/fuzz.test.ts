// Seeded fuzzing: random and mutated packets. The decoder only ever throws MilterProtocolError; the server
// closes each bad connection with a reason and keeps serving the others. Set FUZZ_SEED to replay a run.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import {
  decodeCommand,
  encodeCommand,
  FrameDecoder,
  MilterProtocolError,
  MilterServer,
  Verdict,
  type MilterCommand,
  type MilterFilter,
} from '@postfix-milter-ts/protocol';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { COMMAND_VECTORS } from './vectors.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 0x5eed1234);

/** mulberry32: small, fast, good enough to drive a fuzzer reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A string of any bytes but NUL (what a C string can hold). */
  text(max: number): string {
    const b = this.bytes(this.int(max));
    for (let i = 0; i < b.length; i++) if (b[i] === 0) b[i] = 0x41;
    return b.toString('latin1');
  }
  command(): MilterCommand {
    switch (this.int(12)) {
      case 0:
        return { type: 'optneg', version: this.int(8), actions: this.int(0x200), protocol: this.int(0x200000) };
      case 1:
        return { type: 'macro', stage: this.int(256), macros: Array.from({ length: this.int(4) }, () => [this.text(12), this.text(20)] as const) };
      case 2:
        return this.int(4) === 0
          ? { type: 'connect', hostname: this.text(30), family: 'U' }
          : { type: 'connect', hostname: this.text(30), family: this.pick(['4', '6', 'L'] as const), port: this.int(65536), address: this.text(40) };
      case 3:
        return { type: 'helo', name: this.text(40) };
      case 4:
        return { type: 'mail', sender: this.text(40), esmtpArgs: Array.from({ length: this.int(3) }, () => this.text(15)) };
      case 5:
        return { type: 'rcpt', recipient: this.text(40), esmtpArgs: [] };
      case 6:
        return { type: 'header', name: this.text(20), value: this.text(200) };
      case 7:
        return { type: 'body', chunk: this.bytes(this.int(3000)) };
      case 8:
        return { type: 'unknown', line: this.text(50) };
      default:
        return { type: this.pick(['data', 'eoh', 'abort'] as const) };
    }
  }
  /** A packet: valid, mutated from a valid one or a captured vector, or plain garbage. */
  packet(): Buffer {
    const kind = this.int(10);
    if (kind < 4) {
      return encodeCommand(this.int(12) ? this.command() : { type: 'eom', chunk: Buffer.alloc(0) });
    }
    if (kind < 9) {
      const base = Buffer.from(this.int(2) ? this.pick(Object.values(COMMAND_VECTORS)) : encodeCommand(this.command()));
      switch (this.int(5)) {
        case 0: // flip bytes
          for (let i = 0, n = 1 + this.int(3); i < n; i++) base[this.int(base.length)] = this.int(256);
          return base;
        case 1: // truncate the payload but keep the length honest
          return fixLength(base.subarray(0, 5 + this.int(Math.max(1, base.length - 5))));
        case 2: // drop a NUL
          return fixLength(Buffer.from(base.toString('latin1').replace('\0', ''), 'latin1'));
        case 3: // a lying length field
          base.writeUInt32BE(this.pick([0, 1, base.length, 0x7fffffff, this.int(5000)]), 0);
          return base;
        default: // unknown command byte
          base[4] = this.int(256);
          return base;
      }
    }
    return this.bytes(1 + this.int(64));
  }
}

function fixLength(packet: Buffer): Buffer {
  const b = Buffer.from(packet);
  if (b.length >= 5) b.writeUInt32BE(b.length - 4, 0);
  return b;
}

test(`decoder: 20000 random and mutated packets only ever throw MilterProtocolError (seed ${SEED})`, () => {
  const g = new Gen(SEED);
  let decoded = 0;
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const decoder = new FrameDecoder(1 << 20);
    try {
      for (const f of decoder.push(g.packet())) {
        decodeCommand(f);
        decoded++;
      }
    } catch (e) {
      assert.ok(e instanceof MilterProtocolError, `packet ${i}: ${String(e)}`);
      assert.ok(e.message.length > 10);
      refused++;
    }
  }
  assert.ok(decoded > 5000 && refused > 2000, `decoded ${decoded}, refused ${refused}: the generator exercises both`);
});

test(`server: fuzzed connections are closed with a reason while a well-behaved MTA keeps working (seed ${SEED})`, async () => {
  const errors: MilterProtocolError[] = [];
  const filter: MilterFilter<{ bytes: number }> = {
    createState: () => ({ bytes: 0 }),
    connect: () => undefined,
    helo: () => undefined,
    envfrom: (s) => void (s.state.bytes = 0),
    envrcpt: (_s, r) => (r.includes('x') ? Verdict.reject({ code: 550, xcode: '5.7.1', text: `no ${r}` }) : undefined),
    header: () => undefined,
    body: (s, chunk) => void (s.state.bytes += chunk.length),
    eom: async (s, m) => {
      await new Promise((r) => setImmediate(r));
      m.addHeader('X-Bytes', String(s.state.bytes));
    },
    unknown: () => Verdict.tempfail(),
  };
  const server = new MilterServer(filter, { maxFrameLength: 128 * 1024, idleTimeoutMs: 2000, observer: { protocolError: (_id, e) => errors.push(e) } });
  const address = await server.listen('inet:127.0.0.1:0');
  const port = Number(address.split(':').at(-1));

  // A well-behaved MTA sends whole messages the whole time.
  let stop = false;
  let good = 0;
  const healthy = (async () => {
    const c = await MilterClient.connect(address);
    await c.negotiate();
    await c.send({ type: 'connect', hostname: 'ok', family: '4', port: 25, address: '192.0.2.1' });
    while (!stop) {
      await c.send({ type: 'mail', sender: '<a@b>', esmtpArgs: [] });
      await c.send({ type: 'rcpt', recipient: '<a@b>', esmtpArgs: [] });
      await c.body(Buffer.from('hello\r\n'));
      const eom = await c.send({ type: 'eom', chunk: Buffer.alloc(0) });
      assert.deepEqual(eom?.interim, [{ type: 'add-header', name: 'X-Bytes', value: '7' }]);
      assert.equal(eom?.final.type, 'continue');
      await c.send({ type: 'abort' });
      good++;
    }
    await c.quit();
  })();

  const g = new Gen(SEED ^ 0xabcdef);
  const prefix = Buffer.concat([
    encodeCommand({ type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff }),
    encodeCommand({ type: 'connect', hostname: 'fuzz', family: '4', port: 1, address: '192.0.2.9' }),
    encodeCommand({ type: 'mail', sender: '<f@z>', esmtpArgs: [] }),
  ]);
  let packets = 0;
  const fuzzOne = (): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      s.on('close', () => resolve());
      s.on('connect', () => {
        const parts: Buffer[] = [g.int(3) ? prefix : Buffer.alloc(0)];
        for (let i = 0, n = 5 + g.int(20); i < n; i++) parts.push(g.packet());
        packets += parts.length - 1;
        const all = Buffer.concat(parts);
        // Random TCP segmentation.
        for (let off = 0; off < all.length; ) {
          const n = 1 + g.int(600);
          s.write(all.subarray(off, off + n));
          off += n;
        }
        setTimeout(() => s.end(), 20 + g.int(50));
      });
    });
  for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 20 }, fuzzOne));
  stop = true;
  await healthy;
  for (let i = 0; i < 100 && server.sessionCount > 0; i++) await new Promise((r) => setTimeout(r, 20));

  assert.ok(packets > 4000, `${packets} fuzzed packets`);
  assert.ok(good > 10, `${good} messages through the well-behaved connection meanwhile`);
  assert.ok(errors.length > 100, `${errors.length} connections closed with a protocol error`);
  const kinds = new Set(errors.map((e) => e.kind));
  for (const k of kinds) assert.ok(['frame-length-zero', 'frame-too-large', 'malformed-command', 'unknown-command', 'unexpected-command', 'negotiation', 'invalid-reply'].includes(k), k);
  assert.ok(errors.every((e) => e.message.length > 10), 'every closing has a reason a person can read');
  assert.equal(server.sessionCount, 0, 'every connection is gone');
  await server.close(100);
});
