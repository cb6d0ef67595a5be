// End-to-end: ClamdScanner against a real clamd (Debian's clamav-daemon) with signatures the harness writes.
// Covers verdicts on real messages (EICAR plain, as an attachment, inside a zip, a worm-named signature),
// clamd's size-limit refusal, clamd killed mid-scan and restarted, VERSION in both forms, UNIX socket and TCP,
// and failover from a dead endpoint.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { clamavSchema, type ClamavConfig } from 'postfix-milter-ts/scanner/clamd-config.js';
import { ClamdScanner } from 'postfix-milter-ts/scanner/clamd-scanner.js';
import type { ScanResult } from 'postfix-milter-ts/scanner/scan-result.js';
import { ClamdInstance, DAILY_BUILD_TIME, DAILY_VERSION, EICAR, SIGNATURES, fakeWormExe } from '../harness/clamd-instance.js';

let clamd: ClamdInstance;
let small: ClamdInstance;
const scanners: ClamdScanner[] = [];

before(async () => {
  clamd = await ClamdInstance.start({ streamMaxLength: '30M' });
  const rss = clamd.rssKiB();
  small = await ClamdInstance.start({ streamMaxLength: '1M', dailyDatabase: false });
  console.log(`# clamd start ${clamd.lastStartMs} ms (second instance ${small.lastStartMs} ms), RSS ${rss} KiB idle`);
});

after(async () => {
  for (const s of scanners) s.close();
  await clamd?.destroy();
  await small?.destroy();
});

function scanner(endpoints: string[], overrides: Partial<Record<keyof ClamavConfig, unknown>> = {}): ClamdScanner {
  const config = clamavSchema.parse({ endpoints, connectTimeout: '2s', scanDeadline: '20s', reprobeInterval: '200ms', maxScanBytes: '40M', ...overrides });
  const s = new ClamdScanner(config);
  scanners.push(s);
  return s;
}

/** Streams a message the way the milter will: header lines, blank line, body in pieces. */
async function scanMessage(s: ClamdScanner, message: string | Buffer): Promise<ScanResult> {
  const bytes = typeof message === 'string' ? Buffer.from(message, 'latin1') : message;
  const scan = s.begin();
  for (let i = 0; i < bytes.length; i += 8192) await scan.write(bytes.subarray(i, i + 8192));
  return scan.finish();
}

function message(body: string, headers = ''): string {
  return `From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: test\r\nMessage-ID: <${Math.random()}@example.test>\r\n${headers}\r\n${body}`;
}

function withAttachment(name: string, type: string, content: Buffer): string {
  const b64 = content.toString('base64').replace(/.{76}/g, '$&\r\n');
  return message(
    ['--b1', 'Content-Type: text/plain', '', 'See attached.', '--b1', `Content-Type: ${type}; name="${name}"`, 'Content-Transfer-Encoding: base64', `Content-Disposition: attachment; filename="${name}"`, '', b64, '--b1--', ''].join('\r\n'),
    'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n',
  );
}

