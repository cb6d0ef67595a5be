// Limits of the milter listener against peers that misbehave on the wire: a packet trickled one byte a second,
// a silent peer, a peer that never reads its replies, garbage, and impossible length fields. The first part
// drives MilterServer in this process (exact timings); the second runs the product (`serve` as a child) and
// checks that only the offending connection is closed, another session in the middle of a message finishes,
// and the process's descriptors and memory return to their baseline.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CommandCode, MilterServer, Verdict, encodeCommand, type MilterFilter, type MilterProtocolError } from '@postfix-milter-ts/protocol';
import { MilterClient } from '@postfix-milter-ts/protocol/testing';
import { FakeClamd } from '../harness/fake-clamd.js';
import { GatewayProcess } from '../harness/gateway-process.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Resolves with the milliseconds until the socket closes (or rejects after `timeoutMs`). */
function closedWithin(socket: net.Socket, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

function rawConnect(address: string): Promise<net.Socket> {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => undefined);
      resolve(s);
    });
  });
}

const OPTNEG = encodeCommand({ type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff });
const CONNECT_MACROS = encodeCommand({ type: 'macro', stage: CommandCode.CONNECT, macros: [['j', 'mx.example.test']] });
const CONNECT = encodeCommand({ type: 'connect', hostname: 'client.example.org', family: '4', port: 40000, address: '192.0.2.10' });

/** OPTNEG (whole, read the reply), then the first bytes of CONNECT. */
async function negotiatedRaw(address: string): Promise<net.Socket> {
  const s = await rawConnect(address);
  s.write(OPTNEG);
  await new Promise<void>((resolve) => s.once('data', () => resolve()));
  return s;
}

