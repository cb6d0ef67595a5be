// End-to-end: IDSESSION connection reuse against a real clamd (Debian's clamav-daemon). A counting proxy in front
// of clamd's UNIX socket shows how many connections the scanner opens and what it sends on them; verdicts come
// from clamd itself. Covers many sequential scans on one connection (EICAR found on a reused connection, clean
// after infected on the same one), concurrent scans sharing a few connections, and clamd killed and restarted.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { clamavSchema, type ClamavConfig } from 'postfix-milter-ts/scanner/clamd-config.js';
import { ClamdScanner } from 'postfix-milter-ts/scanner/clamd-scanner.js';
import type { ScanResult } from 'postfix-milter-ts/scanner/scan-result.js';
import { ClamdInstance, EICAR, SIGNATURES } from '../harness/clamd-instance.js';

interface Proxied {
  /** Bytes the scanner sent on this connection. */
  readonly sent: Buffer[];
  closed: boolean;
}

/** A UNIX socket that passes every connection through to clamd's socket and counts them. */
class CountingProxy {
  readonly #server: net.Server;
  readonly #dir: string;
  readonly #target: string;
  readonly path: string;
  readonly connections: Proxied[] = [];

  private constructor(target: string) {
    this.#target = target;
    this.#dir = mkdtempSync(join(tmpdir(), 'clamd-proxy-'));
    this.path = join(this.#dir, 'proxy.sock');
    this.#server = net.createServer((client) => this.#serve(client));
  }

  static async start(target: string): Promise<CountingProxy> {
    const proxy = new CountingProxy(target);
    await new Promise<void>((resolve, reject) => proxy.#server.once('error', reject).listen(proxy.path, resolve));
    return proxy;
  }

  get endpoint(): string {
    return `unix:${this.path}`;
  }

  /** Connections that started a session and carried scans (not the IDSESSION check, not a size probe). */
  get sessions(): Proxied[] {
    return this.connections.filter((c) => {
      const bytes = Buffer.concat(c.sent).toString('latin1');
      return bytes.startsWith('zIDSESSION\0zINSTREAM\0');
    });
  }

  /** Connections of the IDSESSION support check. */
  get checks(): Proxied[] {
    return this.connections.filter((c) => Buffer.concat(c.sent).toString('latin1').startsWith('zIDSESSION\0zPING\0'));
  }

  get open(): number {
    return this.connections.filter((c) => !c.closed).length;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #serve(client: net.Socket): void {
    const record: Proxied = { sent: [], closed: false };
    this.connections.push(record);
    const upstream = net.connect({ path: this.#target });
    const closeBoth = (): void => {
      record.closed = true;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (data: Buffer) => {
      record.sent.push(Buffer.from(data));
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => client.write(data));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    for (const socket of [client, upstream]) {
      socket.on('error', closeBoth);
      socket.on('close', closeBoth);
    }
  }
}

let clamd: ClamdInstance;
let proxy: CountingProxy;
const scanners: ClamdScanner[] = [];

before(async () => {
  clamd = await ClamdInstance.start({ streamMaxLength: '10M' });
  proxy = await CountingProxy.start(clamd.socketPath);
});

after(async () => {
  for (const s of scanners) s.close();
  await proxy?.stop();
  await clamd?.destroy();
});

function scanner(endpoints: string[], overrides: Partial<Record<keyof ClamavConfig, unknown>> = {}): ClamdScanner {
  const config = clamavSchema.parse({ endpoints, connectTimeout: '2s', scanDeadline: '20s', reprobeInterval: '200ms', ...overrides });
  const s = new ClamdScanner(config);
  scanners.push(s);
  return s;
}

function message(body: string): Buffer {
  return Buffer.from(`From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: test\r\nMessage-ID: <${Math.random()}@example.test>\r\n\r\n${body}`, 'latin1');
}

/** Streams a message the way the milter does: in pieces. */
async function scanMessage(s: ClamdScanner, bytes: Buffer): Promise<ScanResult> {
  const scan = s.begin();
  for (let i = 0; i < bytes.length; i += 8192) await scan.write(bytes.subarray(i, i + 8192));
  return scan.finish();
}

const INFECTED: ScanResult = { type: 'infected', signature: SIGNATURES.eicar };

test('100 sequential scans share one session connection; EICAR is found on it, and clean follows infected', async (t) => {
  const before = proxy.connections.length;
  const s = scanner([proxy.endpoint]);
  const started = performance.now();
  for (let i = 0; i < 100; i++) {
    const infected = i % 3 === 1;
    const body = infected ? `see below\r\n${EICAR.toString('latin1')}\r\n` : `hello ${i}\r\n${'text line\r\n'.repeat(i * 20)}`;
    const result = await scanMessage(s, message(body));
    assert.deepEqual(result, infected ? INFECTED : { type: 'clean' }, `scan ${i}`);
  }
  t.diagnostic(`100 scans in ${(performance.now() - started).toFixed(0)} ms`);
  const opened = proxy.connections.slice(before);
  assert.equal(opened.length, 2, 'the IDSESSION check, then one session for all 100 scans');
  const [check, session] = opened;
  assert.equal(Buffer.concat(check?.sent ?? []).toString('latin1'), 'zIDSESSION\0zPING\0zEND\0');
  const sent = Buffer.concat(session?.sent ?? []).toString('latin1');
  assert.ok(sent.startsWith('zIDSESSION\0zINSTREAM\0'));
  assert.equal(sent.split('zINSTREAM\0').length - 1, 100, 'every scan went over the one connection');
  assert.equal(session?.closed, false, 'still open for the next scan');
  s.close();
  await waitFor('close() ended the session', () => session?.closed === true);
  assert.ok(Buffer.concat(session?.sent ?? []).toString('latin1').endsWith('zEND\0'));
});

test('concurrent scans: never more connections than maxConcurrentScans, reused from round to round', async () => {
  const before = proxy.connections.length;
  const s = scanner([proxy.endpoint], { maxConcurrentScans: 4, admissionWait: '20s' });
  for (let round = 0; round < 5; round++) {
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => scanMessage(s, message(i % 2 === 0 ? `clean ${round}.${i}\r\n` : `${EICAR.toString('latin1')}\r\n`))));
    results.forEach((r, i) => assert.deepEqual(r, i % 2 === 0 ? { type: 'clean' } : INFECTED, `round ${round} scan ${i}`));
  }
  const sessions = proxy.sessions.filter((c) => proxy.connections.indexOf(c) >= before);
  assert.ok(sessions.length >= 1 && sessions.length <= 4, `${sessions.length} session connections for 40 scans`);
  assert.equal(proxy.connections.length - before, sessions.length + 1, 'plus one IDSESSION check, nothing else');
});

test('clamd killed: the scan in flight fails (never clean), idle connections are dropped; after a restart scans succeed on new connections', async () => {
  const viaProxy = scanner([proxy.endpoint]);
  const direct = scanner([clamd.unixEndpoint, clamd.tcpEndpoint]);
  assert.deepEqual(await scanMessage(viaProxy, message('warm-up\r\n')), { type: 'clean' });
  assert.deepEqual(await scanMessage(direct, message('warm-up\r\n')), { type: 'clean' });
  const [session] = proxy.sessions.slice(-1);
  assert.equal(session?.closed, false);

  // A scan in flight on the reused connection when clamd dies.
  const inFlight = viaProxy.begin();
  await inFlight.write(message(''));
  for (let i = 0; i < 10; i++) await inFlight.write(Buffer.alloc(8192, 'x'));
  await clamd.kill();
  for (let i = 0; i < 10; i++) await inFlight.write(Buffer.alloc(8192, 'y'));
  const lost = await inFlight.finish();
  assert.equal(lost.type, 'failed', JSON.stringify(lost));
  assert.equal(lost.type === 'failed' ? lost.reason : '', 'error', JSON.stringify(lost));

  // `direct` only had an idle connection: clamd's close dropped it, so the next scan tries a new connection,
  // which is refused — 'unreachable', not a failure on a dead reused connection.
  await sleep(20);
  const whileDown = await scanMessage(direct, message('clean\r\n'));
  assert.equal(whileDown.type === 'failed' ? whileDown.reason : whileDown.type, 'unreachable', JSON.stringify(whileDown));
  assert.equal((await scanMessage(viaProxy, message('clean\r\n'))).type, 'failed');
  assert.equal(proxy.open, 0, 'nothing left open towards the dead clamd');

  await clamd.restart();
  // Counted by what they carry: health probes (PING, VERSION) of the endpoint marked down go through the proxy too.
  const sessionsBefore = proxy.sessions.length;
  const checksBefore = proxy.checks.length;
  assert.deepEqual(await scanMessage(viaProxy, message('back\r\n')), { type: 'clean' });
  assert.deepEqual(await scanMessage(viaProxy, message(`${EICAR.toString('latin1')}\r\n`)), INFECTED);
  assert.deepEqual(await scanMessage(viaProxy, message('clean after infected\r\n')), { type: 'clean' });
  assert.equal(proxy.sessions.length - sessionsBefore, 1, 'one new session for three scans');
  assert.equal(proxy.checks.length - checksBefore, 1, 'IDSESSION support checked again, once, after the endpoint was down');
  assert.deepEqual(await scanMessage(direct, message('back\r\n')), { type: 'clean' });
  assert.deepEqual(await scanMessage(direct, message(`${EICAR.toString('latin1')}\r\n`)), INFECTED);
});

test("a message over clamd's StreamMaxLength on a reused connection: 'size-limit', and the next scan still works", async () => {
  const s = scanner([proxy.endpoint], { maxScanBytes: '40M' });
  assert.deepEqual(await scanMessage(s, message('first\r\n')), { type: 'clean' });
  const sessionsBefore = proxy.sessions.length;
  const big = message(`${'A'.repeat(998)}\r\n`.repeat(12_000)); // 12 MB against a 10 MiB limit
  const refused = await scanMessage(s, big);
  assert.equal(refused.type === 'failed' ? refused.reason : refused.type, 'size-limit', JSON.stringify(refused));
  assert.deepEqual(await scanMessage(s, message(`${EICAR.toString('latin1')}\r\n`)), INFECTED);
  assert.equal(proxy.sessions.length, sessionsBefore + 1, 'the refused connection was not reused');
  assert.equal(s.health().endpoints[0]?.lastError, null, 'a size refusal does not mark clamd down');
});

async function waitFor(what: string, condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