/** A zip archive with stored (uncompressed) members. */
function zip(files: readonly (readonly [string, Buffer])[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(10, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(10, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + data.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}

test('verdicts from a real clamd, over the UNIX socket and over TCP', async (t) => {
  const cases: readonly (readonly [string, string, ScanResult])[] = [
    ['clean text', message('Hello,\r\nthe minutes are attached.\r\n'), { type: 'clean' }],
    ['EICAR in the plain body', message(`${EICAR.toString('latin1')}\r\n`), { type: 'infected', signature: SIGNATURES.eicar }],
    ['EICAR as a text attachment', withAttachment('eicar.txt', 'text/plain', EICAR), { type: 'infected', signature: SIGNATURES.eicar }],
    ['EICAR inside a zip', withAttachment('docs.zip', 'application/zip', zip([['readme.txt', Buffer.from('hi\r\n')], ['eicar.com', EICAR]])), { type: 'infected', signature: SIGNATURES.eicar }],
    ['worm in a fake .exe', withAttachment('invoice.exe', 'application/octet-stream', fakeWormExe()), { type: 'infected', signature: SIGNATURES.worm }],
    ['clean zip and clean .exe-like bytes', withAttachment('ok.zip', 'application/zip', zip([['a.txt', Buffer.from('nothing to see')]])), { type: 'clean' }],
  ];
  for (const endpoint of [clamd.unixEndpoint, clamd.tcpEndpoint]) {
    const s = scanner([endpoint]);
    for (const [name, text, expected] of cases) {
      const started = performance.now();
      const result = await scanMessage(s, text);
      t.diagnostic(`${endpoint.split(':')[0]} ${name}: ${(performance.now() - started).toFixed(1)} ms`);
      assert.deepEqual(result, expected, `${name} via ${endpoint}`);
    }
  }
});

test('VERSION: engine, database version and build time; engine only without the daily database', async () => {
  const full = (await scanner([clamd.unixEndpoint]).checkNow()).endpoints[0];
  assert.equal(full?.up, true);
  assert.match(full?.version?.engine ?? '', /^\d+\.\d+\.\d+/);
  assert.equal(full?.version?.signatureVersion, DAILY_VERSION);
  // clamd prints the time in its local zone with ctime(3); we read it back in ours (the same host).
  assert.equal(full?.version?.signatureTime?.getTime(), DAILY_BUILD_TIME.getTime());

  const bare = (await scanner([small.tcpEndpoint]).checkNow()).endpoints[0];
  assert.equal(bare?.up, true);
  assert.equal(bare?.version?.engine, full?.version?.engine);
  assert.equal(bare?.version?.signatureVersion, undefined);
  assert.equal(bare?.version?.signatureTime, undefined);
});

test("a message over clamd's StreamMaxLength is a 'size-limit' failure, not clean", async () => {
  const s = scanner([small.unixEndpoint, small.tcpEndpoint]);
  const big = message(`${'A'.repeat(998)}\r\n`.repeat(1600)); // 1.6 MB against a 1 MiB limit
  for (let i = 0; i < 3; i++) {
    const result = await scanMessage(s, big);
    assert.equal(result.type === 'failed' ? result.reason : result.type, 'size-limit', JSON.stringify(result));
  }
  assert.equal(s.health().endpoints.every((e) => e.lastError === null), true, 'a size refusal does not mark clamd down');
});

test("a message over our maxScanBytes fails as 'size-limit' before clamd refuses it", async () => {
  const s = scanner([small.unixEndpoint], { maxScanBytes: '512K' });
  const result = await scanMessage(s, message('B'.repeat(600 * 1024)));
  assert.equal(result.type === 'failed' ? result.reason : result.type, 'size-limit');
  assert.match(result.type === 'failed' ? result.detail : '', /maxScanBytes/);
});

test('failover: a dead endpoint first, the live one answers; the dead one is marked down', async () => {
  const s = scanner([`unix:${clamd.dir}/no-such.sock`, clamd.tcpEndpoint]);
  assert.deepEqual(await scanMessage(s, withAttachment('eicar.txt', 'text/plain', EICAR)), { type: 'infected', signature: SIGNATURES.eicar });
  const [dead, live] = s.health().endpoints;
  assert.equal(dead?.up, false);
  assert.match(dead?.lastError ?? '', /ENOENT/);
  assert.equal(live?.up, true);
});

test('a 10 MB message: streamed as written, verdict soon after the end', async (t) => {
  const s = scanner([clamd.unixEndpoint]);
  const body = `${'The quick brown fox jumps over the lazy dog. '.repeat(20)}\r\n`.repeat(11_500);
  const text = Buffer.from(withAttachment('eicar.txt', 'text/plain', EICAR).replace('See attached.', body), 'latin1');
  const scan = s.begin();
  const started = performance.now();
  for (let i = 0; i < text.length; i += 65_535) await scan.write(text.subarray(i, i + 65_535));
  const written = performance.now();
  const result = await scan.finish();
  const done = performance.now();
  t.diagnostic(`${(text.length / 1e6).toFixed(1)} MB: write ${(written - started).toFixed(0)} ms, end to verdict ${(done - written).toFixed(0)} ms, clamd RSS ${clamd.rssKiB()} KiB`);
  assert.deepEqual(result, { type: 'infected', signature: SIGNATURES.eicar });
});

test('clamd killed mid-scan → failed, never clean; restarted → the scanner recovers on its own', async () => {
  const s = scanner([clamd.unixEndpoint, clamd.tcpEndpoint]);
  s.start();
  const scan = s.begin();
  await scan.write(Buffer.from(message('')));
  for (let i = 0; i < 20; i++) await scan.write(Buffer.alloc(8192, 'x'));
  await clamd.kill();
  for (let i = 0; i < 20; i++) await scan.write(Buffer.alloc(8192, 'y'));
  const result = await scan.finish();
  assert.equal(result.type, 'failed', JSON.stringify(result));
  assert.ok(result.type === 'failed' && ['error', 'unreachable'].includes(result.reason), JSON.stringify(result));

  const whileDown = await scanMessage(s, message('clean\r\n'));
  assert.equal(whileDown.type === 'failed' ? whileDown.reason : whileDown.type, 'unreachable');
  assert.equal(s.health().up, false);

  await clamd.restart();
  const until = Date.now() + 5000;
  while (!s.health().up && Date.now() < until) await sleep(50);
  assert.equal(s.health().up, true, 'a re-probe found clamd again');
  assert.deepEqual(await scanMessage(s, message('clean\r\n')), { type: 'clean' });
  assert.deepEqual(await scanMessage(s, message(`${EICAR.toString('latin1')}\r\n`)), { type: 'infected', signature: SIGNATURES.eicar });
});

test('concurrent scans up to the limit, all answered', async (t) => {
  const s = scanner([clamd.unixEndpoint], { maxConcurrentScans: 4, admissionWait: '20s' });
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => scanMessage(s, i % 2 === 0 ? message(`hello ${i}\r\n`) : withAttachment('eicar.txt', 'text/plain', EICAR))));
  const took = performance.now() - started;
  t.diagnostic(`40 small messages, 4 at a time: ${took.toFixed(0)} ms (${(40_000 / took).toFixed(0)} msg/s)`);
  results.forEach((r, i) => assert.equal(r.type, i % 2 === 0 ? 'clean' : 'infected'));
  assert.equal(s.health().activeScans, 0);
});
