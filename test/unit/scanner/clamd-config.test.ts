import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clamavSchema } from 'postfix-milter-ts/scanner/clamd-config.js';
import { parseClamdEndpoint } from 'postfix-milter-ts/scanner/clamd-endpoint.js';

test('defaults: Debian socket, then loopback TCP; limits in ms and bytes', () => {
  const c = clamavSchema.parse({});
  assert.deepEqual(c.endpoints, ['unix:/run/clamav/clamd.ctl', 'inet:127.0.0.1:3310']);
  assert.equal(c.scanDeadline, 120_000);
  assert.equal(c.connectTimeout, 5000);
  assert.equal(c.maxScanBytes, 25 * 1024 * 1024);
  assert.equal(c.chunkSize, 64 * 1024);
  assert.equal(c.maxConcurrentScans, 10);
});

test('durations and sizes in admin notation', () => {
  const c = clamavSchema.parse({ scanDeadline: '90s', connectTimeout: '250ms', maxScanBytes: '10M', chunkSize: '16K' });
  assert.equal(c.scanDeadline, 90_000);
  assert.equal(c.connectTimeout, 250);
  assert.equal(c.maxScanBytes, 10 * 1024 * 1024);
  assert.equal(c.chunkSize, 16 * 1024);
});

test('unknown keys, bad endpoints, an empty list and a chunk over the limit are refused with the reason', () => {
  assert.throws(() => clamavSchema.parse({ endpoint: 'unix:/x' }), /endpoint/);
  assert.throws(() => clamavSchema.parse({ endpoints: ['unix:relative.sock'] }), /absolute/);
  assert.throws(() => clamavSchema.parse({ endpoints: ['inet:127.0.0.1'] }), /port/);
  assert.throws(() => clamavSchema.parse({ endpoints: ['inet:127.0.0.1:0'] }), /port 0/);
  assert.throws(() => clamavSchema.parse({ endpoints: [] }), /at least one/);
  assert.throws(() => clamavSchema.parse({ chunkSize: '2M', maxScanBytes: '1M' }), /chunkSize/);
});

test('endpoint forms: unix, inet, inet6 and clamav-milter tcp:', () => {
  assert.deepEqual(parseClamdEndpoint('unix:/run/clamav/clamd.ctl'), { kind: 'unix', path: '/run/clamav/clamd.ctl' });
  assert.deepEqual(parseClamdEndpoint('inet:127.0.0.1:3310'), { kind: 'tcp', host: '127.0.0.1', port: 3310 });
  assert.deepEqual(parseClamdEndpoint('inet6:[::1]:3310'), { kind: 'tcp', host: '::1', port: 3310 });
  assert.deepEqual(parseClamdEndpoint('tcp:127.0.0.1:3310'), { kind: 'tcp', host: '127.0.0.1', port: 3310 });
  assert.throws(() => parseClamdEndpoint('ftp:x'), /clamd endpoint "ftp:x": unknown transport/);
});