// ---------------------------------------------------------------------------------------------------------
describe('MilterServer deadlines and back-pressure (in process)', () => {
  const filter: MilterFilter<undefined> = {
    connect: () => undefined,
    helo: () => undefined,
    envfrom: () => undefined,
    body: () => undefined,
    eom: () => Verdict.accept,
  };
  let server: MilterServer<undefined>;
  let address = '';
  const errors: MilterProtocolError[] = [];

  before(async () => {
    server = new MilterServer(filter, { idleTimeoutMs: 5000, packetTimeoutMs: 1500, observer: { protocolError: (_id, e) => errors.push(e) } });
    address = await server.listen('inet:127.0.0.1:0');
  });
  after(async () => {
    await server.close(500);
  });

  test('a packet trickled one byte a second is cut at the packet deadline, though the idle timer keeps being re-armed', async () => {
    const other = await MilterClient.connect(address);
    await other.negotiate();
    const s = await negotiatedRaw(address);
    const before = errors.length;
    // CONNECT, one byte per second: every byte is "activity", so only a per-packet deadline ends this.
    let i = 0;
    const trickle = setInterval(() => {
      if (i < CONNECT.length && !s.destroyed) s.write(CONNECT.subarray(i, ++i));
    }, 1000);
    try {
      const ms = await closedWithin(s, 6000);
      assert.ok(ms >= 1300 && ms < 3500, `closed after ${ms} ms; the packet deadline is 1500 ms`);
      assert.ok(i >= 1 && i < CONNECT.length, 'the packet was still incomplete when the server gave up');
    } finally {
      clearInterval(trickle);
    }
    assert.ok(errors.slice(before).some((e) => e.kind === 'timeout' && /not complete/.test(e.message)), errors.map((e) => e.message).join('; '));
    // Only that connection: another session goes on.
    const r = await other.send({ type: 'connect', hostname: 'h', family: '4', port: 1, address: '192.0.2.1' });
    assert.equal(r?.final.type, 'continue');
    await other.quit();
  });

  test('packets written in pieces, and many small packets over a longer time, are not cut', async () => {
    const s = await negotiatedRaw(address);
    const replies: Buffer[] = [];
    s.on('data', (d: Buffer) => replies.push(d));
    // One 60 KiB body packet in 6 pieces 150 ms apart (900 ms < 1500 ms), after CONNECT/HELO/MAIL.
    s.write(Buffer.concat([CONNECT_MACROS, CONNECT]));
    s.write(encodeCommand({ type: 'helo', name: 'client.example.org' }));
    s.write(encodeCommand({ type: 'mail', sender: '<a@example.org>', esmtpArgs: [] }));
    const body = encodeCommand({ type: 'body', chunk: Buffer.alloc(60 * 1024, 0x61) });
    const piece = Math.ceil(body.length / 6);
    for (let off = 0; off < body.length; off += piece) {
      s.write(body.subarray(off, off + piece));
      await sleep(150);
    }
    // Then 12 complete HELO packets 250 ms apart: 3 s in all, twice the packet deadline.
    for (let k = 0; k < 12; k++) {
      s.write(encodeCommand({ type: 'helo', name: `again-${k}.example.org` }));
      await sleep(250);
    }
    assert.equal(s.destroyed, false, 'the connection is still open');
    await waitFor('16 replies', () => Buffer.concat(replies).length >= 16 * 5);
    s.destroy();
  });

  test('a peer that sends commands but never reads the replies makes the server stop reading (bounded reply backlog)', async () => {
    // Each HELO (8 bytes) is answered with a ~1 kB reply; 40,000 of them, written in 400 bursts, would leave
    // ~40 MB of replies in memory for a peer that never reads.
    let replies = 0;
    const text = `refused ${'x'.repeat(960)}`;
    const loud = new MilterServer<undefined>(
      { helo: () => Verdict.tempfail({ code: 451, xcode: '4.7.1', text }) },
      { observer: { reply: () => void replies++ } },
    );
    const loudAddress = await loud.listen('inet:127.0.0.1:0');
    try {
      const s = await negotiatedRaw(loudAddress);
      s.pause(); // never read again
      s.write(Buffer.concat([CONNECT_MACROS, CONNECT]));
      const burst = Buffer.concat(Array.from({ length: 100 }, () => encodeCommand({ type: 'helo', name: 'x' })));
      for (let k = 0; k < 400; k++) {
        s.write(burst);
        await sleep(2);
      }
      await sleep(1500);
      const settled = replies;
      await sleep(500);
      // Kernel socket buffers hold several MB; past that the server stops at ~1 MiB of unsent replies.
      assert.ok(settled < 20_000, `${settled} replies of ~1 kB produced for a peer that reads none`);
      assert.equal(replies, settled, 'no more replies once the backlog is full');
      s.destroy();
      await waitFor('the session to end', () => loud.sessionCount === 0);
    } finally {
      await loud.close(200);
    }
  });

  test('a silent session is closed at the idle timeout', async () => {
    const s = await negotiatedRaw(address);
    s.write(Buffer.concat([CONNECT_MACROS, CONNECT]));
    const ms = await closedWithin(s, 9000);
    assert.ok(ms >= 4500 && ms < 7000, `closed after ${ms} ms; idle timeout 5000 ms`);
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('the product (serve) against malformed and slow peers', () => {
  let clamd: FakeClamd;
  let gateway: GatewayProcess;

  before(async () => {
    clamd = await FakeClamd.start({ unix: true });
    gateway = await GatewayProcess.start({
      config: `
milter:
  listen: inet:127.0.0.1:0
  idleTimeout: 2s
  tcpQuickAck: false
relay:
  localDomains: [example.test]
clamav:
  endpoints: [${clamd.endpoint}]
  healthCheckInterval: 1h
metrics:
  port: 0
`,
    });
  });
  after(async () => {
    await gateway?.stop();
    await clamd?.stop();
  });

  const pid = (): number => {
    const p = gateway.child?.pid;
    assert.ok(p !== undefined);
    return p;
  };
  const fds = (): number => readdirSync(`/proc/${pid()}/fd`).length;
  const rssMiB = (): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid()}/status`, 'utf8'))?.[1]) / 1024;
  const metric = async (name: string, labels = ''): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${gateway.metricsPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
    return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  /** A whole clean message over MilterClient, as Postfix sends it; returns the EOM reply type. */
  async function cleanMessage(client: MilterClient): Promise<string> {
    await client.send({ type: 'mail', sender: '<sender@example.org>', esmtpArgs: [] });
    await client.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    await client.send({ type: 'header', name: 'Subject', value: ' hello' });
    await client.send({ type: 'eoh' });
    await client.body(Buffer.from('Hello.\r\n'));
    const r = await client.send({ type: 'eom', chunk: Buffer.alloc(0) });
    return r?.final.type ?? 'none';
  }

  async function connected(): Promise<MilterClient> {
    const c = await MilterClient.connect(gateway.milterAddress, { replyTimeoutMs: 10_000 });
    await c.negotiate();
    await c.send({ type: 'connect', hostname: 'localhost', family: '4', port: 40001, address: '127.0.0.1' }, [['j', 'mx.example.test'], ['v', 'Postfix 3.7.11']]);
    await c.send({ type: 'helo', name: 'client.example.org' });
    return c;
  }

  test('garbage, a zero length and a length over the maximum each close that connection only; a message in flight finishes', async () => {
    await sleep(300);
    const fd0 = fds();
    const rss0 = rssMiB();
    const errors0 = await metric('pmt_protocol_errors_total', '{kind="frame-too-large"}');
    const zero0 = await metric('pmt_protocol_errors_total', '{kind="frame-length-zero"}');

    const busy = await connected();
    await busy.send({ type: 'mail', sender: '<sender@example.org>', esmtpArgs: [] });
    await busy.send({ type: 'rcpt', recipient: '<alice@example.test>', esmtpArgs: [] });
    await busy.send({ type: 'header', name: 'Subject', value: ' in flight' });

    const cases: Array<[string, Buffer]> = [
      ['text garbage', Buffer.from('GET / HTTP/1.0\r\nHost: milter\r\n\r\n')],
      ['zero length', Buffer.from([0, 0, 0, 0, 0x4f])],
      ['2 GiB length', Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x42, 0x42])],
      ['4 GiB length', Buffer.from([0xff, 0xff, 0xff, 0xff])],
      ['unknown command byte', Buffer.from([0, 0, 0, 1, 0x01])],
      ['BODY before OPTNEG', encodeCommand({ type: 'body', chunk: Buffer.from('x') })],
    ];
    for (const [what, bytes] of cases) {
      const s = await rawConnect(gateway.milterAddress);
      s.write(bytes);
      const ms = await closedWithin(s, 3000).catch((e: Error) => assert.fail(`${what}: ${e.message}`));
      assert.ok(ms < 1000, `${what}: closed after ${ms} ms`);
    }
    // Garbage after a proper negotiation, too.
    const negotiatedThenGarbage = await connected();
    negotiatedThenGarbage.writeRaw(Buffer.from([0x00, 0x00, 0x00, 0x03, 0x4d, 0x41]));
    negotiatedThenGarbage.writeRaw(Buffer.from('not a sender without NUL, then more bytes that do not fit'));
    await negotiatedThenGarbage.waitForClose();

    await busy.send({ type: 'eoh' });
    await busy.body(Buffer.from('still here\r\n'));
    const eom = await busy.send({ type: 'eom', chunk: Buffer.alloc(0) });
    assert.equal(eom?.final.type, 'accept', 'the session in the middle of a message was not disturbed');
    await busy.quit();

    assert.ok((await metric('pmt_protocol_errors_total', '{kind="frame-too-large"}')) >= errors0 + 2);
    assert.ok((await metric('pmt_protocol_errors_total', '{kind="frame-length-zero"}')) >= zero0 + 1);
    assert.equal(gateway.exitCode, undefined, 'the gateway is still running');
    await waitFor(`descriptors back to ${fd0}`, () => fds() <= fd0);
    assert.ok(rssMiB() < rss0 + 30, `RSS ${rssMiB().toFixed(1)} MiB, baseline ${rss0.toFixed(1)} MiB`);
  });

  test('a slow MTA (one byte a second) and a silent one are both closed after milter.idleTimeout; descriptors return', async () => {
    const fd0 = fds();
    const timeouts0 = await metric('pmt_protocol_errors_total', '{kind="timeout"}');
    const slow = await negotiatedRaw(gateway.milterAddress);
    const silent = await negotiatedRaw(gateway.milterAddress);
    silent.write(Buffer.concat([CONNECT_MACROS, CONNECT]));
    // A body packet announced as 10 kB, one byte a second: without a packet deadline this holds a session for ~3 h.
    const trickled = encodeCommand({ type: 'body', chunk: Buffer.alloc(10_000, 0x61) });
    let i = 0;
    slow.write(Buffer.concat([CONNECT_MACROS, CONNECT]));
    const trickle = setInterval(() => {
      if (!slow.destroyed) slow.write(trickled.subarray(i, ++i));
    }, 1000);
    try {
      const [slowMs, silentMs] = await Promise.all([closedWithin(slow, 8000), closedWithin(silent, 8000)]);
      assert.ok(slowMs >= 1800 && slowMs < 4500, `slow peer closed after ${slowMs} ms (deadline 2 s from its first byte)`);
      assert.ok(silentMs >= 1800 && silentMs < 4500, `silent peer closed after ${silentMs} ms (idle timeout 2 s)`);
    } finally {
      clearInterval(trickle);
    }
    assert.ok((await metric('pmt_protocol_errors_total', '{kind="timeout"}')) >= timeouts0 + 2);
    await waitFor(`descriptors back to ${fd0}`, () => fds() <= fd0);
    // The gateway still serves.
    const c = await connected();
    assert.equal(await cleanMessage(c), 'accept');
    await c.quit();
  });
});
