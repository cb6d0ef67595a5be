// ClamdScanner against a fake clamd: streaming, reply handling, deadlines, admission, failover, re-probe and
// clean-up. Faults a real clamd will not produce on demand live here; test/e2e/clamd-scanner.test.ts runs the
// same scanner against a real clamd.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { clamavSchema, type ClamavConfig } from 'postfix-milter-ts/scanner/clamd-config.js';
import { ClamdScanner, type ClamdEndpointHealth } from 'postfix-milter-ts/scanner/clamd-scanner.js';
import { failedReason, testScanner } from './scanner-fixture.js';
import { FakeClamd, type FakeClamdOptions } from '../../harness/fake-clamd.js';

const fakes: FakeClamd[] = [];
const scanners: ClamdScanner[] = [];
after(async () => {
  for (const s of scanners) s.close();
  await Promise.all(fakes.map((f) => f.stop()));
});

async function fake(options: FakeClamdOptions = {}): Promise<FakeClamd> {
  const f = await FakeClamd.start(options);
  fakes.push(f);
  return f;
}

function scanner(endpoints: string[], overrides: Partial<Record<keyof ClamavConfig, unknown>> = {}, onChange?: (h: ClamdEndpointHealth) => void): ClamdScanner {
  return testScanner(scanners, endpoints, overrides, onChange);
}

/** A TCP port nothing listens on (connections are refused). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('streams the message in bounded chunks while it is written, before finish(); clean → clean', async () => {
  for (const unix of [true, false]) {
    const f = await fake({ unix });
    const s = scanner([f.endpoint], { chunkSize: '4K' });
    const scan = s.begin();
    // Written at once, before any connection exists: must arrive in order.
    const headers = ['From: a@example.test\r\n', 'To: b@example.test\r\n', 'Subject: hi\r\n', '\r\n'].map((h) => Buffer.from(h));
    for (const h of headers) void scan.write(h);
    const body = Buffer.alloc(20_000, 'abcdefghij\r\n');
    for (let i = 0; i < body.length; i += 1000) await scan.write(body.subarray(i, i + 1000));
    await waitFor('data at clamd before the end of the message', () => (f.scans[0]?.data.length ?? 0) >= 16 * 1024);
    assert.equal(f.scans[0]?.ended, false);
    assert.deepEqual(await scan.finish(), { type: 'clean' });
    const received = f.scans[0];
    assert.ok(received);
    assert.deepEqual(received.data, Buffer.concat([...headers, body]));
    assert.ok(received.chunkSizes.every((n) => n > 0 && n <= 4096), `chunk sizes ${received.chunkSizes.join(',')}`);
    assert.equal(scan.endpoint, f.endpoint);
    assert.equal(scan.bytesWritten, received.data.length);
    await waitFor('connection closed', () => f.openConnections === 0);
    assert.equal(s.health().activeScans, 0);
  }
});

test('a virus is infected with the signature clamd named', async () => {
  const f = await fake();
  const s = scanner([f.endpoint]);
  const result = await s.scan(Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'));
  assert.deepEqual(result, { type: 'infected', signature: 'Eicar-Test-Signature' });
});

test('scan() takes an async iterable of chunks', async () => {
  const f = await fake();
  const s = scanner([f.endpoint]);
  async function* parts(): AsyncGenerator<Buffer> {
    yield Buffer.from('Subject: x\r\n\r\n');
    yield Buffer.from('EICAR in the body\r\n');
  }
  assert.equal((await s.scan(parts())).type, 'infected');
  assert.equal(f.scans[0]?.data.toString(), 'Subject: x\r\n\r\nEICAR in the body\r\n');
});

for (const [reply, reason] of [
  ['stream: Error writing to temporary file ERROR', 'error'],
  ['stream: Can\'t allocate memory ERROR', 'error'],
  ['\u0001garbage OK', 'protocol'],
  ['COMMAND READ TIMED OUT', 'protocol'],
] as const) {
  test(`clamd answering ${JSON.stringify(reply)} is a '${reason}' failure, not clean and not a virus`, async () => {
    const f = await fake({ scan: { kind: 'reply', reply } });
    const result = await scanner([f.endpoint]).scan(Buffer.from('hello'));
    assert.equal(failedReason(result), reason);
  });
}

test("clamd's size-limit refusal is a 'size-limit' failure, whether it comes at once or mid-stream", async () => {
  const early = await fake({ scan: { kind: 'reply-early', reply: 'INSTREAM size limit exceeded. ERROR' } });
  assert.equal(failedReason(await scanner([early.endpoint]).scan(Buffer.from('x'))), 'size-limit');

  const limited = await fake({ streamMaxLength: 100_000 });
  const s = scanner([limited.endpoint], { chunkSize: '16K' });
  const scan = s.begin();
  const chunk = Buffer.alloc(16 * 1024, 'a');
  for (let i = 0; i < 40; i++) await scan.write(chunk); // 640 KiB against a 100 kB limit
  const result = await scan.finish();
  assert.equal(failedReason(result), 'size-limit', JSON.stringify(result));
});

test("when the size-limit reply is lost to a reset, a probe on a new connection still finds the size limit", async () => {
  const f = await fake({ streamMaxLength: 50_000, sizeLimitReply: 'reset' });
  const s = scanner([f.endpoint], { chunkSize: '8K' });
  const scan = s.begin();
  for (let i = 0; i < 20; i++) await scan.write(Buffer.alloc(8 * 1024, 'a'));
  const result = await scan.finish();
  assert.equal(failedReason(result), 'size-limit', JSON.stringify(result));
  assert.equal(f.connections, 3, 'the IDSESSION check (this fake has no sessions), the scan, then one probe');
  assert.equal(s.health().endpoints[0]?.lastError, null, 'a size refusal does not mark clamd down');

  // Under the limit, a lost connection stays an 'error' (the probe is not refused).
  f.streamMaxLength = 10_000_000;
  f.scanBehavior = { kind: 'close-mid-scan', afterBytes: 20_000, reset: true };
  const started = Date.now();
  const lost = await s.scan(Buffer.alloc(100_000, 'b'));
  assert.equal(failedReason(lost), 'error', JSON.stringify(lost));
  assert.ok(Date.now() - started < 1500, 'the probe waits about a second at most');
});

test("a message over our maxScanBytes fails as 'size-limit' at once, and the clamd connection is dropped", async () => {
  const f = await fake();
  const s = scanner([f.endpoint], { maxScanBytes: '64K', chunkSize: '8K' });
  const scan = s.begin();
  // More than a chunk: a full chunk goes out once more data follows it.
  await scan.write(Buffer.alloc(9 * 1024, 'b'));
  await waitFor('streaming to clamd', () => (f.scans[0]?.data.length ?? 0) > 0);
  for (let i = 0; i < 8; i++) await scan.write(Buffer.alloc(8 * 1024, 'b'));
  const result = await scan.finish();
  assert.equal(failedReason(result), 'size-limit');
  assert.match(result.type === 'failed' ? result.detail : '', /maxScanBytes/);
  assert.ok((f.scans[0]?.data.length ?? 0) <= 64 * 1024);
  assert.equal(f.scans[0]?.ended, false, 'no end-of-stream was sent for a truncated message');
  await waitFor('connection closed', () => f.openConnections === 0);
});

test("a stalled clamd fails as 'timeout' at the deadline, counted from finish()", async () => {
  const f = await fake({ scan: { kind: 'stall' } });
  const s = scanner([f.endpoint], { scanDeadline: '300ms' });
  const scan = s.begin();
  await scan.write(Buffer.from('hello'));
  await sleep(400); // longer than the deadline, but before finish(): no failure yet
  const started = Date.now();
  const result = await scan.finish();
  const took = Date.now() - started;
  assert.equal(failedReason(result), 'timeout');
  assert.ok(took >= 280 && took < 1500, `took ${took} ms`);
  await waitFor('connection closed', () => f.openConnections === 0);
  assert.equal(s.health().activeScans, 0);
});

test("a slow but timely clamd is waited for; one past the deadline is a 'timeout'", async () => {
  const f = await fake({ scan: { kind: 'slow', delayMs: 200, reply: 'stream: OK' } });
  assert.deepEqual(await scanner([f.endpoint], { scanDeadline: '1s' }).scan(Buffer.from('x')), { type: 'clean' });
  f.scanBehavior = { kind: 'slow', delayMs: 600, reply: 'stream: OK' };
  assert.equal(failedReason(await scanner([f.endpoint], { scanDeadline: '300ms' }).scan(Buffer.from('x'))), 'timeout');
});

test("a clamd that stops reading: writes do not hang, the scan fails as 'timeout' after sendTimeout", async () => {
  const f = await fake({ scan: { kind: 'stop-reading' } });
  const s = scanner([f.endpoint], { sendTimeout: '300ms', chunkSize: '64K', maxScanBytes: '64M' });
  const scan = s.begin();
  const chunk = Buffer.alloc(64 * 1024, 'c');
  const started = Date.now();
  for (let i = 0; i < 200; i++) await scan.write(chunk); // 12.5 MiB: far more than the socket buffers hold
  const writesTook = Date.now() - started;
  const result = await scan.finish();
  assert.equal(failedReason(result), 'timeout', JSON.stringify(result));
  assert.ok(writesTook < 2000, `writes returned after ${writesTook} ms`);
});

test("clamd closing or resetting mid-scan is a failure (never clean) and marks the endpoint down", async () => {
  for (const reset of [false, true]) {
    const f = await fake({ scan: { kind: 'close-mid-scan', afterBytes: 10_000, reset } });
    const changes: ClamdEndpointHealth[] = [];
    const s = scanner([f.endpoint], { chunkSize: '4K' }, (h) => changes.push(h));
    const scan = s.begin();
    for (let i = 0; i < 10; i++) await scan.write(Buffer.alloc(4096, 'd'));
    const result = await scan.finish();
    assert.equal(failedReason(result), 'error', JSON.stringify(result));
    assert.equal(s.health().endpoints[0]?.up, false);
    assert.ok(changes.some((c) => !c.up), 'the change was reported');
  }
});

test("when every scan slot stays busy past the admission wait the scan fails as 'overloaded'", async () => {
  const f = await fake({ scan: { kind: 'stall' } });
  const s = scanner([f.endpoint], { maxConcurrentScans: 1, admissionWait: '150ms', scanDeadline: '3s' });
  const first = s.begin();
  await first.write(Buffer.from('x'));
  const firstResult = first.finish();
  const second = s.begin();
  await second.write(Buffer.from('y'));
  const started = Date.now();
  const result = await second.finish();
  assert.equal(failedReason(result), 'overloaded');
  assert.ok(Date.now() - started < 1000);
  assert.equal(f.connections, 2, 'the IDSESSION check and the first scan: the overloaded scan never connected');
  first.abort();
  assert.equal(failedReason(await firstResult), 'error');
  // The slot is free again.
  f.scanBehavior = { kind: 'detect' };
  assert.deepEqual(await s.scan(Buffer.from('z')), { type: 'clean' });
});

test('a scan waiting for a slot gets one when another scan finishes', async () => {
  const f = await fake({ scan: { kind: 'slow', delayMs: 100, reply: 'stream: OK' } });
  const s = scanner([f.endpoint], { maxConcurrentScans: 1, admissionWait: '2s' });
  const results = await Promise.all([1, 2, 3].map(() => s.scan(Buffer.from('m'))));
  assert.deepEqual(results, [{ type: 'clean' }, { type: 'clean' }, { type: 'clean' }]);
});

test('failover: a dead endpoint is skipped in favour of the next; a probe brings it back', async () => {
  const deadPort = await closedPort();
  const b = await fake();
  const s = scanner([`inet:127.0.0.1:${deadPort}`, b.endpoint]);
  assert.deepEqual(await s.scan(Buffer.from('1')), { type: 'clean' });
  assert.equal(b.scans.length, 1);
  const health = s.health();
  assert.equal(health.endpoints[0]?.up, false);
  assert.match(health.endpoints[0]?.lastError ?? '', /ECONNREFUSED/);
  assert.equal(health.up, true);

  // The first endpoint comes back, but is not tried again until a probe finds it answering.
  const a = await fake();
  const revived = net.createServer();
  let revivedConnections = 0;
  revived.on('connection', (socket) => {
    revivedConnections++;
    socket.pipe(net.connect(Number(a.endpoint.split(':')[2]), '127.0.0.1')).pipe(socket);
  });
  await new Promise<void>((resolve) => revived.listen(deadPort, '127.0.0.1', resolve));
  try {
    assert.deepEqual(await s.scan(Buffer.from('2')), { type: 'clean' });
    assert.equal(revivedConnections, 0, 'the endpoint marked down was skipped');
    assert.equal(b.scans.length, 2);
    await s.checkNow();
    assert.equal(s.health().endpoints[0]?.up, true);
    assert.deepEqual(await s.scan(Buffer.from('3')), { type: 'clean' });
    assert.equal(a.scans.length, 1, 'after the probe the first endpoint is preferred again');
    assert.equal(b.scans.length, 2);
  } finally {
    revived.close();
    for (const c of [revived]) c.unref();
  }
});

test('a dead endpoint is re-probed quickly on its own and used again once it answers', async () => {
  const dir = await fake({ unix: true });
  const path = dir.endpoint.slice('unix:'.length);
  await dir.stop(); // the socket path is gone: connections fail with ENOENT
  const backup = await fake();
  const s = scanner([`unix:${path}`, backup.endpoint], { reprobeInterval: '100ms' });
  assert.deepEqual(await s.scan(Buffer.from('1')), { type: 'clean' });
  assert.equal(s.health().endpoints[0]?.up, false);

  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end('PONG\0'));
  });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.slice(0, path.lastIndexOf('/')), { recursive: true });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  try {
    await waitFor('the re-probe to find it up', () => s.health().endpoints[0]?.up === true, 2000);
    assert.ok(s.health().endpoints[0]?.lastCheck instanceof Date);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test("with every endpoint down, finish() resolves to 'unreachable' quickly; begin() and write() do not block", async () => {
  const s = scanner([`inet:127.0.0.1:${await closedPort()}`, 'unix:/nonexistent/clamd.sock']);
  const scan = s.begin();
  await scan.write(Buffer.from('hello'));
  const started = Date.now();
  const result = await scan.finish();
  assert.equal(failedReason(result), 'unreachable');
  assert.match(result.type === 'failed' ? result.detail : '', /ECONNREFUSED.*ENOENT/);
  assert.ok(Date.now() - started < 500);
  assert.equal(s.health().up, false);
});

test('health checks: PING and VERSION of each endpoint; garbage or silence marks it down', async () => {
  const good = await fake();
  const garbage = await fake({ commands: 'garbage' });
  const silent = await fake({ commands: 'stall' });
  const s = scanner([good.endpoint, garbage.endpoint, silent.endpoint], { connectTimeout: '200ms' });
  assert.equal(s.health().up, false, 'nothing is known before the first probe');
  const health = await s.checkNow();
  assert.equal(health.up, true);
  const [g, b, q] = health.endpoints;
  assert.equal(g?.up, true);
  assert.equal(g?.version?.engine, '1.4.6');
  assert.equal(g?.version?.signatureVersion, 27500);
  assert.equal(g?.version?.signatureTime?.getFullYear(), 2026);
  assert.equal(b?.up, false);
  assert.match(b?.lastError ?? '', /expected PONG/);
  assert.equal(q?.up, false);
  assert.match(q?.lastError ?? '', /no reply within 200 ms/);
  assert.deepEqual(good.commands.slice(0, 2), ['zPING', 'zVERSION']);
});

test('start() probes at once and then on the interval; close() stops it', async () => {
  const f = await fake();
  const s = scanner([f.endpoint], { healthCheckInterval: '100ms' });
  s.start();
  await waitFor('three pings', () => f.commands.filter((c) => c === 'zPING').length >= 3, 2000);
  assert.equal(s.health().up, true);
  s.close();
  await sleep(50); // a probe already on the wire may still finish
  const pings = f.commands.length;
  await sleep(250);
  assert.equal(f.commands.length, pings, 'no probes after close()');
});

test('abort() drops the connection and frees the slot; close() fails scans in flight', async () => {
  const f = await fake({ scan: { kind: 'stall' } });
  const s = scanner([f.endpoint], { maxConcurrentScans: 1 });
  const scan = s.begin();
  await scan.write(Buffer.from('x'));
  await waitFor('connected', () => f.openConnections === 1);
  scan.abort();
  assert.equal(failedReason(await scan.finish()), 'error');
  await waitFor('connection closed', () => f.openConnections === 0);
  assert.equal(s.health().activeScans, 0);

  const inFlight = s.begin();
  await inFlight.write(Buffer.from('y'));
  const pending = inFlight.finish();
  await waitFor('connected', () => f.openConnections === 1);
  s.close();
  const result = await pending;
  assert.equal(failedReason(result), 'error');
  assert.match(result.type === 'failed' ? result.detail : '', /shut down/);
  assert.equal(failedReason(await s.scan(Buffer.from('z'))), 'error', 'a closed scanner takes no scans');
  await waitFor('connection closed', () => f.openConnections === 0);
});

test('an answer before the end of the stream is not believed', async () => {
  const f = await fake({ scan: { kind: 'reply-early', reply: 'stream: OK' } });
  const scan = scanner([f.endpoint]).begin();
  await scan.write(Buffer.from('x'));
  await waitFor('the early answer', () => f.scans.length === 1 && f.openConnections === 0);
  const result = await scan.finish();
  assert.equal(failedReason(result), 'protocol');
  assert.match(result.type === 'failed' ? result.detail : '', /before the end of the stream/);
});

test('every health check is reported, also when the state stays the same (the check-time gauge must move)', async () => {
  const f = await fake();
  const checks: ClamdEndpointHealth[] = [];
  const changes: ClamdEndpointHealth[] = [];
  const s = new ClamdScanner(clamavSchema.parse({ endpoints: [f.endpoint], connectTimeout: '1s' }), {
    onEndpointChecked: (h) => checks.push(h),
    onEndpointChange: (h) => changes.push(h),
  });
  scanners.push(s);
  await s.checkNow();
  await s.checkNow();
  assert.deepEqual(checks.map((h) => h.up), [true, true]);
  assert.equal(changes.length, 1, 'the log hears of the change only');
  assert.ok(checks[1]!.lastCheck! >= checks[0]!.lastCheck!);
});
